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

Admission (``StreamHub(admission=pipeline.admission)``): :meth:`StreamHub.admit` and
:meth:`StreamHub.stream` take a slot before they answer, so a full server answers **503** with
``Retry-After`` instead of starting a producer it cannot run. Delivery besides the channels:
:meth:`StreamHub.broadcast` writes one event into every open channel, :meth:`StreamHub.send` to one
connection (an SSE response or a WebSocket, by the id its ``X-Connection-Id`` header names).
SSE replies are compressed (zstd, br, gzip) when the client accepts it, flushed per event.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from schwarm_stream import Admission, AdmissionRefused, Config, Permit, StreamCancelled
from schwarm_stream.sinks import (
    CHANNEL_KEY,
    EventLog,
    Item,
    ResumeError,
    SSESink,
    encode_sse,
    serve_websocket,
)
from schwarm_stream.sinks.sse import compress_frames, negotiate_encoding

from ._guard import WebGuard
from .plugin import WebSettings

__all__ = ["Authorize", "Channel", "Connection", "Producer", "StreamHub", "refused_response"]

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

_END = object()


class Connection:
    """One subscriber: an SSE response or a WebSocket, addressable by :meth:`StreamHub.send`.

    ``id`` is sent to the client in the ``X-Connection-Id`` response header.
    """

    def __init__(
        self, connection_id: str, channel_id: str, kind: str, send: Callable[[str, Any], Awaitable[None]]
    ) -> None:
        self.id = connection_id
        self.channel_id = channel_id
        self.kind = kind
        self._send = send

    async def send(self, data: Any, *, event: str | None = "message") -> None:
        """Send one event to this connection only (not written to the channel: no id, no replay)."""
        await self._send(event or "message", data)

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.kind} channel={self.channel_id}>"


