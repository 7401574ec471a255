"""HTTP/1.1 plumbing of the provider server: reply types and one client connection.

Parsing and framing are h11's job; this module decides *when* bytes go out and *how* a body ends, which
is what the faults are about. A streamed (SSE) body is always sent with ``Transfer-Encoding: chunked`` so
the three ways of ending it are distinguishable by the client:

- ``"eof"``: the terminating ``0\\r\\n\\r\\n`` chunk, a complete HTTP message (the connection stays
  reusable); whether the *provider protocol* terminator was in the parts is up to the script;
- ``"truncate"``: TCP FIN without the terminating chunk; the client sees an incomplete chunked body;
- ``"rst"``: ``SO_LINGER`` 0 and close, so the kernel sends RST;
- ``"stall"``: nothing more is written until the client goes away.
"""

from __future__ import annotations

import asyncio
import http
import itertools
import json
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

try:
    import h11
except ImportError as exc:  # the loopback server is an extra
    from .._errors import MissingDependency

    raise MissingDependency(
        "the test server needs the 'h11' package: pip install 'schwarm-stream[testing]'"
    ) from exc

__all__ = [
    "Action",
    "Drip",
    "JSONReply",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "SSEReply",
    "Sleep",
    "SlowHeaders",
    "Split",
    "Stall",
]

_READ_SIZE = 65536
_MAX_BODY = 64 * 1024 * 1024  # a request body bigger than this is a bug in the test, not a load test


# --------------------------------------------------------------------------------------------------------
# Actions between the parts of an SSEReply


@dataclass(frozen=True)
class Sleep:
    """Pause ``seconds`` between two parts (the connection stays open)."""

    seconds: float


@dataclass(frozen=True)
class Stall:
    """Write nothing until ``event`` is set, or forever when ``event`` is None.

    Use an ``asyncio.Event`` with :class:`ProviderServer` (same loop) and a ``threading.Event`` with
    :class:`ThreadedProviderServer`. Either way the server's event loop is never blocked, and the stall
    ends early when the client disconnects.
    """

    event: asyncio.Event | threading.Event | None = None


@dataclass(frozen=True)
class Drip:
    """Write ``data`` one byte per chunk, ``interval`` seconds apart (slowloris, split everything)."""

    data: bytes
    interval: float


@dataclass(frozen=True)
class Split:
    """Write ``data`` as separate chunks cut at the byte offsets ``at``.

    Each piece is its own HTTP chunk, so the client's HTTP layer hands it to the SSE decoder as a separate
    read even on loopback: splitting inside a multibyte UTF-8 character or between ``\\r`` and ``\\n``
    is exact. ``interval`` optionally pauses between pieces.
    """

    data: bytes
    at: Sequence[int]
    interval: float = 0.0

    def pieces(self) -> list[bytes]:
        """The pieces of ``data``; offsets are validated (sorted, inside the data)."""
        cuts = [0, *self.at, len(self.data)]
        if any(b < a for a, b in itertools.pairwise(cuts)):
            raise ValueError(f"Split offsets must be sorted and within 0..{len(self.data)}: {list(self.at)}")
        return [self.data[a:b] for a, b in itertools.pairwise(cuts) if b > a]


Action = Sleep | Stall | Drip | Split


# --------------------------------------------------------------------------------------------------------
# Replies


@dataclass
class SSEReply:
    """A streamed reply: status and headers, then ``parts`` as chunks, then an ``end``.

    Every ``bytes`` part is written and flushed as its own HTTP chunk; actions (:class:`Sleep`,
    :class:`Stall`, :class:`Drip`, :class:`Split`) run in between. ``headers`` are added to (and override)
    the defaults ``content-type``, ``cache-control`` and ``x-request-id``.
    """

    parts: Sequence[bytes | Action]
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    end: Literal["eof", "truncate", "rst", "stall"] = "eof"
    content_type: str = "text/event-stream"


@dataclass
class JSONReply:
    """A complete (``content-length``) reply. ``body`` is JSON-encoded unless it is ``bytes``.

    Use it for 4xx/5xx with ``retry-after``/``retry-after-ms``/``x-should-retry`` headers, for
    non-streaming answers, and, with ``bytes`` and a ``content-type: text/html`` header, for the
    "proxy error page with status 200" fault.
    """

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RawReply:
    """Bytes written straight to the socket, bypassing HTTP framing (malformed status lines etc.).

    The connection is closed afterwards, since its framing is unknown: ``"eof"`` and ``"truncate"``
    close with FIN, ``"rst"`` with RST.
    """

    data: bytes
    end: Literal["eof", "truncate", "rst"] = "eof"


