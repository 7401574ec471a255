"""Server-Sent Events: a spec-correct encoder and the SSE sink plugin.

Encoding follows the WHATWG rules (html.spec.whatwg.org, "Server-sent events"):

- one ``data:`` line per line of the payload, split on CRLF, lone CR and LF only (never
  ``str.splitlines()``, which also splits U+2028, U+0085, ... and would change the data);
- ``id`` and ``event`` values are stripped of CR, LF and NUL, so a value cannot end the field, start
  another one, or make the browser ignore the id;
- payloads are JSON by default (JSON escapes CR/LF/NUL), so model output cannot forge an event;
- ids are the channel's entry ids, equal to ``event.seq`` for a channel's first stream;
- heartbeats are ``:`` comment lines; ``retry:`` is written only here, from the sink's setting.

The encoder produces the same bytes as sse-starlette's ``ServerSentEvent`` with ``sep="\\n"`` (tested),
but lives in the core because the core must not depend on Starlette.

The :class:`SSESink` plugin writes every delivered event into a channel's ring buffer
(:class:`~schwarm_stream.sinks.EventLog`); :meth:`SSESink.frames` turns a subscription (with
``Last-Event-ID`` resume) into SSE text for any HTTP framework.

Compression (:func:`negotiate_encoding`, :func:`compress_frames`): zstd, br or gzip as the
client's ``Accept-Encoding`` allows, each frame flushed on its own so compression adds no
latency (generic gzip middleware skips ``text/event-stream`` or buffers it). zstd needs
``zstandard`` and br ``brotli`` (the ``compression`` extra); gzip is always there.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypeVar

from .._stash import StashKey
from ..hookspecs import hookimpl
from ._log import HEARTBEAT, ChannelRegistry, EventLog, Item, ResumeGone, clean_text, parse_last_event_id
from ._vocab import Formatter, make_formatter

if TYPE_CHECKING:
    from .._events import Event
    from .._stream import Stream

__all__ = [
    "CHANNEL_KEY",
    "SSE_ENCODINGS",
    "SSE_HEADERS",
    "FrameCompressor",
    "SSESink",
    "available_encodings",
    "compress_frames",
    "encode_entry",
    "encode_sse",
    "negotiate_encoding",
]

#: ``stream.metadata[CHANNEL_KEY]`` names the channel a stream writes into (else one per stream).
CHANNEL_KEY = "sse_channel"

#: Headers every SSE response should carry: no caching, no proxy buffering (nginx honours
#: ``X-Accel-Buffering``), the SSE media type.
SSE_HEADERS: dict[str, str] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
}

_T = TypeVar("_T")

_LINES = re.compile(r"\r\n|\r|\n")
_UNSAFE = re.compile(r"[\r\n\0]")


def _field(value: str) -> str:
    return _UNSAFE.sub("", value)


def encode_sse(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | int | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> str:
    """One SSE event (or comment) as text, ending with the blank line that dispatches it.

    ``retry`` must be a non-negative int (milliseconds); anything else is a ``TypeError``/``ValueError``.
    """
    lines: list[str] = []
    if comment is not None:
        lines.extend(": " + part for part in _LINES.split(comment))
    if id is not None:
        lines.append("id: " + _field(str(id)))
    if event is not None:
        name = _field(event)
        if name:
            lines.append("event: " + name)
    if data is not None:
        lines.extend("data: " + part for part in _LINES.split(data))
    if retry is not None:
        if not isinstance(retry, int) or isinstance(retry, bool):
            raise TypeError(f"retry must be an int (milliseconds), got {type(retry).__name__}")
        if retry < 0:
            raise ValueError(f"retry must be >= 0, got {retry}")
        lines.append(f"retry: {retry}")
    return clean_text("\n".join(lines) + "\n\n")  # always UTF-8 encodable (lone surrogates: U+FFFD)


def encode_entry(entry_id: int, items: tuple[Item, ...] | list[Item]) -> str:
    """The SSE text of one log entry: its items as events, the id on the last one only.

    The id goes last so that a client cut off in the middle of an entry resumes before it.
    """
    out = []
    last = len(items) - 1
    for n, item in enumerate(items):
        out.append(encode_sse(item.data, event=item.event, id=entry_id if n == last else None))
    return "".join(out)


class _StreamState:
    __slots__ = ("log", "owned")

    def __init__(self, log: EventLog, owned: bool) -> None:
        self.log = log
        self.owned = owned


class SSESink:
    """A sink plugin: every delivered event goes into a channel's ring buffer, formatted once.

    - ``format``: ``"json"`` (default), ``"text"`` (chunk text as plain ``data``), ``"vercel"`` (the AI
      SDK UI message stream) or a formatter factory;
    - ``history``: entries kept per channel for ``Last-Event-ID`` resume;
    - ``retry``: the reconnection delay (ms) sent to browsers at the start of every response;
    - ``heartbeat``: seconds of silence before a ``:`` comment (``None``: none, e.g. when the HTTP
      layer pings itself);
    - ``expose_errors``: include error messages (not only their type) in ``end``/``error`` events.

    A stream writes into ``stream.metadata["sse_channel"]`` when set (open it first with
    :meth:`channel`; several streams then share one channel, which the caller closes; a channel this
    sink does not hold is ignored), else — with ``auto_channels`` (the default) — into a channel of its
    own named after ``stream.id``, closed when the stream ends.
    """

    def __init__(
        self,
        *,
        format: str | Callable[[], Formatter] = "json",
        history: int = 1024,
        retry: int | None = 3000,
        heartbeat: float | None = 15.0,
        expose_errors: bool = False,
        keep_closed: int = 256,
        auto_channels: bool = True,
    ) -> None:
        make_formatter(format)  # validate the name now, not at the first stream
        self.format = format
        self.retry = retry
        self.heartbeat = heartbeat
        self.expose_errors = expose_errors
        self.auto_channels = auto_channels
        self.registry = ChannelRegistry(history=history, keep_closed=keep_closed)
        self._key: StashKey[_StreamState] = StashKey()

    # -- channels ---------------------------------------------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        """Response headers: :data:`SSE_HEADERS` plus the format's own (e.g. the Vercel protocol header)."""
        return {**SSE_HEADERS, **make_formatter(self.format).headers}

    def channel(self, channel_id: str | None = None) -> EventLog:
        """Open a channel that several streams can write into (pass ``metadata={"sse_channel": id}``)."""
        return self.registry.open(channel_id, formatter=make_formatter(self.format))

    def close_channel(self, channel_id: str, *, error: BaseException | None = None) -> None:
        """Close a channel opened with :meth:`channel`.

        An ``error`` (the producer failed or was cancelled) is rendered by the channel's format: a
        ``producer_error`` event in ``json``, one ``error`` (or, for a cancellation, ``abort``) part in
        ``vercel`` unless the failing stream already sent it.
        """
        log = self.registry.get(channel_id)
        if log.closed:
            return
        items: list[Item] = []
        if error is not None:
            failure = getattr(log.formatter, "failure", None)
            if failure is not None:
                items.extend(failure(error, expose_errors=self.expose_errors))
            else:  # a custom formatter written before failure() existed: the JSON event, as before
                info = {"type": type(error).__name__, "message": str(error) if self.expose_errors else None}
                items.append(Item("producer_error", _json(info)))
        items.extend(log.formatter.close())
        log.close(items)
        self.registry.closed(log)

    def send_tool_result(
        self,
        channel_id: str,
        call_id: str,
        *,
        name: str | None = None,
        output: Any = None,
        error: str | None = None,
    ) -> None:
        """Write the result of tool call ``call_id`` into a channel (``error``: the call failed).

        In ``vercel`` it is a ``tool-output-available`` / ``tool-output-error`` part, so the tool part
        of a ``useChat`` message leaves its pending state; in ``json`` a ``tool_result`` event. The
        ``error`` text is sent as given. :meth:`relay` calls this for every result of an agent loop.
        """
        log = self.registry.get(channel_id)
        if log.closed:
            return
        render = getattr(log.formatter, "tool_result", None)
        if render is not None:
            log.append(render(call_id, name=name, output=output, error=error))

    async def relay(self, events: AsyncIterable[_T], channel_id: str) -> AsyncIterator[_T]:
        """Pass an agent loop's events through, writing its tool results into ``channel_id``.

        The loop's streams write into the channel through the hooks; its tool results are not
        stream events, so this sends each one (:meth:`send_tool_result`) as the loop yields it. When
        ``events`` is an :class:`~schwarm_stream.AgentLoop`, its ``metadata`` gets the channel key
        (a loop already bound to another channel is a ``ValueError``)::

            async for event in sink.relay(agent_loop(source, tools), channel_id):
                ...
        """
        metadata = getattr(events, "metadata", None)
        if isinstance(metadata, dict):
            bound = metadata.setdefault(CHANNEL_KEY, channel_id)
            if bound != channel_id:
                raise ValueError(f"the loop writes into channel {bound!r}, not {channel_id!r}")
        async for event in events:
            call = getattr(event, "call", None)
            if call is not None and hasattr(event, "output") and hasattr(event, "error"):  # a ToolResult
                self.send_tool_result(
                    channel_id, call.id, name=call.name, output=event.output, error=event.error
                )
            yield event

    def get(self, channel_id: str) -> EventLog:
        """A channel by id (:class:`~schwarm_stream.sinks.UnknownChannel` if there is none)."""
        return self.registry.get(channel_id)

    # -- hooks ------------------------------------------------------------------------------------

    @hookimpl
    def stream_start(self, stream: Stream) -> None:
        cid = stream.metadata.get(CHANNEL_KEY)
        if cid is not None:
            if str(cid) not in self.registry:
                return  # another sink's channel
            log, owned = self.registry.get(str(cid)), False
        elif self.auto_channels:
            log, owned = self.channel(stream.id), True
        else:
            return
        stream.stash[self._key] = _StreamState(log, owned)
        log.prefix(log.formatter.stream_start(stream))

    @hookimpl
    def stream_event(self, stream: Stream, event: Event) -> None:
        st = stream.stash.get(self._key)
        if st is not None and not st.log.closed:
            st.log.append(st.log.formatter.event(event))

    @hookimpl
    def stream_end(self, stream: Stream) -> None:
        st = stream.stash.get(self._key)
        if st is None or st.log.closed:
            return
        st.log.append(st.log.formatter.stream_end(stream, expose_errors=self.expose_errors))
        if st.owned:
            st.log.close(st.log.formatter.close())
            self.registry.closed(st.log)

    # -- output -----------------------------------------------------------------------------------

    def frames(
        self,
        channel_id: str,
        last_event_id: str | None = None,
        *,
        heartbeat: float | Any | None = ...,
        max_entries: int | None = None,
    ) -> AsyncGenerator[str, None]:
        """SSE text for one HTTP response: ``retry:``, the entries after ``last_event_id``, then live ones.

        Errors for the request (unknown channel, too old, malformed id) are raised before the first
        frame, so the caller can still answer 404 / 410 / 400. ``max_entries`` ends the response after
        that many entries (the browser then reconnects with ``Last-Event-ID``).
        """
        log = self.registry.get(channel_id)
        after = parse_last_event_id(last_event_id)
        log.check(after)
        return self._frames(log, after, self.heartbeat if heartbeat is ... else heartbeat, max_entries)

    async def _frames(
        self, log: EventLog, after: int | None, heartbeat: float | None, max_entries: int | None
    ) -> AsyncGenerator[str, None]:
        if self.retry is not None:
            yield encode_sse(retry=self.retry)
        sent = 0
        # aclosing: a disconnect closes the subscription now (its subscriber count drops at once)
        async with aclosing(log.follow(after, heartbeat=heartbeat)) as entries:
            try:
                async for entry in entries:
                    if entry is HEARTBEAT:
                        yield encode_sse(comment="heartbeat")
                        continue
                    if entry.items:
                        yield encode_entry(entry.id, entry.items)
                    sent += 1
                    if max_entries is not None and sent >= max_entries:
                        return
            except ResumeGone:
                # This client fell out of the ring while connected. The status line is long sent:
                # end the response; the browser reconnects with its Last-Event-ID and gets the 410.
                yield encode_sse(comment="resume-gone")


