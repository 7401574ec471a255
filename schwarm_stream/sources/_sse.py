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
from collections.abc import AsyncGenerator, AsyncIterator
from typing import NamedTuple

from .._errors import LimitExceeded, ProtocolError

__all__ = ["SSE", "iter_sse"]


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
    utf8 = codecs.getincrementaldecoder("utf-8")("strict")
    lines = _Lines()
    event = ""  # the event being assembled: its name and data lines
    data: list[str] = []
    offset = 0  # bytes consumed so far
    pending = 0  # bytes of the event being assembled
    async for raw in chunks:
        try:
            text = utf8.decode(raw)
        except UnicodeDecodeError as exc:
            # exc.object is the decoder's held-back bytes (a character cut by the previous read) + raw
            at = offset - (len(exc.object) - len(raw)) + exc.start
            raise ProtocolError(
                f"invalid UTF-8 in the response body at byte {at}: {exc.object[exc.start : exc.end]!r}",
                offset=at,
                provider=provider,
            ) from exc
        offset += len(raw)
        pending += len(raw)
        if pending > max_event_bytes and "\n" not in text and "\r" not in text:
            raise LimitExceeded(
                f"a single SSE event exceeds limits.max_event_bytes={max_event_bytes} (at byte {offset})",
                limit="max_event_bytes",
                provider=provider,
            )
        if not text:
            continue
        for line in lines.feed(text):
            if not line:  # a blank line ends an event (dispatched or not: keep-alive comments)
                pending = 0
                if data:
                    joined = data[0] if len(data) == 1 else "\n".join(data)
                    data = []
                    if joined:
                        if len(joined) > max_event_bytes:
                            raise LimitExceeded(
                                f"an SSE event of {len(joined)} characters exceeds "
                                f"limits.max_event_bytes={max_event_bytes} (event ending at byte {offset})",
                                limit="max_event_bytes",
                                provider=provider,
                            )
                        yield SSE(event or "message", joined, offset)
                event = ""
            elif line.startswith("data:"):  # the common line, first
                data.append(line[6:] if line[5:6] == " " else line[5:])
            else:
                event = _field(line, event, data)
        if pending > max_event_bytes:  # an event of many lines still growing past the cap
            raise LimitExceeded(
                f"a single SSE event exceeds limits.max_event_bytes={max_event_bytes} (at byte {offset})",
                limit="max_event_bytes",
                provider=provider,
            )
    try:
        utf8.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        at = offset - len(exc.object) + exc.start  # where the cut character starts
        raise ProtocolError(
            f"the response body ends inside a UTF-8 character (starting at byte {at})",
            offset=at,
            provider=provider,
        ) from exc
    blank, open_line = lines.end()
    if blank:
        # A body ending in a lone CR: held back in case an LF followed; at the end it is
        # a line end, the blank line that dispatches the last event.
        joined = "\n".join(data)
        if joined:
            yield SSE(event or "message", joined, offset)
        return
    # The body ended cleanly without the blank line that dispatches its last
    # event (WHATWG drops such an event; both SDKs accept it). It is handed on
    # marked ``unterminated``: the source accepts it only if it is the
    # protocol's terminator, so a cut inside any payload stays truncated.
    if not unterminated:
        return
    if open_line is not None:
        event = _field(open_line, event, data)
    joined = "\n".join(data)
    if joined:
        yield SSE(event or "message", joined, offset, True)