@dataclass
class SlowHeaders:
    """Wait ``seconds`` before sending anything, then send ``then`` (a before-headers timeout)."""

    seconds: float
    then: Reply


Reply = SSEReply | JSONReply | RawReply | SlowHeaders


@dataclass
class RecordedRequest:
    """One request as the server received it.

    ``headers`` has lower-case names (repeated headers joined with ``", "``); ``json`` is the parsed
    body or None; ``route`` is the route name, None for an unknown path; ``connection_id`` numbers
    the TCP connections, so keep-alive reuse is visible.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    route: str | None = None
    connection_id: int = 0


def error_body(message: str, type: str = "invalid_request_error") -> dict[str, Any]:
    """An error body both SDKs understand (Anthropic's envelope; OpenAI reads ``error.message``)."""
    return {"type": "error", "error": {"type": type, "message": message, "param": None, "code": None}}


# --------------------------------------------------------------------------------------------------------
# One client connection


@dataclass
class Head:
    """The parsed request line, headers and body, before routing."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection_id: int


class Connection:
    """Serves the requests of one TCP connection, one after another (keep-alive).

    ``dispatch`` turns each request into a reply; ``on_reply`` is told when a reply starts, so the server
    knows which connection is "currently streaming". During a reply, a watcher task reads the socket: EOF
    means the client went away, and the reply is cancelled at once (a client that cancels its stream
    must not keep the server writing, and tests check that the socket closes).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection_id: int,
        dispatch: Callable[[Head], Awaitable[Reply]],
        on_reply: Callable[[Connection], None],
        on_disconnect: Callable[[Connection], None],
    ) -> None:
        self.id = connection_id
        self.disconnected = asyncio.Event()
        self._reader = reader
        self._writer = writer
        self._dispatch = dispatch
        self._on_reply = on_reply
        self._on_disconnect = on_disconnect
        self._h11 = h11.Connection(h11.SERVER)
        self._replies = 0

    async def serve(self) -> None:
        """Handle requests until the client closes, a fault ends the connection, or cancellation."""
        try:
            while True:
                head = await self._read_request()
                if head is None:
                    return
                reply = await self._dispatch(head)
                self._on_reply(self)
                reusable = await self._run_reply(reply)
                # MUST_CLOSE (client sent "connection: close") or a fault: this connection is finished.
                if (
                    not reusable
                    or self._h11.our_state is not h11.DONE
                    or self._h11.their_state is not h11.DONE
                ):
                    return
                self._h11.start_next_cycle()
        except OSError:
            return  # the client went away between requests (reset, broken pipe)
        finally:
            # FIN after the buffered bytes are flushed; a client that already left gets nothing anyway.
            # close() of the server aborts instead, and faults have ended the transport themselves.
            if not self._writer.transport.is_closing():
                self._writer.transport.close()
            self._gone()

    def abort(self) -> None:
        """Close the socket now, without flushing (used on server shutdown)."""
        self._writer.transport.abort()

    # -- reading --------------------------------------------------------------------------------------

    async def _next_event(self) -> Any:
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self._h11.receive_data(await self._reader.read(_READ_SIZE))

    async def _read_request(self) -> Head | None:
        try:
            event = await self._next_event()
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
            assert isinstance(event, h11.Request)
            body = bytearray()
            while True:
                part = await self._next_event()
                if isinstance(part, h11.EndOfMessage):
                    break
                if isinstance(part, h11.ConnectionClosed):
                    return None
                body += part.data
                if len(body) > _MAX_BODY:
                    raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
        except h11.RemoteProtocolError as exc:
            # h11's documented pattern: answer the broken request if we still can, then close.
            if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                body_bytes = _json_bytes(error_body(f"malformed request: {exc}"))
                await self._send(
                    h11.Response(
                        status_code=exc.error_status_hint,
                        headers=_json_headers(body_bytes),
                        reason=_reason(exc.error_status_hint),
                    )
                )
                await self._send(h11.Data(data=body_bytes))
                await self._send(h11.EndOfMessage())
            return None
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        return Head(
            event.method.decode("ascii"), event.target.decode("latin-1"), headers, bytes(body), self.id
        )

    # -- replying -------------------------------------------------------------------------------------

    async def _run_reply(self, reply: Reply) -> bool:
        """Send ``reply`` while watching for the client's disconnect; True if the connection is reusable."""
        sender = asyncio.create_task(self._send_reply(reply))
        watcher = asyncio.create_task(self._watch_client())
        try:
            await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, watcher):
                task.cancel()
            await asyncio.gather(sender, watcher, return_exceptions=True)
        if sender.cancelled() or sender.exception() is not None or self.disconnected.is_set():
            return False
        return sender.result()

    async def _watch_client(self) -> None:
        # Bytes arriving mid-reply (a pipelined request) are handed to h11, which buffers them.
        try:
            while data := await self._reader.read(_READ_SIZE):
                self._h11.receive_data(data)
        except OSError:
            pass
        self._gone()

    def _gone(self) -> None:
        if not self.disconnected.is_set():
            self.disconnected.set()
            self._on_disconnect(self)

    async def _send(self, event: Any) -> None:
        data = self._h11.send(event)
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def _send_reply(self, reply: Reply) -> bool:
        self._replies += 1
        if isinstance(reply, SlowHeaders):
            await asyncio.sleep(reply.seconds)
            return await self._send_reply(reply.then)
        if isinstance(reply, JSONReply):
            body = reply.body if isinstance(reply.body, bytes) else _json_bytes(reply.body)
            headers = _merge(_json_headers(body), self._request_id(), reply.headers)
            await self._send(
                h11.Response(status_code=reply.status, headers=headers, reason=_reason(reply.status))
            )
            await self._send(h11.Data(data=body))
            await self._send(h11.EndOfMessage())
            return True
        if isinstance(reply, RawReply):
            self._writer.write(reply.data)
            await self._end_connection("rst" if reply.end == "rst" else "truncate")
            return False
        if isinstance(reply, SSEReply):
            return await self._send_sse(reply)
        raise TypeError(f"not a reply: {reply!r}")

    async def _send_sse(self, reply: SSEReply) -> bool:
        defaults = {
            "content-type": reply.content_type,
            "cache-control": "no-cache",
            "transfer-encoding": "chunked",
        }
        headers = _merge(list(defaults.items()), self._request_id(), reply.headers)
        await self._send(
            h11.Response(status_code=reply.status, headers=headers, reason=_reason(reply.status))
        )
        for part in reply.parts:
            if isinstance(part, bytes):
                await self._send(h11.Data(data=part))
            elif isinstance(part, Sleep):
                await asyncio.sleep(part.seconds)
            elif isinstance(part, Stall):
                await _wait_for(part.event)
            elif isinstance(part, Drip):
                for i in range(len(part.data)):
                    if i:
                        await asyncio.sleep(part.interval)
                    await self._send(h11.Data(data=part.data[i : i + 1]))
            elif isinstance(part, Split):
                for i, piece in enumerate(part.pieces()):
                    if i and part.interval:
                        await asyncio.sleep(part.interval)
                    await self._send(h11.Data(data=piece))
            else:
                raise TypeError(f"not a part or action: {part!r}")
        if reply.end == "eof":
            await self._send(h11.EndOfMessage())
            return True
        if reply.end == "stall":
            await asyncio.get_running_loop().create_future()  # until the watcher sees the client leave
        await self._end_connection(reply.end)
        return False

    async def _end_connection(self, how: str) -> None:
        """End the TCP connection after everything written so far reached the kernel."""
        transport = self._writer.transport
        # With a zero high-water mark, drain() returns only once the buffer is empty (all bytes sent).
        transport.set_write_buffer_limits(high=0)
        await self._writer.drain()
        if how == "rst":
            sock = self._writer.get_extra_info("socket")
            if sock is not None:
                # l_onoff=1, l_linger=0: close() discards the connection with RST instead of FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()  # FIN; for a chunked body the terminating chunk was never sent

    def _request_id(self) -> list[tuple[str, str]]:
        rid = f"req_{self.id}_{self._replies}"
        return [("x-request-id", rid), ("request-id", rid)]


def _json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _json_headers(body: bytes) -> list[tuple[str, str]]:
    return [("content-type", "application/json"), ("content-length", str(len(body)))]


def _merge(*groups: Sequence[tuple[str, str]] | Mapping[str, str]) -> list[tuple[str, str]]:
    """Later groups override earlier ones, by case-insensitive name."""
    merged: dict[str, tuple[str, str]] = {}
    for group in groups:
        items = group.items() if isinstance(group, Mapping) else group
        for name, value in items:
            merged[name.lower()] = (name, str(value))
    return list(merged.values())


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""  # e.g. Anthropic's 529


async def _wait_for(event: asyncio.Event | threading.Event | None) -> None:
    if event is None:
        await asyncio.get_running_loop().create_future()
    elif isinstance(event, asyncio.Event):
        await event.wait()
    else:
        # Polling keeps the loop free and stays cancellable; a thread blocked in
        # threading.Event.wait() could not be cancelled and would outlive close().
        while not event.is_set():  # noqa: ASYNC110 - a threading.Event cannot be awaited
            await asyncio.sleep(0.005)
