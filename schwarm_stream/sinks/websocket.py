"""WebSocket delivery: the same channels, vocabulary and resume-by-sequence as the SSE sink.

Each item of a channel entry becomes one text message, a JSON object::

    {"id": 12, "event": "chunk", "data": {"text": "Hel", "kind": "text", "index": 0, "choice": 0}}

``id`` is present on the last message of an entry only (like the SSE ``id:`` field), ``event`` is the
vocabulary's event name (``null`` for the Vercel protocol's unnamed parts), ``data`` the payload (a
JSON value, or a string for non-JSON payloads such as ``[DONE]``). A client resumes by reconnecting
with the last ``id`` it saw (``after``). Heartbeats are ``{"event": "heartbeat"}``. When the request
cannot be served the only message is ``{"event": "error", "data": {"status": 410, ...}}`` and the
connection should be closed with code ``4000 + status`` (e.g. 4410).

The functions here take plain ``send`` callables, so they work with Starlette's ``WebSocket.send_text``,
the ``websockets`` library's ``connection.send`` or any other server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from ._log import HEARTBEAT, Entry, Item, ResumeError, clean_text, parse_last_event_id
from .sse import SSESink

__all__ = ["encode_ws_entry", "error_message", "serve_websocket", "websocket_messages"]


def _message(item: Item, entry_id: int | None) -> str:
    data = item.data if item.is_json else json.dumps(item.data, ensure_ascii=False)
    head = "{" if entry_id is None else f'{{"id":{entry_id},'
    return clean_text(f'{head}"event":{json.dumps(item.event)},"data":{data}}}')


def encode_ws_entry(entry: Entry) -> list[str]:
    """The WebSocket text messages of one entry (the id on the last one)."""
    last = len(entry.items) - 1
    return [_message(item, entry.id if n == last else None) for n, item in enumerate(entry.items)]


def error_message(error: ResumeError) -> str:
    """The message sent instead of events when a subscription cannot be served."""
    return json.dumps({"event": "error", "data": {"status": error.status, "message": str(error)}})


def websocket_messages(
    sink: SSESink,
    channel_id: str,
    after: str | int | None = None,
    *,
    heartbeat: float | None = None,
) -> AsyncGenerator[str, None]:
    """The text messages for one WebSocket subscriber, from after ``after`` until the channel closes.

    Raises :class:`~schwarm_stream.sinks.ResumeError` (404 / 410 / 400) before the first message.
    """
    log = sink.get(channel_id)
    cursor = after if isinstance(after, int) or after is None else parse_last_event_id(after)
    log.check(cursor)

    async def gen() -> AsyncGenerator[str, None]:
        async with aclosing(log.follow(cursor, heartbeat=heartbeat)) as entries:
            async for entry in entries:
                if entry is HEARTBEAT:
                    yield '{"event":"heartbeat"}'
                    continue
                for msg in encode_ws_entry(entry):
                    yield msg

    return gen()


async def serve_websocket(
    sink: SSESink,
    channel_id: str,
    send: Callable[[str], Awaitable[Any]],
    after: str | int | None = None,
    *,
    heartbeat: float | None = None,
) -> int:
    """Send a channel to one WebSocket; returns the close code to use (1000, or 4000 + HTTP status)."""
    try:
        messages: Any = websocket_messages(sink, channel_id, after, heartbeat=heartbeat)
    except ResumeError as exc:
        await send(error_message(exc))
        return 4000 + exc.status
    try:
        async for msg in messages:
            await send(msg)
    except ResumeError as exc:  # fell behind the ring buffer while connected
        await send(error_message(exc))
        return 4000 + exc.status
    finally:
        await messages.aclose()
    return 1000
