"""Server-Sent Events from a Redis log, byte for byte what the local SSE sink sends.

A web process that did not run the stream answers a browser (first visit or
reconnect with ``Last-Event-ID``) from Redis. It encodes with the core's SSE
encoder and formatters (:mod:`schwarm_stream.sinks`), and the SSE ids are the
events' ``seq``, the same ids :class:`~schwarm_stream.sinks.SSESink` gives a
stream's own channel. So a browser can switch between the worker's local sink
and any web process, in either direction, without losing or repeating an event.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from schwarm_stream import Message, ToolCall
from schwarm_stream.sinks import JSONFormatter, encode_entry, encode_sse, make_formatter

from ._codec import End
from ._reader import IDLE, follow, prepare

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from schwarm_stream.sinks import Formatter

__all__ = ["sse_frames"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class _Started:
    """What a formatter's ``stream_start`` reads from a stream."""

    def __init__(self, stream_id: str) -> None:
        self.id = stream_id


class _EndedStream:
    """What a formatter's ``stream_end`` reads from a stream, rebuilt from the terminal entry."""

    def __init__(self, stream_id: str, end: End) -> None:
        self.id = stream_id
        self.outcome = end.status
        self.message = _message(end.message or {})
        self.error = _error(end.error)


def _message(summary: dict[str, Any]) -> Message:
    calls = []
    for n, tc in enumerate(summary.get("tool_calls") or ()):
        args = tc.get("arguments") or ""
        try:
            parsed, error = (json.loads(args) if args.strip() else {}), None
        except json.JSONDecodeError as exc:
            parsed, error = None, f"invalid JSON at character {exc.pos}: {exc.msg}"
        calls.append(
            ToolCall(
                id=tc.get("id") or "",
                name=tc.get("name") or "",
                arguments=args,
                parsed=parsed,
                error=error,
                index=n,
            )
        )
    return Message(
        text=summary.get("text") or "",
        reasoning=summary.get("reasoning") or "",
        finish_reason=summary.get("finish_reason"),
        tool_calls=calls,
        complete=bool(summary.get("complete")),
    )


def _error(info: dict[str, Any] | None) -> BaseException | None:
    if not info:
        return None
    name = info.get("type") or "StreamError"
    if not isinstance(name, str) or _IDENT.fullmatch(name) is None:
        name = "StreamError"
    # an exception class carrying the producer's error type name, so formatters name it the same way
    error: BaseException = type(name, (Exception,), {})(info.get("message") or "")
    return error


async def sse_frames(
    redis: Redis | RedisCluster,
    tenant: str,
    stream_id: str,
    last_event_id: str | int | None = None,
    *,
    prefix: str = "schwarm",
    format: str | Callable[[], Formatter] = "json",
    retry: int | None = 3000,
    heartbeat: float = 15.0,
    idle_timeout: float | None = 300.0,
    expose_errors: bool = False,
) -> AsyncIterator[str]:
    """SSE text for one HTTP response, read from the stream's Redis log.

    Awaiting this checks the request first and raises before any frame:
    :class:`InvalidStreamRef` (400), :class:`StreamUnknown` (404), :class:`StreamGone`
    (410), :class:`StreamDegraded` (502), :class:`LogUnavailable` (503). The returned
    iterator yields ``retry:``, the events after ``last_event_id`` (ids = ``seq``), a
    ``:`` heartbeat comment every ``heartbeat`` seconds of silence, the ``end`` event and
    the format's closing frame (``done``), then stops. Errors while following (Redis lost,
    log trimmed under a slow client) are raised from the iterator: end the response and
    let the browser reconnect, which then gets the right status.
    """
    key, cursor, done = await prepare(redis, tenant, stream_id, last_event_id, prefix=prefix)
    formatter = make_formatter(format)
    return _frames(
        redis, key, stream_id, cursor, done, formatter, retry, heartbeat, idle_timeout, expose_errors
    )


async def _frames(
    redis: Redis | RedisCluster,
    key: str,
    stream_id: str,
    cursor: int,
    done: bool,
    formatter: Formatter,
    retry: int | None,
    heartbeat: float,
    idle_timeout: float | None,
    expose_errors: bool,
) -> AsyncIterator[str]:
    if retry is not None:
        yield encode_sse(retry=retry)
    block_ms = max(int(heartbeat * 1000), 1)
    # the local sink holds the format's stream-start items back and sends them with entry 1
    held = formatter.stream_start(_Started(stream_id))  # type: ignore[arg-type]
    if cursor > 0:
        held = []
        if not isinstance(formatter, JSONFormatter):
            # stateful formats (the Vercel protocol tracks open parts) must see what the client saw
            async for value in follow(redis, key, 0, block_ms=block_ms, idle_timeout=idle_timeout):
                if isinstance(value, End):
                    formatter.stream_end(_EndedStream(stream_id, value), expose_errors=expose_errors)  # type: ignore[arg-type]
                elif value is not IDLE:
                    formatter.event(value)  # type: ignore[arg-type]
                if value is not IDLE and value.seq >= cursor:  # type: ignore[union-attr]
                    break
    if done:  # the client has the end event: only the format's closing frame is left
        closing = formatter.close()
        if closing:
            yield encode_entry(cursor + 1, closing)
        return
    async for value in follow(redis, key, cursor, block_ms=block_ms, idle_timeout=idle_timeout):
        if value is IDLE:
            yield encode_sse(comment="heartbeat")
        elif isinstance(value, End):
            items = formatter.stream_end(_EndedStream(stream_id, value), expose_errors=expose_errors)  # type: ignore[arg-type]
            yield encode_entry(value.seq, items)
            closing = formatter.close()
            if closing:
                yield encode_entry(value.seq + 1, closing)
            return
        else:
            items = formatter.event(value)  # type: ignore[arg-type]
            if held:
                items, held = [*held, *items], []
            if items:
                yield encode_entry(value.seq, items)  # type: ignore[union-attr]
