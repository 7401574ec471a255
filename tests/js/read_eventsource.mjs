// Reads one SSE channel with the `eventsource` package (the WHATWG EventSource for Node), asking for a
// compressed reply, for plugins/schwarm-stream-starlette/tests/test_starlette_serving.py.
//
//   node read_eventsource.mjs URL CODING
//
// Sends `Accept-Encoding: CODING`; Node's fetch decodes the reply, EventSource parses it. Stops at the
// `done` event. Prints {"encoding": <Content-Encoding of the reply>, "events": [{type, data, id}, ...]}.
import { EventSource } from "eventsource";

const [url, coding] = process.argv.slice(2);
let encoding = null;
const events = [];

const source = new EventSource(url, {
  fetch: async (input, init) => {
    const response = await fetch(input, {
      ...init,
      headers: { ...init.headers, "accept-encoding": coding },
    });
    encoding = response.headers.get("content-encoding");
    return response;
  },
});

const timer = setTimeout(() => {
  console.error("timed out");
  process.exit(2);
}, 60000);

function record(type) {
  source.addEventListener(type, (event) => {
    events.push({ type, data: event.data, id: event.lastEventId });
    if (type === "done") {
      source.close();
      clearTimeout(timer);
      console.log(JSON.stringify({ encoding, events }));
    }
  });
}

for (const type of ["start", "chunk", "finish", "end", "done", "message"]) {
  record(type);
}
source.onerror = (error) => {
  if (source.readyState === EventSource.CLOSED) {
    console.error(`eventsource error: ${error.message}`);
    process.exit(1);
  }
};
