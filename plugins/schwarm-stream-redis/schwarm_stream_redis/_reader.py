"""Following a stream's log from any position, in any process.

:func:`read_stream` answers, before yielding anything:

- :class:`InvalidStreamRef` (400) for a malformed tenant, stream id or cursor;
- :class:`StreamUnknown` (404) when the key does not exist — also for another
  tenant's stream, since the tenant is part of the key;
- :class:`StreamGone` (410) when the requested position was trimmed away
  (``XREAD`` itself would silently skip to what is left);
- :class:`StreamDegraded` when the producer flagged the log incomplete;

and then yields every event after the cursor, in order, each checked to be
exactly the next sequence number, and finally the :class:`End` entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ._codec import End, decode_entry
from ._errors import (
    InvalidStreamRef,
    LogUnavailable,
    RedisLogError,
    StreamDegraded,
    StreamGone,
    StreamStalled,
    StreamUnknown,
)
from ._keys import entry_id, parse_cursor, stream_key

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from schwarm_stream import Event

__all__ = ["IDLE", "StreamInfo", "follow", "prepare", "read_stream", "stream_info"]

Entry = tuple[int, str, Any, Mapping[str, str]]

#: Seconds any reader command may take (on top of ``block_ms`` for ``XREAD BLOCK``) before it
#: counts as :class:`LogUnavailable`: no Redis call of a reader waits forever on a dead connection.
OP_TIMEOUT = 10.0


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _decode(key: str, raw: Mapping[Any, Any]) -> Entry:
    fields = _fields(raw)
    try:
        seq, kind, value = decode_entry(fields)
    except (KeyError, ValueError, TypeError) as exc:
        raise RedisLogError(f"{key}: an entry not written by schwarm_stream_redis: {exc!r}") from exc
    return seq, kind, value, fields


class StreamInfo:
    """What the start entry and the newest entry say about a stream's log."""

    __slots__ = ("end", "first_seq", "incomplete", "last_seq", "start")

    def __init__(
        self,
        start: dict[str, Any] | None,
        first_seq: int,
        last_seq: int,
        end: End | None,
        incomplete: bool,
    ) -> None:
        self.start = start  # the start entry's data (None once trimmed away)
        self.first_seq = first_seq
        self.last_seq = last_seq
        self.end = end  # the terminal entry once written
        self.incomplete = incomplete  # the producer flagged the log incomplete

    def __repr__(self) -> str:
        return (
            f"StreamInfo(first_seq={self.first_seq}, last_seq={self.last_seq}, "
            f"end={self.end!r}, incomplete={self.incomplete})"
        )


def _first_seq(entry: Entry) -> int:
    """The first sequence number an entry holds (an ``events`` entry holds several)."""
    if entry[1] == "events":
        return int(entry[3]["first"])
    return entry[0]


async def _bounds(redis: Redis | RedisCluster, key: str) -> tuple[Entry, Entry] | None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xrange(key, count=1)
        pipe.xrevrange(key, count=1)
        first, last = await asyncio.wait_for(pipe.execute(), OP_TIMEOUT)
    if not first or not last:
        return None
    return _decode(key, first[0][1]), _decode(key, last[0][1])


def _degraded(key: str, status: str) -> StreamDegraded:
    what = "went on without it" if status == "degraded" else "failed the stream"
    return StreamDegraded(
        f"{key}: the producer lost Redis mid-stream and {what}; this log is incomplete",
        producer_status=status,
    )


async def stream_info(
    redis: Redis | RedisCluster, tenant: str, stream_id: str, *, prefix: str = "schwarm"
) -> StreamInfo:
    """Inspect a stream's log: raises :class:`StreamUnknown` when there is none for this tenant."""
    key = stream_key(tenant, stream_id, prefix=prefix)
    try:
        bounds = await _bounds(redis, key)
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise LogUnavailable(f"Redis unavailable: {type(exc).__name__}: {exc}") from exc
    if bounds is None:
        raise StreamUnknown(f"no stream {stream_id} for tenant {tenant!r}")
    first, last = bounds
    end = last[2] if last[1] == "end" else None
    return StreamInfo(
        first[2] if first[1] == "start" else None,
        _first_seq(first),
        last[0],
        end,
        last[3].get("incomplete") == "1",
    )


