"""The buffer transformer: aggregation by count, bytes and time; flushes before tool calls, errors, resets, end."""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schwarm_stream
from schwarm_stream import Chunk, ConfigError, Reset, StreamError, ToolCallDelta, TransportError, hookimpl
from schwarm_stream.builtins import buffer as buffer_mod
from schwarm_stream.builtins.buffer import Buffer, utf8_len
from schwarm_stream.sources import from_iterator, openai_chat
from schwarm_stream.testing.server import OfflineProvider, ProviderServer

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


async def deliver(plugins: list[Any], parts: list[str], config: Any = None) -> tuple[list[Any], Any]:
    pipeline = schwarm_stream.Pipeline(plugins, config=config)
    async with pipeline.open(from_iterator(parts)) as stream:
        events = [ev async for ev in stream]
    return events, stream


def texts(events: list[Any]) -> list[str]:
    return [e.text for e in events if type(e) is Chunk]


async def test_count_aggregation() -> None:
    parts = [f"p{i} " for i in range(10)]
    events, stream = await deliver([Buffer(max_events=4)], parts)
    assert texts(events) == ["".join(parts[0:4]), "".join(parts[4:8]), "".join(parts[8:10])]
    assert stream.message.text == "".join(parts)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_bytes_aggregation_counts_utf8() -> None:
    parts = ["é", "é", "é", "ab", "c", "d"]  # é is 2 bytes
    events, _ = await deliver([Buffer(max_bytes=4)], parts)
    assert texts(events) == ["éé", "éab", "cd"]
    assert utf8_len("éé") == 4


