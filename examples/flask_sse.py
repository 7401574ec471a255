r"""Flask streaming: a sync agent loop streamed to the browser as Server-Sent Events, no asyncio in sight.

Shows: a Flask route whose response is a generator over agent_loop_sync() with the sync openai.OpenAI
client: text deltas, the tool call with its result and each turn's end go out as SSE events (encode_sse)
while the model streams. Each request's stream runs on a private event loop in a background thread; when
the client goes away, the WSGI server closes the generator, which closes the provider stream and ends
that thread. The script serves the app with werkzeug on 127.0.0.1 (a free port), reads the endpoint once
with httpx as a client, prints the events it got, and exits.
Run:   python examples/flask_sse.py   (offline; set OPENAI_API_KEY to use the real API)
       needs: pip install flask
Expect: ^client got \d+ SSE events; text 'Let me check the weather\.The tool returned: Sunny and 21 degrees in Rome'; outcome complete$
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
from _provider import openai_sync_client
from flask import Flask, Response, request
from httpx_sse import connect_sse
from werkzeug.serving import make_server

from schwarm_stream import Chunk, Pipeline, StreamError
from schwarm_stream.compose.agent import ToolResult, TurnEnd, agent_loop_sync
from schwarm_stream.sinks import SSE_HEADERS, encode_sse
from schwarm_stream.sources import openai_chat

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def get_weather(city: str) -> str:
    """The example's tool: a plain sync function (it runs in a worker thread)."""
    return f"Sunny and 21 degrees in {city}"


def create_app(client: Any, model: str, *, pipeline: Pipeline | None = None) -> Flask:
    """The app: ``GET /chat?q=...`` answers with the agent loop's events as SSE."""
    app = Flask(__name__)

    @app.get("/chat")
    def chat() -> Response:
        messages: Any = [{"role": "user", "content": request.args["q"]}]
        source = openai_chat(client, model=model, messages=messages, tools=[WEATHER_TOOL])

        def events() -> Iterator[str]:
            # `with`: when the client disconnects, the server closes this generator, and leaving the
            # block closes the turn's stream (it ends "cancelled") and the loop's thread.
            with agent_loop_sync(
                source, {"get_weather": get_weather}, max_turns=3, pipeline=pipeline
            ) as loop:
                try:
                    for event in loop:
                        if isinstance(event, Chunk) and event.kind == "text":
                            yield encode_sse(json.dumps({"text": event.text}), event="chunk")
                        elif isinstance(event, ToolResult):
                            tool = {
                                "name": event.call.name,
                                "arguments": event.call.parsed,
                                "content": event.content,
                            }
                            yield encode_sse(json.dumps(tool), event="tool")
                        elif isinstance(event, TurnEnd):
                            yield encode_sse(json.dumps({"turn": event.turn}), event="turn")
                except (
                    StreamError
                ) as exc:  # the same typed errors as the async loop, partial message included
                    partial = exc.partial.text if exc.partial else ""
                    yield encode_sse(
                        json.dumps({"error": type(exc).__name__, "partial": partial}), event="error"
                    )
                yield encode_sse(json.dumps({"outcome": loop.outcome}), event="done")

        return Response(events(), headers=SSE_HEADERS)

    return app


def main() -> None:
    with openai_sync_client() as (client, model):
        server = make_server("127.0.0.1", 0, create_app(client, model), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        text, outcome, count = "", None, 0
        try:
            with (
                httpx.Client(timeout=30) as http,
                connect_sse(http, "GET", f"{url}/chat", params={"q": "What's the weather in Rome?"}) as sse,
            ):
                for event in sse.iter_sse():
                    count += 1
                    print(f"{event.event:<6} {event.data}")
                    data = json.loads(event.data)
                    if event.event == "chunk":
                        text += data["text"]
                    elif event.event == "done":
                        outcome = data["outcome"]
        finally:
            server.shutdown()
    print(f"client got {count} SSE events; text {text!r}; outcome {outcome}")


if __name__ == "__main__":
    main()
