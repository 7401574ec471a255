"""Server-Sent Events framing for sources that read raw response bytes.

Line splitting and field parsing are httpx-sse's decoders (WHATWG rules: CR, LF
and CRLF end lines, ``:`` comments ignored, one leading space stripped, an
unterminated last event is not dispatched). We add what a stream middleware
needs on top: strict UTF-8 (invalid bytes are a typed error with the byte
offset, never a silent U+FFFD), a per-event byte cap, and the offset of every
event for error messages.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from typing import NamedTuple

from httpx_sse._decoders import SSEDecoder, SSELineDecoder

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


async def iter_sse(
    chunks: AsyncIterator[bytes],
    *,
    provider: str | None = None,
    max_event_bytes: int = 16 << 20,
    unterminated: bool = False,
) -> AsyncIterator[SSE]:
    """Decode an async iterator of body bytes into SSE events (empty-data events skipped).

    With ``unterminated=True`` (what the sources pass) the last event of a body
    that ends cleanly without its blank line is yielded too, marked
    :attr:`SSE.unterminated`; without it, such an event is dropped (WHATWG).
    """
    utf8 = codecs.getincrementaldecoder("utf-8")("strict")
    lines = SSELineDecoder()
    decoder = SSEDecoder()
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
        for line in lines.decode(text):
            if not line:
                pending = 0  # a blank line ends an event (dispatched or not: keep-alive comments)
            sse = decoder.decode(line)
            if sse is None:
                continue
            data = sse.data
            if data:
                if len(data) > max_event_bytes:
                    raise LimitExceeded(
                        f"an SSE event of {len(data)} characters exceeds limits.max_event_bytes={max_event_bytes} "
                        f"(event ending at byte {offset})",
                        limit="max_event_bytes",
                        provider=provider,
                    )
                yield SSE(sse.event, data, offset)
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
    # A body ending in a lone CR: the line decoder holds that CR back in case an
    # LF follows; at the end it is a line end, and may be the blank line that
    # dispatches the last event.
    tail = lines.flush()
    if tail == [""]:
        sse = decoder.decode("")
        if sse is not None and sse.data:
            yield SSE(sse.event, sse.data, offset)
        return
    # The body ended cleanly without the blank line that dispatches its last
    # event (WHATWG drops such an event; both SDKs accept it). It is handed on
    # marked ``unterminated``: the source accepts it only if it is the
    # protocol's terminator, so a cut inside any payload stays truncated.
    if not unterminated:
        return
    for line in tail:
        decoder.decode(line)
    sse = decoder.decode("")
    if sse is not None and sse.data:
        yield SSE(sse.event, sse.data, offset, True)
