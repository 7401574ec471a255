// One chat turn through the `ai` package's own chat core (AbstractChat + DefaultChatTransport, what `useChat`
// runs), for tests/test_vercel_protocol.py.
//
//   node chat_session.mjs API PROMPT           send PROMPT as a user message (POST API)
//   node chat_session.mjs API --resume CHATID  resume CHATID's stream (GET API/CHATID/stream)
//
// Prints one JSON object: the chat's final status and error, every onError and onFinish call, the messages.
import { AbstractChat, DefaultChatTransport } from "ai";

class MemoryState {
  constructor() {
    this.status = "ready";
    this.error = undefined;
    this.messages = [];
  }
  pushMessage(message) { this.messages = [...this.messages, message]; }
  popMessage() { this.messages = this.messages.slice(0, -1); }
  replaceMessage(index, message) { this.messages = this.messages.map((m, i) => (i === index ? message : m)); }
  snapshot(thing) { return structuredClone(thing); }
}

class Chat extends AbstractChat {
  constructor(options) { super({ ...options, state: new MemoryState() }); }
}

const [api, ...rest] = process.argv.slice(2);
const out = { onError: [], onFinish: [] };
const options = {
  transport: new DefaultChatTransport({ api }),
  onError: (error) => out.onError.push(String(error.message)),
  onFinish: ({ isAbort, isError, isDisconnect, finishReason }) =>
    out.onFinish.push({ isAbort, isError, isDisconnect, finishReason: finishReason ?? null }),
};
let chat;
if (rest[0] === "--resume") {
  chat = new Chat({ ...options, id: rest[1] });
  await chat.resumeStream();
} else {
  chat = new Chat(options);
  await chat.sendMessage({ text: rest.join(" ") });
}
out.id = chat.id;
out.status = chat.status;
out.error = chat.error ? String(chat.error.message) : null;
out.messages = chat.messages;
process.stdout.write(JSON.stringify(out));
