"""Sinks: deliver a stream's events to browsers and other processes.

- :class:`SSESink` — a plugin writing every delivered event into a per-channel ring buffer; its
  :meth:`~SSESink.frames` produce spec-correct Server-Sent Events with ``Last-Event-ID`` resume;
- :func:`serve_websocket` / :func:`websocket_messages` — the same channels over a WebSocket;
- :func:`encode_sse` — the SSE encoder on its own.

Importing this package imports no web framework; the Starlette integration is the separate
``schwarm-stream-starlette`` distribution.
"""

from ._log import (
    HEARTBEAT,
    ChannelRegistry,
    Entry,
    EventLog,
    InvalidLastEventId,
    Item,
    ResumeError,
    ResumeGone,
    UnknownChannel,
    parse_last_event_id,
)
from ._vocab import (
    FORMATTERS,
    Formatter,
    JSONFormatter,
    MessageMetadata,
    VercelFormatter,
    make_formatter,
    vercel_finish_reason,
)
from .sse import CHANNEL_KEY, SSE_HEADERS, SSESink, encode_entry, encode_sse
from .websocket import encode_ws_entry, error_message, serve_websocket, websocket_messages

__all__ = [
    "CHANNEL_KEY",
    "FORMATTERS",
    "HEARTBEAT",
    "SSE_HEADERS",
    "ChannelRegistry",
    "Entry",
    "EventLog",
    "Formatter",
    "InvalidLastEventId",
    "Item",
    "JSONFormatter",
    "MessageMetadata",
    "ResumeError",
    "ResumeGone",
    "SSESink",
    "UnknownChannel",
    "VercelFormatter",
    "encode_entry",
    "encode_sse",
    "encode_ws_entry",
    "error_message",
    "make_formatter",
    "parse_last_event_id",
    "serve_websocket",
    "vercel_finish_reason",
    "websocket_messages",
]
