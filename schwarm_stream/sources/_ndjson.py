"""Newline-delimited JSON framing (Ollama's ``application/x-ndjson`` stream bodies).

One JSON value per line, LF-terminated (a CR before the LF is tolerated). The reader decodes
UTF-8 incrementally, so a character or a line split across reads is joined exactly, and it
yields each line with the byte offset where it ends. A body that ends without the final LF
yields its last line marked ``unterminated``: a source accepts such a line only if it parses
and is the protocol's terminator, so a cut inside a payload stays a truncated stream.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from typing import NamedTuple

from .._errors import LimitExceeded, ProtocolError

__all__ = ["Line", "iter_ndjson"]


class Line(NamedTuple):
    """One line of the body: its text (no line end), the byte offset after it, and whether it
    was the last, unterminated line of the body."""

    text: str
    offset: int
    unterminated: bool = False


async def iter_ndjson(
    chunks: AsyncIterator[bytes], *, provider: str | None = None, max_line_bytes: int = 16 << 20
) -> AsyncIterator[Line]:
    """The non-blank lines of a body read as ``chunks`` (blank lines are keep-alives)."""
    utf8 = codecs.getincrementaldecoder("utf-8")("strict")
    partial: list[str] = []  # the open line, in pieces
    pending = 0  # bytes of the open line
    offset = 0
    async for raw in chunks:
        try:
            text = utf8.decode(raw)
        except UnicodeDecodeError as exc:
            at = offset - (len(exc.object) - len(raw)) + exc.start
            raise ProtocolError(
                f"invalid UTF-8 in the response body at byte {at}", offset=at, provider=provider
            ) from exc
        offset += len(raw)
        pending += len(raw)
        if "\n" not in text:
            if pending > max_line_bytes:
                raise LimitExceeded(
                    f"a single NDJSON line exceeds limits.max_event_bytes={max_line_bytes} (at byte {offset})",
                    limit="max_event_bytes",
                    provider=provider,
                )
            if text:
                partial.append(text)
            continue
        lines = text.split("\n")
        if partial:
            partial.append(lines[0])
            lines[0] = "".join(partial)
        last = lines.pop()
        partial = [last] if last else []
        pending = len(last.encode("utf-8")) if last else 0
        for line in lines:
            if line.endswith("\r"):
                line = line[:-1]
            if line.strip():
                yield Line(line, offset - pending)
    try:
        utf8.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        at = offset - len(exc.object) + exc.start
        raise ProtocolError(
            f"the response body ends inside a UTF-8 character (starting at byte {at})",
            offset=at,
            provider=provider,
        ) from exc
    rest = "".join(partial)
    if rest.strip():
        yield Line(rest, offset, True)
