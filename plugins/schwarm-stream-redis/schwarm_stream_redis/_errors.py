"""Typed errors of the Redis log, on both sides.

::

    SchwarmStreamError
    ├── StreamError
    │   └── RedisSinkError        producer: Redis failed or was too slow (on_redis_error = "fail"),
    │       │                     or the stream cannot get a valid key (bad tenant / stream id)
    │       └── StreamIdConflict  producer: another writer already owns this stream id's log
    └── RedisLogError             reader: the log cannot be followed as asked
        ├── InvalidStreamRef      400: a tenant, stream id or cursor that is not well formed (also ValueError)
        ├── StreamUnknown         404: no such stream for this tenant (also for another tenant's stream)
        ├── StreamGone            410: the requested position was trimmed or the log expired / was lost
        ├── StreamDegraded        the producer lost Redis mid-stream: the log is incomplete
        ├── StreamStalled         no new entry and no end within the reader's idle timeout
        └── LogUnavailable        503: Redis is unreachable (connection refused, reset, timeout)

The HTTP status each reader error maps to is its ``status`` attribute, so a
web handler can answer with ``err.status`` without a table of its own.
"""

from __future__ import annotations

from schwarm_stream import SchwarmStreamError, StreamError

__all__ = [
    "InvalidStreamRef",
    "LogUnavailable",
    "RedisLogError",
    "RedisSinkError",
    "StreamDegraded",
    "StreamGone",
    "StreamIdConflict",
    "StreamStalled",
    "StreamUnknown",
]


class RedisSinkError(StreamError):
    """The producer's Redis log failed; the stream fails with this under ``on_redis_error = "fail"``.

    ``reason`` is ``"unavailable"`` (connection error), ``"timeout"`` (a write took longer than
    ``write_timeout``), ``"log_lost"`` (the key vanished mid-stream: Redis restarted without
    persistence, the key expired or was deleted), ``"rejected"`` (Redis answered an error) or
    ``"invalid_ref"`` (the tenant or stream id cannot be used in a key) or ``"conflict"``
    (:class:`StreamIdConflict`). Never retried.
    """

    retryable = False

    def __init__(self, message: str, *, reason: str, provider: str | None = None) -> None:
        super().__init__(message, provider=provider, retryable=False)
        self.reason = reason


class StreamIdConflict(RedisSinkError):
    """Another writer already owns the log of this stream id (``reason = "conflict"``).

    Raised at ``stream_start``, before the provider is read, whatever ``on_redis_error`` says:
    the second writer never writes into (or flags) the first writer's log.
    """

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message, reason="conflict", provider=provider)


class RedisLogError(SchwarmStreamError):
    """A reader cannot follow the log as asked. ``status`` is the matching HTTP status code."""

    status = 500


class InvalidStreamRef(RedisLogError, ValueError):
    """A tenant, stream id or ``Last-Event-ID`` cursor that is not well formed (HTTP 400)."""

    status = 400


class StreamUnknown(RedisLogError):
    """No stream with this id for this tenant (HTTP 404).

    Also the answer for another tenant's stream, so ids cannot be probed across tenants.
    """

    status = 404


class StreamGone(RedisLogError):
    """The requested position is no longer in the log (HTTP 410): trimmed, expired or lost.

    ``first_seq`` is the oldest sequence number still available (``None`` when nothing is).
    """

    status = 410

    def __init__(self, message: str, *, after: int, first_seq: int | None) -> None:
        super().__init__(message)
        self.after = after
        self.first_seq = first_seq


class StreamDegraded(RedisLogError):
    """The producer lost Redis mid-stream, so this log is incomplete (HTTP 502).

    ``producer_status`` is what the producer did: ``"degraded"`` (it went on locally) or
    ``"error"`` (it failed the stream).
    """

    status = 502

    def __init__(self, message: str, *, producer_status: str) -> None:
        super().__init__(message)
        self.producer_status = producer_status


class StreamStalled(RedisLogError):
    """No entry and no end arrived within the reader's ``idle_timeout`` (HTTP 504)."""

    status = 504


class LogUnavailable(RedisLogError):
    """Redis could not be reached or answered too slowly while reading (HTTP 503)."""

    status = 503
