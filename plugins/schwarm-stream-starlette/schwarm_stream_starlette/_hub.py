"""StreamHub: producers run in background tasks, browsers subscribe to their channels over SSE or WebSocket.

A producer is any coroutine function taking a :class:`Channel` — typically an agent loop that opens
one or more streams with ``metadata=channel.metadata`` on a pipeline holding ``hub.sink``. The
producer never waits for browsers: the sink writes into the channel's ring buffer, and each HTTP
response follows it from the client's ``Last-Event-ID``. So a dropped connection loses nothing: the
browser's ``EventSource`` reconnects and the response replays exactly what it missed.

When the last subscriber of a running channel disconnects, ``on_disconnect`` decides: ``finish``
(default) lets the producer run to the end (a reconnect resumes, and the message is complete for
whoever persists it), ``cancel`` cancels the producer task if nobody re-subscribed within
``cancel_grace`` seconds (its stream then ends with outcome ``cancelled``, closing the provider
connection).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from schwarm_stream import Config, StreamCancelled
from schwarm_stream.sinks import CHANNEL_KEY, EventLog, ResumeError, SSESink, serve_websocket

from ._guard import WebGuard
from .plugin import WebSettings

__all__ = ["Authorize", "Channel", "Producer", "StreamHub"]

log = logging.getLogger("schwarm_stream.starlette")


@dataclass
class Channel:
    """A running (or finished) producer and the ring buffer it writes into."""

    id: str
    log: EventLog
    task: asyncio.Task[None] | None = None
    cancelled_by_disconnect: bool = False
    error: BaseException | None = None
    _cancel_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def metadata(self) -> dict[str, Any]:
        """Pass as ``metadata=`` when opening a stream so the sink writes into this channel."""
        return {CHANNEL_KEY: self.id}

    @property
    def done(self) -> bool:
        return self.log.closed


Producer = Callable[[Channel], Awaitable[Any]]

#: ``authorize(request_or_websocket, channel_id)`` -> truthy to allow, falsy to deny (403); may be async.
Authorize = Callable[[HTTPConnection, str], "bool | Awaitable[bool]"]


def _forbidden() -> Response:
    return JSONResponse(
        {"error": "Forbidden", "message": "not allowed to read this channel"}, status_code=403
    )


class _Deferred:
    """An ASGI response decided after an async authorization check."""

    def __init__(self, check: Awaitable[Any], respond: Callable[[], Response]) -> None:
        self.check = check
        self.respond = respond

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        response = self.respond() if await self.check else _forbidden()
        await response(scope, receive, send)


def _error_response(exc: ResumeError) -> Response:
    return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=exc.status)


class StreamHub:
    """Channels, their producers and their HTTP/WebSocket subscribers (see the module docstring).

    ``settings`` is a :class:`~schwarm_stream_starlette.WebSettings` (or a dict of its fields);
    keyword arguments override single fields. Register :attr:`sink` in the pipeline your producers
    use: ``Pipeline([hub.sink])``. ``authorize(request, channel_id)`` (sync or async) is asked before
    every SSE/WebSocket subscription; a falsy answer is a 403 (WebSocket: close code 4403). Wrap the
    app with :meth:`guard` for the body size limit and CORS.
    """

    def __init__(
        self,
        settings: WebSettings | Mapping[str, Any] | None = None,
        *,
        sink: SSESink | None = None,
        authorize: Authorize | None = None,
        **overrides: Any,
    ) -> None:
        self.authorize = authorize
        base = settings.model_dump() if isinstance(settings, WebSettings) else dict(settings or {})
        self.settings = WebSettings.model_validate({**base, **overrides})
        s = self.settings
        self.sink = sink or SSESink(
            format=s.format,
            history=s.history,
            retry=s.retry,
            heartbeat=None,  # sse-starlette sends the keep-alive comments (ping)
            expose_errors=s.expose_errors,
            keep_closed=s.keep_closed,
            auto_channels=False,
        )
        self.channels: dict[str, Channel] = {}

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> StreamHub:
        """A hub configured from the ``[starlette]`` section of a validated pipeline config."""
        section = config.section("starlette")
        if isinstance(section, WebSettings):
            return cls(section, **overrides)
        return cls(dict(section or {}), **overrides)

    # -- producers --------------------------------------------------------------------------------

    def start(self, produce: Producer, *, channel_id: str | None = None) -> Channel:
        """Open a channel and run ``produce(channel)`` in a background task; returns the channel."""
        log_ = self.sink.channel(channel_id)
        ch = Channel(log_.id, log_)
        self.channels[ch.id] = ch
        self._forget_closed()
        ch.task = asyncio.create_task(self._produce(ch, produce), name=f"schwarm-producer-{ch.id}")
        return ch

    async def _produce(self, ch: Channel, produce: Producer) -> None:
        error: BaseException | None = None
        try:
            await produce(ch)
        except asyncio.CancelledError:
            reason = "the client disconnected" if ch.cancelled_by_disconnect else "the producer was cancelled"
            error = StreamCancelled(reason)
        except Exception as exc:  # the producer's failure goes to the browser as an error event
            error = exc
            log.warning("channel %s: producer failed: %s: %s", ch.id, type(exc).__name__, exc)
        finally:
            ch.error = error
            self.sink.close_channel(ch.id, error=error)

    def _forget_closed(self) -> None:
        for cid in [c for c in self.channels if c not in self.sink.registry]:
            del self.channels[cid]

    async def aclose(self) -> None:
        """Cancel every running producer and wait for them (call at application shutdown)."""
        tasks = [c.task for c in self.channels.values() if c.task is not None and not c.task.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def guard(self, app: Any) -> WebGuard:
        """``app`` wrapped with the body size limit (``max_body``, 413) and CORS (``cors_origins``)."""
        return WebGuard(app, max_body=self.settings.max_body, cors_origins=self.settings.cors_origins)

    # -- subscribers ------------------------------------------------------------------------------

    def sse(self, request: Request, channel_id: str, *, max_events: int | None = None) -> Response:
        """An SSE response for ``channel_id``, resuming after the request's ``Last-Event-ID``.

        404 for an unknown channel, 410 when the id left the ring buffer, 400 for a malformed id.
        ``max_events`` ends the response after that many entries (the browser reconnects).
        403 when the hub's ``authorize`` hook denies the request.
        """
        if self.authorize is not None:
            allowed = self.authorize(request, channel_id)
            if inspect.isawaitable(allowed):
                return _Deferred(allowed, lambda: self._sse(request, channel_id, max_events))  # type: ignore[return-value]
            if not allowed:
                return _forbidden()
        return self._sse(request, channel_id, max_events)

    def _sse(self, request: Request, channel_id: str, max_events: int | None) -> Response:
        try:
            frames = self.sink.frames(
                channel_id, request.headers.get("last-event-id"), heartbeat=None, max_entries=max_events
            )
        except ResumeError as exc:
            return _error_response(exc)
        self._attached(channel_id)

        async def body() -> AsyncIterator[bytes]:
            try:
                async with aclosing(frames) as it:
                    async for text in it:
                        yield text.encode("utf-8", "replace")  # frames are already UTF-8 clean
            finally:
                self._detached(channel_id)

        headers = {k: v for k, v in self.sink.headers.items() if k.lower() != "content-type"}
        return EventSourceResponse(
            body(), headers=headers, ping=self.settings.ping, send_timeout=self.settings.send_timeout
        )

    def stream(self, request: Request, produce: Producer) -> Response:
        """Start ``produce`` and answer this request with its SSE stream (one-shot endpoints)."""
        ch = self.start(produce)
        return self.sse(request, ch.id)

    async def websocket(self, websocket: WebSocket, channel_id: str) -> None:
        """Serve ``channel_id`` on an accepted-here WebSocket; ``?after=N`` resumes after id N."""
        await websocket.accept()
        if self.authorize is not None:
            allowed = self.authorize(websocket, channel_id)
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if not allowed:
                await websocket.send_text(
                    '{"event":"error","data":{"status":403,"message":"not allowed to read this channel"}}'
                )
                await websocket.close(4403)
                return
        after = websocket.query_params.get("after")
        self._attached(channel_id)
        sender = asyncio.create_task(serve_websocket(self.sink, channel_id, websocket.send_text, after))
        # Watch for the client going away while the channel is quiet (a send would not notice).
        receiver = asyncio.create_task(_until_disconnect(websocket))
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done:
                code = sender.result()
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
                await websocket.close(code)
            else:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        except WebSocketDisconnect:
            pass
        finally:
            for t in (sender, receiver):
                if not t.done():
                    t.cancel()
            self._detached(channel_id)

    # -- disconnect policy ------------------------------------------------------------------------

    def _attached(self, channel_id: str) -> None:
        ch = self.channels.get(channel_id)
        if ch is not None and ch._cancel_timer is not None:
            ch._cancel_timer.cancel()  # a reconnect within the grace period
            ch._cancel_timer = None

    def _detached(self, channel_id: str) -> None:
        ch = self.channels.get(channel_id)
        if ch is None or ch.log.closed or self.settings.on_disconnect != "cancel":
            return
        if ch.log.subscribers > 0 or ch.task is None or ch.task.done():
            return
        loop = asyncio.get_running_loop()
        if ch._cancel_timer is not None:
            ch._cancel_timer.cancel()
        ch._cancel_timer = loop.call_later(self.settings.cancel_grace, self._cancel_if_alone, ch)

    def _cancel_if_alone(self, ch: Channel) -> None:
        ch._cancel_timer = None
        if ch.log.subscribers == 0 and ch.task is not None and not ch.task.done():
            ch.cancelled_by_disconnect = True
            ch.task.cancel()


async def _until_disconnect(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