class _Idle:
    """Yielded by :func:`follow` when ``XREAD BLOCK`` timed out without a new entry."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "IDLE"


#: What :func:`follow` yields on every idle ``block_ms`` (SSE endpoints send a heartbeat comment).
IDLE = _Idle()


async def prepare(
    redis: Redis | RedisCluster,
    tenant: str,
    stream_id: str,
    after: int | str | None = 0,
    *,
    prefix: str = "schwarm",
) -> tuple[str, int, bool]:
    """Validate a read request and check it against the log: ``(key, cursor, already_done)``.

    Raises :class:`InvalidStreamRef`, :class:`StreamUnknown`, :class:`StreamGone`,
    :class:`StreamDegraded` or :class:`LogUnavailable` (so an HTTP handler can answer
    400/404/410/502/503 before it starts a response). ``already_done`` is true when the
    client already has every entry including the end (HTTP 204).
    """
    key = stream_key(tenant, stream_id, prefix=prefix)
    cursor = parse_cursor(after)
    info = await stream_info(redis, tenant, stream_id, prefix=prefix)
    if info.incomplete and info.end is not None:
        raise _degraded(key, info.end.status)
    if info.end is not None and info.end.seq <= cursor:
        if info.end.seq < cursor:
            raise InvalidStreamRef(
                f"cursor {cursor} is past the end of stream {stream_id} (seq {info.end.seq})"
            )
        return key, cursor, True
    if info.first_seq > cursor + 1:
        raise StreamGone(
            f"{key}: events after seq {cursor} were trimmed; the oldest left is seq {info.first_seq}",
            after=cursor,
            first_seq=info.first_seq,
        )
    return key, cursor, False


async def follow(
    redis: Redis | RedisCluster,
    key: str,
    cursor: int,
    *,
    block_ms: int = 5000,
    idle_timeout: float | None = 60.0,
    count: int = 500,
) -> AsyncIterator[Event | End | _Idle]:
    """Follow the log at ``key`` after ``cursor`` (checked by :func:`prepare`); :data:`IDLE` when quiet."""
    if block_ms < 1:
        raise InvalidStreamRef(f"block_ms must be >= 1 (got {block_ms!r}); the reader never blocks forever")
    loop = asyncio.get_running_loop()
    expected = cursor + 1
    position = entry_id(cursor)
    idle_since = loop.time()
    try:
        while True:
            reply: Any = await asyncio.wait_for(
                redis.xread({key: position}, count=count, block=block_ms), block_ms / 1000 + OP_TIMEOUT
            )
            if not reply:
                await _check_idle(redis, key, cursor=expected - 1)
                if idle_timeout is not None and loop.time() - idle_since > idle_timeout:
                    raise StreamStalled(f"{key}: nothing new for {idle_timeout}s after seq {expected - 1}")
                yield IDLE
                continue
            for raw_id, raw_fields in reply[0][1]:
                seq, kind, value, fields = _decode(key, raw_fields)
                if kind == "end" and fields.get("incomplete") == "1":
                    raise _degraded(key, fields.get("status", "degraded"))
                position = _text(raw_id)
                if kind == "events":
                    # one entry, many events: after a resume the first one read may start before the cursor
                    for event in value:
                        if event.seq < expected:
                            continue
                        if event.seq != expected:
                            raise _hole(key, expected, event.seq)
                        expected += 1
                        yield event
                    continue
                if seq != expected:
                    raise _hole(key, expected, seq)
                expected += 1
                yield value
                if kind == "end":
                    return
            idle_since = loop.time()
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise LogUnavailable(f"Redis unavailable while reading {key}: {type(exc).__name__}: {exc}") from exc
    except RedisError as exc:
        raise RedisLogError(f"Redis error while reading {key}: {exc}") from exc


async def read_stream(
    redis: Redis | RedisCluster,
    tenant: str,
    stream_id: str,
    after: int | str | None = 0,
    *,
    prefix: str = "schwarm",
    block_ms: int = 5000,
    idle_timeout: float | None = 60.0,
    count: int = 500,
) -> AsyncIterator[Event | End]:
    """Yield the events of a stream after sequence number ``after``, then its :class:`End`.

    ``after`` is the last sequence number the client has (an SSE ``Last-Event-ID``
    header value is accepted as is; 0 or ``None``: from the first event). The
    reader blocks in ``XREAD BLOCK block_ms`` for new entries; when nothing
    arrives it re-checks that the log still exists (else :class:`StreamGone`)
    and gives up with :class:`StreamStalled` after ``idle_timeout`` seconds
    without an entry (``None``: never). Redis errors are :class:`LogUnavailable`.
    Closing the iterator early (a client went away) is always safe: reading
    never affects the producer.
    """
    key, cursor, done = await prepare(redis, tenant, stream_id, after, prefix=prefix)
    if done:
        return
    async for value in follow(redis, key, cursor, block_ms=block_ms, idle_timeout=idle_timeout, count=count):
        if value is not IDLE:
            yield value  # type: ignore[misc]


def _hole(key: str, expected: int, seq: int) -> StreamGone:
    # XREAD skipped over trimmed entries: never hand out a log with a hole in it
    return StreamGone(
        f"{key}: expected seq {expected} but the log continues at seq {seq} (trimmed)",
        after=expected - 1,
        first_seq=seq,
    )


async def _check_idle(redis: Redis | RedisCluster, key: str, *, cursor: int) -> None:
    """Nothing arrived: is the log still there, and was it flagged incomplete behind our cursor?"""
    try:
        bounds = await _bounds(redis, key)
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise LogUnavailable(f"Redis unavailable: {type(exc).__name__}: {exc}") from exc
    if bounds is None:
        raise StreamGone(f"{key}: the log expired or was lost while reading", after=cursor, first_seq=None)
    _, (_, kind, value, fields) = bounds
    if kind == "end" and fields.get("incomplete") == "1":
        raise _degraded(key, value.status)
