"""Sinks: deliver a stream's events to browsers and other processes.

- :class:`SSESink` — a plugin writing every delivered event into a per-channel ring buffer; its
  :meth:`~SSESink.frames` produce spec-correct Server-Sent Events with ``Last-Event-ID`` resume;
- :func:`serve_websocket` / :func:`websocket_messages` — the same channels over a WebSocket;
- :func:`encode_sse` — the SSE encoder on its own;
- :func:`negotiate_encoding` / :class:`FrameCompressor` / :func:`compress_frames` — compressed SSE
  replies (gzip, zstd, brotli where installed) flushed per event.

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
from .sse import (
    CHANNEL_KEY,
    SSE_ENCODINGS,
    SSE_HEADERS,
    FrameCompressor,
    SSESink,
    available_encodings,
    compress_frames,
    encode_entry,
    encode_sse,
    negotiate_encoding,
)
from .websocket import encode_ws_entry, error_message, serve_websocket, websocket_messages

__all__ = [
    "CHANNEL_KEY",
    "FORMATTERS",
    "HEARTBEAT",
    "SSE_ENCODINGS",
    "SSE_HEADERS",
    "ChannelRegistry",
    "Entry",
    "EventLog",
    "Formatter",
    "FrameCompressor",
    "InvalidLastEventId",
    "Item",
    "JSONFormatter",
    "MessageMetadata",
    "ResumeError",
    "ResumeGone",
    "SSESink",
    "UnknownChannel",
    "VercelFormatter",
    "available_encodings",
    "compress_frames",
    "encode_entry",
    "encode_sse",
    "encode_ws_entry",
    "error_message",
    "make_formatter",
    "negotiate_encoding",
    "parse_last_event_id",
    "serve_websocket",
    "vercel_finish_reason",
    "websocket_messages",
]
