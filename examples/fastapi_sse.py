r"""FastAPI SSE: an endpoint that streams a model's answer to the browser as Server-Sent Events.

Shows: a FastAPI route answering with StreamHub.stream() from the schwarm-stream-starlette plugin: the
stream runs in a background task, hub.sink (the SSE sink) records its events, and the response follows
them, with Last-Event-ID resume. The script serves the app with uvicorn on 127.0.0.1 (a free port),
reads the endpoint once with httpx as a client, prints the events it got, and exits.
Run:   python examples/fastapi_sse.py   (offline; set OPENAI_API_KEY to use the real API)
       needs: pip install -e '.[all]' -e plugins/schwarm-stream-starlette
Expect: ^client got \d+ SSE events; text 'You said: Hello over SSE!'; outcome complete$
"""

import asyncio
import json
from typing import Any

import httpx
from _provider import openai_client
from fastapi import FastAPI, Request
from httpx_sse import aconnect_sse
from schwarm_stream_starlette import Channel, StreamHub, serve

import schwarm_stream
from schwarm_stream.sources import openai_chat


def create_app(client: Any, model: str) -> FastAPI:
    app = FastAPI()
    hub = StreamHub()  # channels, each with a ring buffer the SSE responses follow
    pipeline = schwarm_stream.Pipeline([hub.sink])  # the sink records every delivered event

    @app.get("/chat")
    async def chat(request: Request, q: str) -> Any:
        async def answer(channel: Channel) -> None:  # runs in the background; never waits for the client
            source = openai_chat(client, model=model, messages=[{"role": "user", "content": q}])
            async with pipeline.open(source, metadata=channel.metadata) as stream:
                await stream.collect()

        return hub.stream(request, answer)  # start `answer`, respond with its events

    return app


async def main() -> None:
    async with openai_client() as (client, model), serve(create_app(client, model)) as url:
        text, outcome, count = "", None, 0
        async with (
            httpx.AsyncClient() as http,
            aconnect_sse(http, "GET", f"{url}/chat", params={"q": "Hello over SSE!"}) as sse,
        ):
            async for event in sse.aiter_sse():  # the SSE event name is the event type; data is JSON
                if not event.data:
                    continue  # the opening `retry:` field (reconnection delay) carries no event
                count += 1
                print(f"id={event.id or '-':<3} {event.event:<16} {event.data}")
                data = json.loads(event.data)
                if event.event == "chunk" and data["kind"] == "text":
                    text += data["text"]
                elif event.event == "end":
                    outcome = data["outcome"]
    print(f"client got {count} SSE events; text {text!r}; outcome {outcome}")


asyncio.run(main())
