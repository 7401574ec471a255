"""A web process for the SSE fan-out test (run as a script, not collected by pytest).

A Starlette app served by the starlette plugin's ``serve`` on ``--port``: ``GET /streams/{id}`` answers
from the stream's Redis log with ``sse_frames`` (resuming after ``Last-Event-ID``), then a ``: done``
comment so a client can tell a finished response from a killed process.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import redis.asyncio
from schwarm_stream_redis import RedisLogError, sse_frames
from schwarm_stream_starlette import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def app(client: redis.asyncio.Redis) -> Starlette:
    async def events(request: Request) -> Response:
        sid = request.path_params["sid"]
        try:
            frames = await sse_frames(
                client, "acme", sid, request.headers.get("last-event-id"), heartbeat=2.0
            )
        except RedisLogError as err:
            return Response(status_code=err.status)

        async def body() -> AsyncIterator[str]:
            async for frame in frames:
                yield frame
            yield ": done\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/streams/{sid}", events)])


async def main(port: int, url: str) -> None:
    # every following reader holds one connection while in XREAD BLOCK: size the pool for the readers
    client = redis.asyncio.Redis.from_url(url, max_connections=2000)
    async with serve(app(client), port=port):
        await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--url", required=True)
    a = p.parse_args()
    asyncio.run(main(a.port, a.url))
