"""A small chat page streaming answers over SSE, with tool calls, that survives reconnects.

Run it (after ``pip install -e '.[all,web]' -e plugins/schwarm-stream-starlette``)::

    python examples/web_chat/app.py            # then open the printed URL

The "model" is the offline provider (``schwarm_stream.testing.server.OfflineProvider``) behind a loopback
``ProviderServer``, called through the official OpenAI SDK via ``schwarm_stream.sources.openai_chat``. The
agent loop (``schwarm_stream.agent_loop``) answers in two streams: the model first asks for the
``get_weather`` tool, the loop runs it, then the model quotes the result. Both streams and the tool result
(relayed by ``hub.sink.relay``) write into one channel; the page follows it with ``EventSource`` and, when
the connection drops, the browser reconnects with ``Last-Event-ID`` and the server replays exactly what it
missed from its ring buffer (``--drop-after N`` cuts every first connection after N events, to see that
happen). The page keeps its channel ids in ``sessionStorage``: a reload replays the answers and goes on
following the one still streaming.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
from schwarm_stream_starlette import Channel, StreamHub
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

import schwarm_stream
from schwarm_stream.compose import TurnEnd, agent_loop
from schwarm_stream.sources import openai_chat

HERE = Path(__file__).parent

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def get_weather(city: str) -> str:
    """The example's tool: deterministic, offline."""
    return f"Sunny and 21 degrees in {city}"


def create_app(openai_base_url: str, *, drop_after: int | None = None, retry_ms: int = 500) -> Starlette:
    """The chat app talking to an OpenAI-compatible server at ``openai_base_url``.

    ``drop_after``: end every SSE response that is not a resume after that many events, forcing the
    browser to reconnect mid-answer (for demos and the browser test).
    """
    client = openai.AsyncOpenAI(api_key="sk-offline", base_url=openai_base_url)
    hub = StreamHub(on_disconnect="finish", retry=retry_ms, history=4096)
    pipeline = schwarm_stream.Pipeline([hub.sink])
    connections: list[str | None] = []  # Last-Event-ID of every SSE request, for the test
    answers: dict[str, list[str]] = {}  # channel id -> the text of each model turn, as accumulated

    async def agent(channel: Channel, prompt: str) -> None:
        messages: list[Any] = [{"role": "user", "content": prompt}]
        source = openai_chat(client, model="offline", messages=messages, tools=[WEATHER_TOOL])
        loop = agent_loop(source, {"get_weather": get_weather}, max_turns=3, pipeline=pipeline)
        # The loop's streams reach the channel through the sink's hooks; relay() adds its tool results.
        async for event in hub.sink.relay(loop, channel.id):
            if isinstance(event, TurnEnd):
                answers.setdefault(channel.id, []).append(event.message.text)

    async def index(request: Request) -> Response:
        return FileResponse(HERE / "index.html", headers={"Cache-Control": "no-store"})

    async def start(request: Request) -> Response:
        body = await request.json()
        prompt = str(body.get("prompt") or "").strip()[:2000]
        if not prompt:
            return JSONResponse({"error": "empty prompt"}, status_code=400)
        channel = hub.start(lambda ch: agent(ch, prompt))
        return JSONResponse({"id": channel.id})

    async def events(request: Request) -> Response:
        last = request.headers.get("last-event-id")
        connections.append(last)
        cut = drop_after if (drop_after and not last) else None
        response: Response = hub.sse(request, request.path_params["id"], max_events=cut)
        return response

    async def stats(request: Request) -> Response:
        return JSONResponse({"connections": connections})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await hub.aclose()  # cancel producers still running at shutdown

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/chat", start, methods=["POST"]),
            Route("/chat/{id}/events", events),
            Route("/stats", stats),
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.connections = connections
    app.state.answers = answers
    return app


def main() -> None:
    from schwarm_stream_starlette import ThreadedServer

    from schwarm_stream.testing.server import OfflineProvider, ThreadedProviderServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drop-after", type=int, default=None, help="cut first connections after N events")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds between the model's chunks")
    args = parser.parse_args()
    with ThreadedProviderServer(OfflineProvider(chunk_delay=args.delay)) as provider:
        app = create_app(provider.openai_base_url, drop_after=args.drop_after)
        with ThreadedServer(app) as url:
            print(json.dumps({"url": url}), flush=True)
            try:
                import threading

                threading.Event().wait()
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    main()
