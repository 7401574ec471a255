"""The SSE reader's fast path frames every chunk exactly as its general line reader does.

The fast path takes a chunk only when nothing is held back from the previous one, the chunk has
no CR and ends with a blank line, and each of its events is one ``data`` line; the general reader
takes everything else. Both must give the same events (name, data, byte offset, unterminated) and
the same typed errors, whatever the chunking: recorded corpus bodies, re-chunked at random and at
event boundaries, and mutated (CRLF, comments, fields, several data lines, invalid UTF-8, cuts).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schwarm_stream import LimitExceeded, ProtocolError
from schwarm_stream.sources._sse import SSE, SSEReader
from tests.support.corpus import load_corpus


class GeneralOnly(SSEReader):
    """The reader with its fast path off: every chunk through the general line reader."""

    __slots__ = ()

    def feed(self, raw: bytes) -> Iterator[SSE]:
        return self._general(raw)


class Counting(SSEReader):
    """The reader as shipped, counting the chunks its fast path left to the general reader."""

    __slots__ = ("general",)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.general = 0

    def _general(self, raw: bytes) -> Iterator[SSE]:
        self.general += 1
        return super()._general(raw)


def frame(reader: SSEReader, chunks: list[bytes]) -> tuple[list[SSE], tuple[str, str, int | None] | None]:
    """Every event the reader yields for ``chunks``, and the error it ends with (type, text, offset)."""
    out: list[SSE] = []
    try:
        for chunk in chunks:
            out.extend(reader.feed(chunk))
        out.extend(reader.end())
    except (ProtocolError, LimitExceeded) as exc:
        return out, (type(exc).__name__, str(exc), getattr(exc, "offset", None))
    return out, None


def both(chunks: list[bytes], **kwargs: object) -> tuple[list[SSE], object]:
    fast = frame(SSEReader(**kwargs), chunks)  # type: ignore[arg-type]
    general = frame(GeneralOnly(**kwargs), chunks)  # type: ignore[arg-type]
    assert fast == general
    return fast


@functools.cache
def bodies() -> list[bytes]:
    """The corpus bodies (the full corpus where present, else the subset shipped in tests/data)."""
    return [s.body for s in load_corpus()]


def events_of(body: bytes) -> list[bytes]:
    """The body cut after each blank line (LF framing), the pieces joined back give the body."""
    pieces = body.split(b"\n\n")
    return [p + b"\n\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def mutate(events: list[bytes], kinds: list[int]) -> list[bytes]:
    """Apply one mutation per event: the shapes the fast path must hand to the general reader."""
    out = []
    for ev, kind in zip(events, kinds, strict=False):
        if kind == 1:
            ev = ev.replace(b"\n", b"\r\n")
        elif kind == 2:
            ev = b": keep-alive\n" + ev
        elif kind == 3:
            ev = b"event: named\n" + ev
        elif kind == 4:
            ev = ev.replace(b"data: ", b"data: x\ndata:", 1)
        elif kind == 5:
            ev = ev[:3] + b"\xff" + ev[3:]  # invalid UTF-8
        elif kind == 6:
            ev = b"\n\n" + ev  # extra blank lines
        elif kind == 7:
            ev = ev.replace(b"\n\n", b"\r\r")
        elif kind == 8:
            ev = b"data:\n\n" + ev  # an empty-data event, skipped
        out.append(ev)
    return out + events[len(kinds) :]


def rechunk(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(raw)) for c in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True) if b > a or not raw]


def group(events: list[bytes], sizes: list[int]) -> list[bytes]:
    """Whole events, several per chunk (where the fast path applies)."""
    chunks, i = [], 0
    for size in sizes:
        if i >= len(events):
            break
        chunks.append(b"".join(events[i : i + size]))
        i += size
    if i < len(events):
        chunks.append(b"".join(events[i:]))
    return chunks


def test_the_corpus_is_there() -> None:
    assert len(bodies()) >= 5


@pytest.mark.parametrize("per_chunk", [1, 3])
def test_a_clean_body_cut_at_event_boundaries_takes_the_fast_path(per_chunk: int) -> None:
    """The provider's usual shape (one write per event): every chunk is framed by the fast path."""
    for body in bodies():
        if (
            b"\r" in body
            or any(b"\n" in e.rstrip(b"\n") for e in events_of(body))
            or not body.endswith(b"\n\n")
        ):
            continue  # multi-line events (named events) belong to the general reader
        events = events_of(body)
        reader = Counting(unterminated=True)
        got, error = frame(reader, group(events, [per_chunk] * len(events)))
        assert error is None
        assert reader.general == 0
        assert got == both(group(events, [per_chunk] * len(events)), unterminated=True)[0]
        return
    pytest.fail("no corpus body with one-line events only")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(min_value=0),
    cuts=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=12),
    sizes=st.lists(st.integers(min_value=1, max_value=4), max_size=40),
    kinds=st.lists(st.integers(min_value=0, max_value=8), max_size=40),
    cut_end=st.integers(min_value=0, max_value=400),
    unterminated=st.booleans(),
)
def test_fast_and_general_paths_agree_on_rechunked_corpus_bodies(
    which: int, cuts: list[int], sizes: list[int], kinds: list[int], cut_end: int, unterminated: bool
) -> None:
    body = bodies()[which % len(bodies())]
    events = mutate(events_of(body), kinds)
    raw = b"".join(events)
    if cut_end:
        raw = raw[: max(0, len(raw) - cut_end)]  # a body cut short, maybe inside a character
    both(rechunk(raw, cuts), unterminated=unterminated)  # random cuts: mostly the general reader
    both(group(events, sizes), unterminated=unterminated)  # whole events per chunk: mostly the fast path
    mixed = group(events, sizes)
    if mixed and cuts:
        mixed[cuts[0] % len(mixed)] = mixed[cuts[0] % len(mixed)][:-1]  # one chunk's blank line split off
        both([*mixed, b"\n"], unterminated=unterminated)


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=4), max_size=20), cap=st.integers(10, 400))
def test_the_byte_cap_is_the_same_on_both_paths(sizes: list[int], cap: int) -> None:
    body = next(b for b in bodies() if b"\r" not in b)
    both(group(events_of(body)[:40], sizes), max_event_bytes=cap)


def test_invalid_utf8_in_a_fast_chunk_is_reported_at_its_byte_offset() -> None:
    chunks = [b"data: {}\n\n", b'data: "a\xe2\x82"\n\n']
    events, error = both(chunks)
    assert [e.data for e in events] == ["{}"]
    assert error is not None and error[0] == "ProtocolError" and error[2] == 10 + 8
