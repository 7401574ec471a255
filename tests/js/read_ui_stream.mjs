// Reads Vercel AI SDK UI message streams exactly as the `ai` package does, for tests/test_vercel_protocol.py.
//
//   node read_ui_stream.mjs URL [URL ...]
//
// For each URL: GET it, parse the body with the package's parseJsonEventStream + uiMessageChunkSchema
// (what DefaultChatTransport does), record every chunk that passed and every chunk the schema rejected,
// feed the accepted chunks to readUIMessageStream and keep its last UIMessage and the errors it reported.
// Prints one JSON array with a result per URL on stdout.
import { readFileSync } from "node:fs";
import { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema } from "ai";

const aiVersion = JSON.parse(
  readFileSync(new URL("./node_modules/ai/package.json", import.meta.url), "utf8"),
).version;

function text(error) {
  return String(error && error.message !== undefined ? error.message : error);
}

async function read(url) {
  const response = await fetch(url, { headers: { accept: "text/event-stream" } });
  const result = {
    url,
    aiVersion,
    status: response.status,
    headers: Object.fromEntries(response.headers),
    chunks: [],
    invalid: [],
    errors: [],
    snapshots: 0,
    message: null,
  };
  if (!response.ok || response.body === null) return result;
  const parsed = parseJsonEventStream({ stream: response.body, schema: uiMessageChunkSchema });
  const accepted = parsed.pipeThrough(
    new TransformStream({
      transform(part, controller) {
        if (part.success) {
          result.chunks.push(part.value);
          controller.enqueue(part.value);
        } else {
          result.invalid.push({ raw: part.rawValue ?? null, error: text(part.error) });
        }
      },
    }),
  );
  const messages = readUIMessageStream({
    stream: accepted,
    onError: (error) => result.errors.push(text(error)),
  });
  for await (const message of messages) {
    result.snapshots += 1;
    result.message = message;
  }
  return result;
}

const results = [];
for (const url of process.argv.slice(2)) results.push(await read(url));
process.stdout.write(JSON.stringify(results));