def refused_response(exc: AdmissionRefused) -> Response:
    """The **503** answer to a refused admission: ``Retry-After`` (whole seconds) from ``exc.retry_after``."""
    retry = exc.retry_after if exc.retry_after is not None else 1.0
    return JSONResponse(
        {"error": "AdmissionRefused", "reason": exc.reason, "limit": exc.limit, "message": str(exc)},
        status_code=503,
        headers={"Retry-After": str(max(0, math.ceil(retry)))},
    )


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
        admission: Admission | None = None,
        **overrides: Any,
    ) -> None:
        self.authorize = authorize
        #: the pipeline's admission control (``pipeline.admission``): :meth:`admit` and :meth:`stream` use it
        self.admission = admission
        #: the live subscribers by connection id (:meth:`send`)
        self.connections: dict[str, Connection] = {}
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

    def start(
        self, produce: Producer, *, channel_id: str | None = None, permit: Permit | None = None
    ) -> Channel:
        """Open a channel and run ``produce(channel)`` in a background task; returns the channel.

        ``permit`` (from :meth:`Admission.acquire`) covers the producer's first stream and is
        released when the producer ends.
        """
        log_ = self.sink.channel(channel_id)
        ch = Channel(log_.id, log_)
        self.channels[ch.id] = ch
        self._forget_closed()
        if permit is None:
            ch.task = asyncio.create_task(self._produce(ch, produce), name=f"schwarm-producer-{ch.id}")
        else:
            with permit.covering():  # the task copies this context: its first stream uses the permit
                ch.task = asyncio.create_task(
                    self._produce(ch, produce, permit), name=f"schwarm-producer-{ch.id}"
                )
        return ch

    async def admit(
        self, produce: Producer, *, provider: str | None = None, channel_id: str | None = None
    ) -> Channel:
        """:meth:`start` after taking an admission slot (waiting as the admission says).

        Raises :class:`~schwarm_stream.AdmissionRefused` when no slot is to be had: answer it with
        :func:`refused_response` (503, ``Retry-After``), or let :attr:`exception_handlers` do it.
        ``provider`` also takes that provider's slot. Without an admission it is :meth:`start`.
        """
        if self.admission is None:
            return self.start(produce, channel_id=channel_id)
        permit = await self.admission.acquire(provider)
        try:
            return self.start(produce, channel_id=channel_id, permit=permit)
        except BaseException:
            permit.release()
            raise

    @property
    def exception_handlers(self) -> dict[Any, Callable[..., Any]]:
        """``Starlette(..., exception_handlers=hub.exception_handlers)``: AdmissionRefused -> 503."""

        async def refused(request: Request, exc: Exception) -> Response:
            return refused_response(exc)  # type: ignore[arg-type]  # registered for AdmissionRefused only

        return {AdmissionRefused: refused}

    async def _produce(self, ch: Channel, produce: Producer, permit: Permit | None = None) -> None:
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
            if permit is not None:
                permit.release()
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

    def admin_routes(
        self, *, authorize: Any, registry: Any = None, prefix: str = "/admin/streams"
    ) -> list[Any]:
        """The registry's admin endpoint (opt-in, ``authorize(request)`` gates every request): see
        :func:`~schwarm_stream_starlette.admin_routes`; the hub's :attr:`admission` stats included."""
        from ._admin import admin_routes

        return admin_routes(authorize=authorize, registry=registry, admission=self.admission, prefix=prefix)

    # -- broadcast and direct delivery ----------------------------------------------------------

    def broadcast(self, data: Any, *, event: str | None = "message") -> int:
        """Write one event into every open channel (each subscriber gets it, resumes replay it).

        ``data`` is sent as JSON (a ``str`` as is). Returns the number of channels written to. In
        the ``vercel`` format send a ``data-*`` part (``event=None, data={"type": "data-notice", ...}``).
        """
        text, is_json = (
            (data, False) if isinstance(data, str) else (json.dumps(data, ensure_ascii=False), True)
        )
        n = 0
        for ch in list(self.channels.values()):
            if not ch.log.closed:
                ch.log.append([Item(event, text, is_json)])
                n += 1
        return n

    async def send(self, connection_id: str, data: Any, *, event: str | None = "message") -> bool:
        """Send one event to one connection only (no id: it is not part of the channel, not replayed).

        ``False`` when no such connection is open. Waits while that client's buffer is full.
        """
        conn = self.connections.get(connection_id)
        if conn is None:
            return False
        await conn.send(data, event=event)
        return True

    def guard(self, app: Any) -> WebGuard:
        """``app`` wrapped with the body size limit (``max_body``, 413) and CORS (``cors_origins``)."""
        return WebGuard(app, max_body=self.settings.max_body, cors_origins=self.settings.cors_origins)

    # -- subscribers ------------------------------------------------------------------------------

    def sse(
        self,
        request: Request,
        channel_id: str,
        *,
        max_events: int | None = None,
        connection_id: str | None = None,
    ) -> Response:
        """An SSE response for ``channel_id``, resuming after the request's ``Last-Event-ID``.

        404 for an unknown channel, 410 when the id left the ring buffer, 400 for a malformed id.
        ``max_events`` ends the response after that many entries (the browser reconnects).
        403 when the hub's ``authorize`` hook denies the request. The reply is compressed when the
        request's ``Accept-Encoding`` allows one of ``compression`` (each event flushed on its
        own). ``connection_id`` names this subscriber for :meth:`send` (default: a random id); the
        response carries it in ``X-Connection-Id``.
        """
        if self.authorize is not None:
            allowed = self.authorize(request, channel_id)
            if inspect.isawaitable(allowed):
                return _Deferred(allowed, lambda: self._sse(request, channel_id, max_events, connection_id))  # type: ignore[return-value]
            if not allowed:
                return _forbidden()
        return self._sse(request, channel_id, max_events, connection_id)

    def _sse(
        self, request: Request, channel_id: str, max_events: int | None, connection_id: str | None = None
    ) -> Response:
        s = self.settings
        encoding = (
            negotiate_encoding(request.headers.get("accept-encoding"), s.compression)
            if s.compression
            else None
        )
        try:
            # compressed, the keep-alive comments must go through the compressor: ours, not sse-starlette's
            frames = self.sink.frames(
                channel_id,
                request.headers.get("last-event-id"),
                heartbeat=s.ping if encoding else None,
                max_entries=max_events,
            )
        except ResumeError as exc:
            return _error_response(exc)
        self._attached(channel_id)
        cid = connection_id or uuid.uuid4().hex
        direct: asyncio.Queue[Any] = asyncio.Queue(maxsize=16)

        async def push(event: str, data: Any) -> None:
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            await direct.put(encode_sse(text, event=event))

        conn = Connection(cid, channel_id, "sse", push)
        self.connections[cid] = conn

        async def merged() -> AsyncIterator[bytes]:
            # One pump task per response (not per event) feeds the channel's frames into the same
            # bounded queue as direct sends: a slow client still falls behind the ring (410 on resume).
            failure: list[BaseException] = []

            async def pump() -> None:
                try:
                    async with aclosing(frames) as it:
                        async for text in it:
                            await direct.put(text)
                except Exception as exc:  # re-raised in the response
                    failure.append(exc)
                else:
                    await direct.put(_END)  # not when cancelled: the response is gone
                finally:
                    # Here, in the pump's own task: the response's task may sit in a cancelled
                    # anyio scope where every further await is cancelled at once.
                    if self.connections.get(cid) is conn:
                        del self.connections[cid]
                    self._detached(channel_id)
                if failure:
                    await direct.put(_END)

            task = asyncio.create_task(pump())
            try:
                while True:
                    item = await direct.get()
                    if item is _END:
                        break
                    yield item.encode("utf-8", "replace")  # frames are already UTF-8 clean
                if failure:
                    raise failure[0]
            finally:
                task.cancel()  # closes the subscription in the pump's task

        headers = {k: v for k, v in self.sink.headers.items() if k.lower() != "content-type"}
        headers["X-Connection-Id"] = cid
        body: AsyncIterator[bytes] = merged()
        if s.compression:
            headers["Vary"] = "Accept-Encoding"
        if encoding is not None:
            headers["Content-Encoding"] = encoding
            body = compress_frames(body, encoding, level=s.compression_level)
        return EventSourceResponse(
            body, headers=headers, ping=0 if encoding else s.ping, send_timeout=s.send_timeout
        )

    def stream(self, request: Request, produce: Producer, *, provider: str | None = None) -> Response:
        """Start ``produce`` and answer this request with its SSE stream (one-shot endpoints).

        With an :attr:`admission`, a slot is taken first (``provider``'s too, if given): no slot
        means **503** with ``Retry-After`` and no producer.
        """
        if self.admission is None:
            ch = self.start(produce)
            return self.sse(request, ch.id)
        return _Admitted(self, request, produce, provider)  # type: ignore[return-value]

    async def websocket(
        self, websocket: WebSocket, channel_id: str, *, connection_id: str | None = None
    ) -> None:
        """Serve ``channel_id`` on an accepted-here WebSocket; ``?after=N`` resumes after id N.

        ``connection_id`` names it for :meth:`send` (default: random; sent in ``X-Connection-Id``).
        permessage-deflate is negotiated by the server (uvicorn's default for its WebSocket
        implementations; :func:`~schwarm_stream_starlette.serve` keeps it on).
        """
        cid = connection_id or uuid.uuid4().hex
        await websocket.accept(headers=[(b"x-connection-id", cid.encode("latin-1", "replace"))])
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
        lock = asyncio.Lock()  # channel messages and direct sends never interleave mid-message

        async def send_text(text: str) -> None:
            async with lock:
                await websocket.send_text(text)

        async def push(event: str, data: Any) -> None:
            await send_text(json.dumps({"event": event, "data": data}, ensure_ascii=False))

        conn = Connection(cid, channel_id, "websocket", push)
        self.connections[cid] = conn
        sender = asyncio.create_task(serve_websocket(self.sink, channel_id, send_text, after))
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
            if self.connections.get(cid) is conn:
                del self.connections[cid]
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


class _Admitted:
    """The ASGI answer of :meth:`StreamHub.stream` with admission: a slot, then the SSE; or 503."""

    def __init__(self, hub: StreamHub, request: Request, produce: Producer, provider: str | None) -> None:
        self.hub = hub
        self.request = request
        self.produce = produce
        self.provider = provider

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            ch = await self.hub.admit(self.produce, provider=self.provider)
        except AdmissionRefused as exc:
            await refused_response(exc)(scope, receive, send)
            return
        await self.hub.sse(self.request, ch.id)(scope, receive, send)


async def _until_disconnect(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
