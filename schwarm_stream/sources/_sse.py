"""Server-Sent Events framing for sources that read raw response bytes.

The framing is the WHATWG event-stream rules, implemented here (no private API
of another package): CR, LF and CRLF end lines, ``:`` starts a comment, one
space after the field's colon is stripped, ``data`` lines join with LF, an
event is dispatched by a blank line (empty-data events are skipped). On top of
that, what a stream middleware needs: strict UTF-8 (invalid bytes are a typed
error with the byte offset, never a silent U+FFFD), a per-event byte cap, the
offset of every event for error messages, and the last event of a body that
ends without its blank line, marked :attr:`SSE.unterminated`.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from typing import NamedTuple

from .._errors import LimitExceeded, ProtocolError

__all__ = ["SSE", "SSEReader", "iter_sse"]


class SSE(NamedTuple):
    """One dispatched event: its ``event`` name (``"message"`` if none), joined ``data`` and byte offset.

    ``unterminated`` is true only for the last event of a body that ended cleanly
    right after it, without the blank line that dispatches an event: sources
    accept such an event only when it is the protocol's terminator (whole, since
    its payload parses), and otherwise report the stream truncated as before.
    """

    event: str
    data: str
    offset: int
    unterminated: bool = False


_new = tuple.__new__


class _Lines:
    """Incremental line splitting: only CR, LF and CRLF end a line (not ``str.splitlines``'s others)."""

    __slots__ = ("cr", "partial")

    def __init__(self) -> None:
        self.partial: list[str] = []  # the open line so far, in pieces (joined once, when it completes)
        self.cr = False  # the last text ended in CR: an LF starting the next text is the same line end

    def feed(self, text: str) -> list[str]:
        """The lines ``text`` completes, without their line ends."""
        if self.cr:
            text = "\r" + text
            self.cr = False
        if text[-1:] == "\r":  # maybe the first half of CRLF: decide with the next text
            self.cr = True
            text = text[:-1]
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            if text:
                self.partial.append(text)
            return []
        lines = text.split("\n")
        if self.partial:
            self.partial.append(lines[0])
            lines[0] = "".join(self.partial)
        last = lines.pop()
        self.partial = [last] if last else []
        return lines

    def end(self) -> tuple[bool, str | None]:
        """At the end of the body: whether a held-back CR ended an empty line, and the open line."""
        open_line = "".join(self.partial) if self.partial else None
        blank = self.cr and open_line is None
        self.partial = []
        self.cr = False
        return blank, open_line


def _field(line: str, event: str, data: list[str]) -> str:
    """Take one non-blank line into the event being assembled; returns its (new) event name."""
    name, _, value = line.partition(":")
    if value[:1] == " ":  # one leading space is stripped, no more
        value = value[1:]
    if name == "data":
        data.append(value)
    elif name == "event":
        return value
    # comments (no name), id, retry and unknown fields: nothing a source uses
    return event


class SSEReader:
    """The framing as a push parser: :meth:`feed` it each chunk of the body, then :meth:`end`.

    :func:`iter_sse` drives one over an async iterator; a transport that loops over
    the body itself calls it inline, one async-generator layer less per chunk. Each
    call returns the events the chunk completes, to iterate at once; an error
    (invalid UTF-8, the byte cap) is raised in order, after the events before it.

    The common chunk (nothing held back from the previous one, no CR, ends with a
    blank line, each event one ``data`` line) is framed by one decode and one split
    on blank lines. Any other chunk goes through the general line reader, which
    gives the same events for those chunks (a property test checks it).
    """

    __slots__ = (
        "_clean",
        "_data",
        "_event",
        "_lines",
        "_pending",
        "_utf8",
        "max_event_bytes",
        "offset",
        "provider",
        "unterminated",
    )

    def __init__(
        self,
        *,
        provider: str | None = None,
        max_event_bytes: int = 16 << 20,
        unterminated: bool = False,
    ) -> None:
        self.provider = provider
        self.max_event_bytes = max_event_bytes
        self.unterminated = unterminated
        self.offset = 0  # bytes consumed so far
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self._lines = _Lines()
        self._event = ""  # the event being assembled: its name and data lines
        self._data: list[str] = []
        self._pending = 0  # bytes of the event being assembled
        self._clean = True  # nothing held back from the previous chunk: the fast path may take the next

    def feed(self, raw: bytes) -> Iterable[SSE]:
        """The events that ``raw``, the next chunk of the body, completes."""
        if self._clean and raw[-2:] == b"\n\n" and b"\r" not in raw and len(raw) <= self.max_event_bytes:
            if raw[:6] == b"data: " and raw.find(b"\n", 6) == len(raw) - 2:
                # The most common chunk over a socket: exactly one event of one data line.
                try:
                    value = raw[6:-2].decode()
                except UnicodeDecodeError:
                    return self._general(raw)  # it reports the error with its byte offset
                self.offset = offset = self.offset + len(raw)
                # tuple.__new__: the NamedTuple without its Python-level __new__ (one call less per event)
                return (_new(SSE, ("message", value, offset, False)),) if value else ()
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                return self._general(raw)  # it reports the error with its byte offset
            offset = self.offset + len(raw)
            out = []
            for part in text.split("\n\n"):
                if part:  # not the end of the chunk, nor one more blank line
                    if part[:5] != "data:" or "\n" in part:
                        return self._general(raw)  # comments, fields, several lines: nothing taken yet
                    value = part[6:] if part[5:6] == " " else part[5:]
                    if value:  # empty-data events are skipped
                        out.append(SSE("message", value, offset))
            self.offset = offset
            return out
        return self._general(raw)

    def _general(self, raw: bytes) -> Iterator[SSE]:
        """The line reader: any chunk, in any state."""
        max_event_bytes = self.max_event_bytes
        provider = self.provider
        try:
            text = self._utf8.decode(raw)
        except UnicodeDecodeError as exc:
            # exc.object is the decoder's held-back bytes (a character cut by the previous read) + raw
            at = self.offset - (len(exc.object) - len(raw)) + exc.start
            raise ProtocolError(
                f"invalid UTF-8 in the response body at byte {at}: {exc.object[exc.start : exc.end]!r}",
                offset=at,
                provider=provider,
            ) from exc
        self._clean = False
        self.offset = offset = self.offset + len(raw)
        self._pending += len(raw)
        if self._pending > max_event_bytes and "\n" not in text and "\r" not in text:
            raise LimitExceeded(
                f"a single SSE event exceeds limits.max_event_bytes={max_event_bytes} (at byte {offset})",
                limit="max_event_bytes",
                provider=provider,
            )
        if not text:
            self._check_clean()
            return
        for line in self._lines.feed(text):
            if not line:  # a blank line ends an event (dispatched or not: keep-alive comments)
                self._pending = 0
                data = self._data
                if data:
                    joined = data[0] if len(data) == 1 else "\n".join(data)
                    self._data = []
                    if joined:
                        if len(joined) > max_event_bytes:
                            raise LimitExceeded(
                                f"an SSE event of {len(joined)} characters exceeds "
                                f"limits.max_event_bytes={max_event_bytes} (event ending at byte {offset})",
                                limit="max_event_bytes",
                                provider=provider,
                            )
                        yield SSE(self._event or "message", joined, offset)
                self._event = ""
            elif line.startswith("data:"):  # the common line, first
                self._data.append(line[6:] if line[5:6] == " " else line[5:])
            else:
                self._event = _field(line, self._event, self._data)
        if self._pending > max_event_bytes:  # an event of many lines still growing past the cap
            raise LimitExceeded(
                f"a single SSE event exceeds limits.max_event_bytes={max_event_bytes} (at byte {offset})",
                limit="max_event_bytes",
                provider=provider,
            )
        self._check_clean()

    def _check_clean(self) -> None:
        lines = self._lines
        self._clean = not (
            lines.partial
            or lines.cr
            or self._data
            or self._event
            or self._pending
            or self._utf8.getstate()[0]
        )

    def end(self) -> list[SSE]:
        """At the end of the body: the last event, if it is dispatched (or kept ``unterminated``)."""
        offset = self.offset
        try:
            self._utf8.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            at = offset - len(exc.object) + exc.start  # where the cut character starts
            raise ProtocolError(
                f"the response body ends inside a UTF-8 character (starting at byte {at})",
                offset=at,
                provider=self.provider,
            ) from exc
        blank, open_line = self._lines.end()
        event, data = self._event, self._data
        self._event, self._data, self._pending, self._clean = "", [], 0, True
        if blank:
            # A body ending in a lone CR: held back in case an LF followed; at the end it is
            # a line end, the blank line that dispatches the last event.
            joined = "\n".join(data)
            return [SSE(event or "message", joined, offset)] if joined else []
        # The body ended cleanly without the blank line that dispatches its last
        # event (WHATWG drops such an event; both SDKs accept it). It is handed on
        # marked ``unterminated``: the source accepts it only if it is the
        # protocol's terminator, so a cut inside any payload stays truncated.
        if not self.unterminated:
            return []
        if open_line is not None:
            event = _field(open_line, event, data)
        joined = "\n".join(data)
        return [SSE(event or "message", joined, offset, True)] if joined else []


async def iter_sse(
    chunks: AsyncIterator[bytes],
    *,
    provider: str | None = None,
    max_event_bytes: int = 16 << 20,
    unterminated: bool = False,
) -> AsyncGenerator[SSE, None]:
    """Decode an async iterator of body bytes into SSE events (empty-data events skipped).

    With ``unterminated=True`` (what the sources pass) the last event of a body
    that ends cleanly without its blank line is yielded too, marked
    :attr:`SSE.unterminated`; without it, such an event is dropped (WHATWG).
    """
    reader = SSEReader(provider=provider, max_event_bytes=max_event_bytes, unterminated=unterminated)
    feed = reader.feed
    async for raw in chunks:
        for sse in feed(raw):
            yield sse
    for sse in reader.end():
        yield sse
