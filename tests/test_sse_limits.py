"""The per-event byte cap of the SSE reader: multi-line events, and keep-alive comments that never add up."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from schwarm_stream import LimitExceeded
from schwarm_stream.sources._sse import iter_sse


async def body(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_an_event_of_many_data_lines_is_capped_while_it_grows() -> None:
    parts = [b"data: " + b"x" * 100 + b"\n" for _ in range(50)]  # one event, never terminated
    with pytest.raises(LimitExceeded) as info:
        async for _ in iter_sse(body(parts), max_event_bytes=1000):
            pass
    assert info.value.limit == "max_event_bytes"
    assert "at byte 1" in str(info.value)  # stopped after ~1 KB, not after the whole 5 KB


async def test_keep_alive_comments_do_not_count_towards_the_cap() -> None:
    parts = [b": ping\n\n"] * 500 + [b"data: ok\n\n"]  # 4 KB of comments, cap 1 KB
    events = [e.data async for e in iter_sse(body(parts), max_event_bytes=1000)]
    assert events == ["ok"]


async def test_a_body_ending_in_a_lone_cr_dispatches_its_last_event() -> None:
    events = [e.data async for e in iter_sse(body([b"data: a\r\r", b"data: b\r", b"\r"]))]
    assert events == ["a", "b"]


async def test_an_unterminated_last_event_is_not_dispatched() -> None:
    events = [e.data async for e in iter_sse(body([b"data: a\n\n", b"data: b\n"]))]
    assert events == ["a"]


# -- the framing itself (our own, no private module of httpx-sse) ------------------------


async def test_framing_agrees_with_httpx_sse_public_api() -> None:
    """Random bodies, split at random places: the same (event, data) as httpx-sse's EventSource."""
    import random

    import httpx
    from httpx_sse import EventSource

    atoms = ["data: ", "data:", "data", "event: ", "event:x", ": c", "id: 1", "x", "{}", " ", "é", "€"]
    ends = ["\n", "\r", "\r\n", "\n\n", "\r\r"]
    rnd = random.Random(15)
    for _ in range(300):
        text = "".join(rnd.choice(atoms + ends) for _ in range(rnd.randint(0, 40))) + "\n\n"
        raw = text.encode()
        cuts = sorted(rnd.sample(range(len(raw) + 1), min(len(raw) + 1, 4)))
        parts = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        ours = [(e.event, e.data) async for e in iter_sse(body(parts))]
        response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=raw)
        theirs = [(e.event, e.data) async for e in EventSource(response).aiter_sse() if e.data]
        assert ours == theirs, text


async def test_lines_end_only_at_cr_lf_and_crlf_even_across_reads() -> None:
    parts = [b"event: a\r", b"\ndata: 1\x0b2\r", b"\r", b"data:x\n", b"data: y\r\n\r\n"]
    events = [(e.event, e.data) async for e in iter_sse(body(parts))]
    assert events == [("a", "1\x0b2"), ("message", "x\ny")]  # \x0b is no line end (splitlines would cut)


async def test_offsets_and_the_unterminated_last_event() -> None:
    parts = [b"data: a\n\n", b"event: e\ndata: b\n"]
    events = [tuple(e) async for e in iter_sse(body(parts), unterminated=True)]
    assert events == [("message", "a", 9, False), ("e", "b", 26, True)]


def test_the_sse_reader_needs_no_httpx_sse() -> None:
    """The framing imports nothing of httpx-sse (a private module there broke users on upgrade)."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['httpx_sse'] = None\n"
        "import schwarm_stream.sources._sse as m\n"
        "assert 'httpx_sse' not in [k for k, v in sys.modules.items() if v is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
