"""Run an ASGI app with uvicorn on a free loopback port (tests, examples, the demo page)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import uvicorn

__all__ = ["ThreadedServer", "serve"]


def _config(app: Any, host: str, port: int) -> uvicorn.Config:
    # Open SSE responses would hold a graceful shutdown forever: give them one second.
    # permessage-deflate offered to WebSocket clients (uvicorn's default, kept explicit: the docs promise it).
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="auto",
        timeout_graceful_shutdown=1,
        ws_per_message_deflate=True,
    )


def _url(server: uvicorn.Server, host: str) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://{host}:{port}"


@asynccontextmanager
async def serve(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` on this event loop; yields its base URL (``http://127.0.0.1:PORT``)."""
    server = uvicorn.Server(_config(app, host, port))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task  # startup failed: raise its error
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield _url(server, host)
    finally:
        server.should_exit = True
        await task


class ThreadedServer:
    """``with ThreadedServer(app) as url:`` — uvicorn in a daemon thread, for synchronous callers."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = uvicorn.Server(_config(app, host, port))
        self.host = host
        self.url = ""
        self._thread = threading.Thread(target=self.server.run, name="schwarm-uvicorn", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        started = threading.Event()

        def wait() -> None:
            while not self.server.started and self._thread.is_alive():
                started.wait(0.01)

        wait()
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")
        self.url = _url(self.server, self.host)
        return self.url

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
