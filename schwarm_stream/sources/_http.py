"""Reading a streaming HTTP response, opened by an official SDK client, as SSE events.

The SDK sends the request (auth, base URL, headers, status errors mapped to its
exception types); we read the raw body ourselves. That is exact where the SDK's
own stream is not (it cannot tell ``[DONE]`` from a clean EOF) and ~6x cheaper
per chunk than building SDK models (research/perf.md, b1 vs h3).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .._classify import classify
from .._errors import ProtocolError, StreamError
from ._sse import SSE, iter_sse

__all__ = ["sse_events"]

_DONE = object()


async def _sync_bytes(it: Iterator[bytes], busy: list[bool]) -> AsyncIterator[bytes]:
    # A sync client blocks on every read: do the reads in a worker thread.
    # busy[0] stays True when we were cancelled while a read is still blocked there.
    while True:
        busy[0] = True
        chunk = await asyncio.to_thread(next, it, _DONE)
        busy[0] = False
        if chunk is _DONE:
            return
        yield chunk  # type: ignore[misc]


def _shutdown_socket(response: Any) -> None:
    """Wake a worker thread blocked reading the body of a sync client's response.

    Closing a socket does not interrupt a ``recv`` already blocked on it in another
    thread; ``shutdown`` does. Without this, cancelling a stream read through a sync
    SDK client would leave the connection (and the thread) waiting for the provider.
    """
    http = getattr(response, "http_response", response)
    stream = getattr(http, "extensions", {}).get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


def _check_content_type(headers: Any, provider: str) -> None:
    ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype and ctype != "text/event-stream":
        raise ProtocolError(
            f"{provider}: expected a text/event-stream response, got {ctype!r} "
            "(a proxy or gateway answered instead of the provider?)",
            provider=provider,
        )


async def sse_events(
    open_response: Callable[[], Any], *, provider: str, max_event_bytes: int
) -> AsyncIterator[SSE]:
    """Enter ``open_response()`` (an SDK ``with_streaming_response`` context manager,
    async or sync) and yield the body's SSE events; every failure is a typed error."""
    cm = open_response()
    is_async = hasattr(cm, "__aenter__")
    try:
        response = await cm.__aenter__() if is_async else await asyncio.to_thread(cm.__enter__)
    except StreamError:
        raise
    except Exception as exc:
        raise classify(exc, provider=provider) from exc
    busy = [False]
    try:
        _check_content_type(response.headers, provider)
        body = response.iter_bytes() if is_async else _sync_bytes(iter(response.iter_bytes()), busy)
        events = iter_sse(body, provider=provider, max_event_bytes=max_event_bytes, unterminated=True)
        try:
            async for sse in events:
                yield sse
        except StreamError:
            raise
        except Exception as exc:
            raise classify(exc, provider=provider) from exc
        finally:  # innermost first, each closed now rather than by the garbage collector
            await events.aclose()
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
    finally:
        if is_async:
            await cm.__aexit__(None, None, None)
        else:
            if busy[0]:  # a worker thread is still blocked reading the body
                _shutdown_socket(response)
            await asyncio.to_thread(cm.__exit__, None, None, None)
