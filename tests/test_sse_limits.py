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
