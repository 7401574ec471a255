"""The registry of live streams: listing, lookup, control by id, weakness, aggregate stats."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from schwarm_stream import (
    Pipeline,
    StreamCancelled,
    StreamRegistry,
    TransportError,
    Usage,
    stream_registry,
)
from schwarm_stream._registry import REGISTRY_PLUGIN, _Series
from schwarm_stream.testing import Fail, ScriptedSource, Stall


@pytest.fixture
def reg() -> StreamRegistry:
    return StreamRegistry()


@pytest.fixture
def pipe(reg: StreamRegistry, core_pipeline: Callable[..., Pipeline]) -> Pipeline:
    p = core_pipeline()
    return Pipeline(p._plugins, config=p.config, registry=reg)


async def _drain(pipeline: Pipeline, source: Any, **kw: Any) -> BaseException | None:
    try:
        async with pipeline.open(source, **kw) as s:
            async for _ in s:
                pass
    except Exception as exc:
        return exc
    return None


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def test_a_running_stream_is_listed_and_found_by_id(pipe: Pipeline, reg: StreamRegistry) -> None:
    src = ScriptedSource(["Hel", "lo", Stall(None)], provider="prov", model="m-1")
    stream = pipe.open(src, stream_id="s-1", agent_id="agent-7")
    assert [i.state for i in reg.list()] == ["new"]
    task = asyncio.create_task(_consume(stream))
    await _until(lambda: stream.chunks == 2)
    (info,) = reg.list()
    assert (info.id, info.provider, info.model, info.state) == ("s-1", "prov", "m-1", "running")
    assert (info.chunks, info.attempt, info.agent_id, info.committed) == (2, 1, "agent-7", True)
    assert info.age >= 0
    assert reg.get("s-1") is stream and "s-1" in reg and len(reg) == 1
    assert reg.info("s-1") is not None and reg.info("nope") is None and reg.get("nope") is None
    assert reg.cancel("s-1")
    assert isinstance(await task, StreamCancelled)
    assert reg.get("s-1") is None and reg.list() == []
    assert not reg.cancel("s-1")  # ended: nothing to control


async def _consume(stream: Any) -> BaseException | None:
    try:
        async with stream as s:
            async for _ in s:
                pass
    except Exception as exc:
        return exc
    return None


async def test_pause_and_resume_by_id(pipe: Pipeline, reg: StreamRegistry) -> None:
    gate = asyncio.Event()

    async def text() -> Any:
        yield "a"
        await gate.wait()
        yield "b"
        yield "c"

    stream = pipe.open(text(), stream_id="p-1")
    task = asyncio.create_task(_consume(stream))
    await _until(lambda: stream.chunks == 1)
    assert reg.pause("p-1")
    gate.set()
    await asyncio.sleep(0.05)
    assert reg.info("p-1") is not None and reg.info("p-1").state == "paused"  # type: ignore[union-attr]
    assert stream.chunks == 2  # the read pending at pause() completes; no read after it
    assert reg.get_all_stats().by_state == {"paused": 1}
    assert reg.resume("p-1")
    assert await task is None
    assert stream.message.text == "abc"
    assert not reg.pause("missing") and not reg.resume("missing")


async def test_a_finished_stream_leaves_no_reference(pipe: Pipeline, reg: StreamRegistry) -> None:
    stream = pipe.open(ScriptedSource(["x", "y"]), stream_id="w-1")
    await _consume(stream)
    ref = weakref.ref(stream)
    del stream
    gc.collect()
    assert ref() is None  # the registry held it weakly, and let go at stream_end
    assert reg.get("w-1") is None and len(reg) == 0
    assert reg.get_all_stats().ended == 1


async def test_an_abandoned_stream_is_collectable(pipe: Pipeline, reg: StreamRegistry) -> None:
    stream = pipe.open(ScriptedSource(["x"]), stream_id="never-iterated")
    assert reg.get("never-iterated") is stream
    ref = weakref.ref(stream)
    del stream
    gc.collect()
    assert ref() is None
    assert reg.get("never-iterated") is None and reg.list() == []
    assert reg.get_all_stats().ended == 0  # it never ran: nothing to count


async def test_stats_count_outcomes_errors_tokens(pipe: Pipeline, reg: StreamRegistry) -> None:
    ok = [ScriptedSource(["a", "bc", Usage(input_tokens=10, output_tokens=4)]) for _ in range(2)]
    for src in ok:
        assert await _drain(pipe, src) is None
    failed = await _drain(pipe, ScriptedSource(["a", Fail(TransportError("reset"))]))
    assert isinstance(failed, TransportError)
    stalled = pipe.open(ScriptedSource([Stall(None)]), stream_id="c")
    task = asyncio.create_task(_consume(stalled))
    await _until(lambda: stalled.waiting == "provider")
    reg.cancel("c")
    assert isinstance(await task, StreamCancelled)

    st = reg.get_all_stats()
    assert st.live == 0 and st.by_state == {}
    assert st.ended == 4
    assert st.by_outcome == {"complete": 2, "error": 1, "cancelled": 1}
    assert st.errors == {"TransportError": 1, "StreamCancelled": 1}
    assert st.failures == {"TransportError": 1}  # seen by stream_error (a cancellation is not asked)
    assert (st.input_tokens, st.output_tokens) == (20, 8)
    assert st.chunks == 2 + 2 + 1 + 0
    assert st.attempts == 4
    assert st.time_to_first_content.count == 3  # the cancelled stream never had content
    assert st.duration.count == 4
    d = st.duration
    assert d.min is not None and d.max is not None and d.p50 is not None and d.p99 is not None
    assert d.min <= d.p50 <= d.p99 <= d.max and d.min <= (d.mean or 0) <= d.max
    as_dict = st.to_dict()
    assert as_dict["duration"]["count"] == 4 and as_dict["by_outcome"]["complete"] == 2
    reg.reset_stats()
    assert reg.get_all_stats().ended == 0


async def test_durations_are_the_streams_own(pipe: Pipeline, reg: StreamRegistry) -> None:
    stream = pipe.open(ScriptedSource(["a", Stall(0.02), "b"]))
    await _consume(stream)
    assert stream.started_at is not None and stream.ended_at is not None
    assert stream.first_content_at is not None
    st = reg.get_all_stats()
    assert st.duration.min == st.duration.max == stream.ended_at - stream.started_at
    assert st.time_to_first_content.p50 == stream.first_content_at - stream.started_at


def test_quantiles_are_nearest_rank_over_the_window() -> None:
    s = _Series(window=1000)
    for v in range(1, 101):
        s.add(float(v))
    out = s.summary()
    assert (out.count, out.mean, out.p50, out.p99, out.min, out.max) == (100, 50.5, 50.0, 99.0, 1.0, 100.0)
    w = _Series(window=10)
    for v in range(1, 101):
        w.add(float(v))
    small = w.summary()
    assert (small.count, small.min, small.max, small.mean) == (100, 1.0, 100.0, 50.5)  # all samples
    assert (small.p50, small.p99) == (95.0, 100.0)  # the last 10: 91..100
    assert _Series(3).summary().count == 0 and _Series(3).summary().p50 is None
    with pytest.raises(ValueError):
        StreamRegistry(window=0)


async def test_control_from_another_thread_goes_through_the_streams_loop(
    pipe: Pipeline, reg: StreamRegistry
) -> None:
    result: list[BaseException | None] = []
    started = threading.Event()

    def run() -> None:
        async def main() -> None:
            stream = pipe.open(ScriptedSource(["a", Stall(None)]), stream_id="t-1")

            async def consume() -> BaseException | None:
                try:
                    async for _ in stream:
                        started.set()
                except Exception as exc:
                    return exc
                return None

            result.append(await consume())

        asyncio.run(main())

    th = threading.Thread(target=run)
    th.start()
    assert await asyncio.to_thread(started.wait, 5)
    await _until(lambda: (reg.get("t-1") is not None) and reg.get("t-1").waiting == "provider")  # type: ignore[union-attr]
    assert reg.cancel("t-1")  # from this loop's thread, for a stream on the other thread's loop
    await asyncio.to_thread(th.join, 5)
    assert len(result) == 1 and isinstance(result[0], StreamCancelled)


def test_pipelines_share_the_process_registry_unless_given_one(
    core_pipeline: Callable[..., Pipeline],
) -> None:
    assert core_pipeline().registry is stream_registry()
    own = StreamRegistry()
    p = Pipeline(config={"plugins": {"autoload": False}}, registry=own)
    assert p.registry is own
    assert REGISTRY_PLUGIN not in [i.name for i in p.plugins()]  # the pipeline's own hooks, not a plugin
    assert p.plugin_manager.has_plugin(REGISTRY_PLUGIN)


async def test_failures_count_recovered_errors_too(
    reg: StreamRegistry, core_pipeline: Callable[..., Pipeline]
) -> None:
    from schwarm_stream import hookimpl

    class RetryOnce:
        @hookimpl
        def stream_error(self) -> str:
            return "retry"

    base = core_pipeline()
    pipe = Pipeline([RetryOnce()], config=base.config, registry=reg)
    assert await _drain(pipe, ScriptedSource([Fail(TransportError("reset"))], ["ok"])) is None
    st = reg.get_all_stats()
    assert st.by_outcome == {"complete": 1} and st.errors == {}
    assert st.failures == {"TransportError": 1} and st.attempts == 2


async def test_a_replaced_pipeline_registry_gets_the_streams_opened_after(
    pipe: Pipeline, reg: StreamRegistry
) -> None:
    assert await _drain(pipe, ScriptedSource(["a"])) is None
    pipe.registry = mine = StreamRegistry()  # the CLI does this after building the pipeline
    assert await _drain(pipe, ScriptedSource(["b"])) is None
    assert reg.get_all_stats().ended == 1 and mine.get_all_stats().ended == 1