def _json(obj: Mapping[str, Any]) -> str:
    from ._vocab import _dumps

    return _dumps(obj)


# -- compression ------------------------------------------------------------------------------------

#: Content codings an SSE reply may be compressed with, in our order of preference when the client
#: accepts several equally: zstd (``zstandard``), br (``brotli``), gzip (the standard library).
SSE_ENCODINGS: tuple[str, ...] = ("zstd", "br", "gzip")

_MODULES = {"zstd": "zstandard", "br": "brotli", "gzip": "zlib"}


def available_encodings(wanted: Iterable[str] = SSE_ENCODINGS) -> tuple[str, ...]:
    """The codings of ``wanted`` whose library is installed (gzip always is), in the same order."""
    import importlib.util

    out = []
    for coding in wanted:
        module = _MODULES.get(coding)
        if module is None:
            raise ValueError(f"unknown content coding {coding!r}; known: {', '.join(_MODULES)}")
        if module == "zlib" or importlib.util.find_spec(module) is not None:
            out.append(coding)
    return tuple(out)


def negotiate_encoding(accept_encoding: str | None, offered: Iterable[str] = SSE_ENCODINGS) -> str | None:
    """The coding to answer a request's ``Accept-Encoding`` with, or ``None`` (identity).

    Highest q-value first (RFC 9110 §12.5.3; ``q=0`` refuses a coding, ``*`` stands for any coding
    not named), ties broken by the order of ``offered`` (only installed codings count).
    """
    if not accept_encoding:
        return None
    choices = available_encodings(offered)
    weights: dict[str, float] = {}
    star: float | None = None
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name == "*":
            star = q
        else:
            weights[name] = q
    best: str | None = None
    best_q = 0.0
    for coding in choices:
        q = weights.get(coding, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = coding, q
    return best


class FrameCompressor:
    """One compressed response: every :meth:`compress` call returns bytes the client can decode at once.

    Each frame is compressed and then *flushed* (gzip: ``Z_SYNC_FLUSH``, zstd: a block flush,
    brotli: ``flush()``), so an event never waits in the compressor for the next one; the shared
    dictionary still spans the whole response, which is where the savings on repetitive SSE
    framing come from. :meth:`finish` ends the compressed stream.
    """

    def __init__(self, encoding: str, *, level: int | None = None) -> None:
        self.encoding = encoding
        self.bytes_in = 0
        self.bytes_out = 0
        if encoding == "gzip":
            import zlib

            z = zlib.compressobj(6 if level is None else level, zlib.DEFLATED, 31)  # 31: gzip header
            self._compress: Callable[[bytes], bytes] = lambda data: (
                z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
            )
            self._finish: Callable[[], bytes] = z.flush
        elif encoding == "zstd":
            import zstandard

            zc = zstandard.ZstdCompressor(level=3 if level is None else level).compressobj()
            block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
            self._compress = lambda data: zc.compress(data) + zc.flush(block)
            self._finish = zc.flush
        elif encoding == "br":
            import brotli

            # quality 5: streaming-friendly (11, the default, costs ~50x the CPU for a few % more)
            bc = brotli.Compressor(quality=5 if level is None else level)
            self._compress = lambda data: bc.process(data) + bc.flush()
            self._finish = bc.finish
        else:
            raise ValueError(f"unknown content coding {encoding!r}; known: {', '.join(_MODULES)}")

    def compress(self, data: bytes) -> bytes:
        """``data`` compressed and flushed."""
        out = self._compress(data)
        self.bytes_in += len(data)
        self.bytes_out += len(out)
        return out

    def finish(self) -> bytes:
        """The end of the compressed stream (call once, after the last frame)."""
        out = self._finish()
        self.bytes_out += len(out)
        return out


async def compress_frames(
    frames: AsyncIterable[bytes], encoding: str, *, level: int | None = None
) -> AsyncGenerator[bytes, None]:
    """``frames`` compressed with ``encoding``, one flushed piece per frame (see :class:`FrameCompressor`).

    The end of the compressed stream is written when ``frames`` ends; closing this generator closes
    ``frames`` too (a disconnect ends the subscription at once).
    """
    comp = FrameCompressor(encoding, level=level)
    try:
        async for frame in frames:
            out = comp.compress(frame)
            if out:
                yield out
        yield comp.finish()
    finally:
        # closed early (the client went away): close the frames now, not when collected
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            await aclose()