@settings(max_examples=40, deadline=None)
@given(
    parts=st.lists(st.text(max_size=6), min_size=0, max_size=30),
    max_events=st.integers(1, 6),
    max_bytes=st.one_of(st.none(), st.integers(1, 12)),
)
async def test_any_chunking_gives_the_same_text_and_message(
    parts: list[str], max_events: int, max_bytes: int | None
) -> None:
    plain, plain_stream = await deliver([], parts)
    buffered, buffered_stream = await deliver([Buffer(max_events=max_events, max_bytes=max_bytes)], parts)
    assert "".join(texts(buffered)) == "".join(texts(plain))
    assert buffered_stream.message == plain_stream.message
    # at most max_events source chunks per delivered chunk
    assert len(texts(buffered)) >= -(-len(texts(plain)) // max_events)
    if max_bytes is not None:  # a release caused by size holds less than max_bytes before its last part
        assert all(utf8_len(t) < max_bytes + 4 * 6 for t in texts(buffered))


async def test_flush_before_tool_calls_with_the_real_sdk() -> None:
    async with ProviderServer(OfflineProvider()) as server:
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
        msgs: Any = [{"role": "user", "content": "Weather in Paris?"}]
        pipeline = schwarm_stream.Pipeline([Buffer(max_events=1000)])
        async with pipeline.open(openai_chat(client, model="m", messages=msgs, tools=[WEATHER])) as stream:
            events = [ev async for ev in stream]
    kinds = [type(e).__name__ for e in events]
    first_tool = kinds.index("ToolCallDelta")
    assert kinds[:first_tool].count("Chunk") == 1  # all text merged, released before the tool call
    (text,) = texts(events)
    assert text == stream.message.text == "Let me check the weather."
    assert all(type(e) is not Chunk for e in events[first_tool:])
    assert stream.message.tool_calls[0].parsed == {"city": "Paris"}
    assert any(type(e) is ToolCallDelta for e in events)


async def test_flush_at_end_and_before_an_error() -> None:
    def failing() -> Any:
        async def gen() -> Any:
            yield "held "
            yield "text"
            raise ConnectionResetError("boom")

        return gen()

    pipeline = schwarm_stream.Pipeline([Buffer(max_events=100)])
    seen: list[Any] = []
    with pytest.raises(StreamError) as info:
        async with pipeline.open(from_iterator(failing)) as stream:
            async for ev in stream:
                seen.append(ev)
    assert texts(seen) == ["held text"]  # released before the error surfaced
    assert info.value.partial is not None and info.value.partial.text == "held text"


class _RestartOnce:
    """Decide "restart" for the first failure (a stand-in for the recovery plugin's decision)."""

    @hookimpl
    def stream_error(self, stream: Any, error: StreamError) -> str | None:
        return "restart" if stream.attempt == 1 else None


async def test_flush_before_a_reset_and_nothing_carried_across_attempts() -> None:
    calls = {"n": 0}

    def source() -> Any:
        calls["n"] += 1
        first = calls["n"] == 1

        async def gen() -> Any:
            yield "first "
            yield "try"
            if first:
                raise TransportError("dropped")

        return gen()

    pipeline = schwarm_stream.Pipeline([_RestartOnce(), Buffer(max_events=100)])
    async with pipeline.open(from_iterator(source)) as stream:
        events = [ev async for ev in stream]
    kinds = [type(e) for e in events]
    reset_at = kinds.index(Reset)
    assert texts(events[:reset_at]) == ["first try"]
    assert texts(events[reset_at:]) == ["first try"]
    assert stream.message.text == "first try"


async def test_time_limit_checked_on_arrival(monkeypatch: pytest.MonkeyPatch) -> None:
    now = {"t": 0.0}
    fake = types.SimpleNamespace(monotonic=lambda: now["t"])
    monkeypatch.setattr(buffer_mod, "time", fake)

    class Arrivals:
        # Each part arrives 40 ms after the previous one: the clock moves as the stream receives
        # it (the provider may be read a few events ahead of the transformers while timed).
        @hookimpl
        def stream_receive(self, stream: Any, event: Any) -> None:
            if type(event) is Chunk:
                now["t"] = int(event.text) * 0.04

    parts = [f"{i}" for i in range(6)]
    events, _ = await deliver([Arrivals(), Buffer(max_delay=0.1)], parts)
    # held since t=0: released when a part arrives at t >= 0.1 (t=0.12), and so on.
    assert texts(events) == ["0123", "45"]


async def test_config_section_and_validation() -> None:
    events, _ = await deliver([Buffer()], ["a", "b", "c"], config={"buffer": {"max_events": 2}})
    assert texts(events) == ["ab", "c"]
    events, _ = await deliver([Buffer(max_events=3)], ["a", "b", "c"], config={"buffer": {"max_events": 2}})
    assert texts(events) == ["abc"]  # constructor arguments win over the section
    with pytest.raises(ConfigError, match="at least one"):
        await deliver([Buffer()], ["a"])
    with pytest.raises(ConfigError, match=r"buffer\.max_events"):
        await deliver([Buffer()], ["a"], config={"buffer": {"max_events": 0}})
    with pytest.raises(ConfigError, match="unknown key"):
        await deliver([Buffer()], ["a"], config={"buffer": {"max_event": 2}})


def test_buffer_is_opt_in() -> None:
    from schwarm_stream._manager import BUILTIN_PLUGINS

    assert "buffer" not in BUILTIN_PLUGINS


# -- max_delay: timed reads through one reader task, not a task per read --------------------------


async def test_max_delay_reads_through_one_task_not_a_task_per_read() -> None:
    loop = asyncio.get_running_loop()
    created: list[Any] = []
    previous = loop.get_task_factory()

    def factory(lp: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
        created.append(coro)
        return asyncio.Task(coro, loop=lp, **kw)

    parts = [f"{i}," for i in range(200)]
    loop.set_task_factory(factory)  # type: ignore[arg-type]
    try:
        events, stream = await deliver(
            [Buffer(max_events=4, max_delay=30.0)], parts, {"plugins": {"autoload": False}}
        )
    finally:
        loop.set_task_factory(previous)
    assert "".join(texts(events)) == "".join(parts)  # nothing lost, in order
    assert texts(events)[0] == "0,1,2,3,"  # released by size while the timer is pending
    assert stream.message.text == "".join(parts)
    assert len(created) < 10  # was two tasks per read (200 reads)


async def test_max_delay_errors_and_end_propagate_through_timed_reads() -> None:
    async def failing() -> AsyncIterator[str]:
        for text in ("a", "b", "c"):
            yield text
            await asyncio.sleep(0)
        raise ConnectionResetError("peer went away")

    pipeline = schwarm_stream.Pipeline(
        [Buffer(max_events=10, max_delay=30.0)],
        config={"plugins": {"autoload": False}, "retry": {"attempts": 1}},
    )
    seen: list[str] = []
    with pytest.raises(StreamError) as info:
        async with pipeline.open(from_iterator(lambda: failing())) as stream:
            async for ev in stream:
                if type(ev) is Chunk:
                    seen.append(ev.text)
    assert seen == ["abc"]  # held text flushed before the error is raised
    assert info.value.partial is not None and info.value.partial.text == "abc"


async def test_max_delay_cancel_during_a_timed_read_propagates() -> None:
    gate = asyncio.Event()

    async def stalls() -> AsyncIterator[str]:
        yield "x"
        await gate.wait()  # never set
        yield "y"

    pipeline = schwarm_stream.Pipeline(
        [Buffer(max_events=10, max_delay=0.01)], config={"plugins": {"autoload": False}}
    )
    got: list[str] = []
    first = asyncio.Event()

    async def consume() -> None:
        async with pipeline.open(from_iterator(lambda: stalls())) as stream:
            async for ev in stream:
                if type(ev) is Chunk:
                    got.append(ev.text)
                    first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert got == ["x"]  # released on time while the provider was silent
