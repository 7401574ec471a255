"""The recording format: one JSON object per line.

Three kinds of records, each carrying the stream id under ``"stream"``::

    {"v": 1, "stream": "5f0c…", "type": "start", "provider": "openai", "model": "gpt-4o-mini",
     "agent_id": null, "metadata": {}, "time": "2025-05-01T12:00:00+00:00"}
    {"stream": "5f0c…", "seq": 1, "type": "Chunk", "text": "Hel", "kind": "text", "index": 0, "choice": 0}
    {"stream": "5f0c…", "type": "end", "outcome": "error",
     "error": {"type": "ProviderError", "message": "overloaded", "status_code": 529, …}}

An event record has the event's class name as ``type`` and its fields, except
``raw`` (the provider's own chunk, which may hold anything and is never
written). Only public names of ``schwarm_stream`` are used, so a recording
made by one version replays in another as long as the event fields exist.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import schwarm_stream
from schwarm_stream import (
    Chunk,
    Event,
    Extra,
    Finish,
    Heartbeat,
    LimitExceeded,
    ProtocolError,
    ProviderError,
    Reset,
    ResponseInfo,
    StreamError,
    StreamTimeout,
    ToolCallDelta,
    Usage,
)

__all__ = ["EVENT_TYPES", "RECORD_VERSION", "decode_error", "decode_event", "encode_error", "encode_event"]

RECORD_VERSION = 1

#: Event classes by the name written in ``type``.
EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (Chunk, ToolCallDelta, Usage, Finish, ResponseInfo, Extra, Reset, Heartbeat)
}

# Field names per event class, computed once: encoding runs per delivered event.
_FIELDS: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("raw", "seq"))
    for cls in EVENT_TYPES.values()
}

# Error attributes worth keeping, by the constructor keyword they map to.
_ERROR_ATTRS = (
    "status_code",
    "error_type",
    "in_band",
    "retry_after",
    "should_retry",
    "kind",
    "offset",
    "limit",
)


def encode_event(stream_id: str, event: Event) -> dict[str, Any]:
    """The record of one delivered event (``raw`` excluded)."""
    cls = type(event)
    record: dict[str, Any] = {"stream": stream_id, "seq": event.seq, "type": cls.__name__}
    for name in _FIELDS[cls]:
        record[name] = getattr(event, name)
    return record


def decode_event(record: dict[str, Any]) -> Event:
    """The event of an event record (``seq`` left at 0: the replaying stream numbers its own)."""
    name = record.get("type")
    cls = EVENT_TYPES.get(name)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event type {name!r}; known: {', '.join(EVENT_TYPES)}")
    fields = {k: record[k] for k in _FIELDS[cls] if k in record}
    return cls(**fields)  # type: ignore[no-any-return]


def encode_error(error: BaseException | None) -> dict[str, Any] | None:
    """The class name, message and typed attributes of a stream's error."""
    if error is None:
        return None
    record: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    provider = getattr(error, "provider", None)
    if provider is not None:
        record["provider"] = provider
    for attr in _ERROR_ATTRS:
        value = getattr(error, attr, None)
        if value is not None:
            record[attr] = value
    return record


def decode_error(record: dict[str, Any]) -> StreamError:
    """The typed error a recorded error stands for (a plain ``StreamError`` for unknown types).

    ``PluginError`` and other non-stream failures become a ``StreamError`` whose
    message names the original type.
    """
    name = str(record.get("type", "StreamError"))
    message = str(record.get("message", ""))
    provider = record.get("provider")
    cls = getattr(schwarm_stream, name, None)
    if not (isinstance(cls, type) and issubclass(cls, StreamError)):
        return StreamError(f"{name}: {message}", provider=provider)
    if issubclass(cls, ProviderError):
        keys = ("status_code", "error_type", "in_band", "retry_after", "should_retry")
        return cls(message, provider=provider, **{k: record[k] for k in keys if k in record})
    if issubclass(cls, StreamTimeout):
        return cls(message, kind=str(record.get("kind", "total")), provider=provider)
    if issubclass(cls, LimitExceeded):
        return cls(message, limit=str(record.get("limit", "message")), provider=provider)
    if issubclass(cls, ProtocolError):
        return cls(message, offset=record.get("offset"), provider=provider)
    return cls(message, provider=provider)
