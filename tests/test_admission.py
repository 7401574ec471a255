"""Admission control: concurrent-stream limits per pipeline and per provider, wait or refuse."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from schwarm_stream import (
    Admission,
    AdmissionRefused,
    Config,
    ConfigError,
    Pipeline,
    StreamCancelled,
    StreamRegistry,
    TransportError,
    hookimpl,
)
from schwarm_stream._admission import ADMISSION_PLUGIN
from schwarm_stream.testing import Fail, ScriptedSource


@pytest.fixture
def make(core_pipeline: Callable[..., Pipeline]) -> Callable[..., Pipeline]:
    def build(*plugins: Any, registry: StreamRegistry | None = None, **admission: Any) -> Pipeline:
        base = core_pipeline()
        cfg = {**base.config.model_dump(), "admission": admission}
        return Pipeline(plugins, config=cfg, registry=registry if registry is not None else StreamRegistry())

    return build


async def _consume(stream: Any) -> BaseException | None:
    try:
        async with stream as s:
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


def _gated(provider: str = "p") -> tuple[ScriptedSource, asyncio.Event]:
    """A source that delivers one chunk, then holds its slot until the event is set."""
    gate = asyncio.Event()

    class Held(ScriptedSource):
        async def _play(self, script: Any) -> Any:
            yield_from = super()._play(script)
            async for ev in yield_from:
                yield ev
                await gate.wait()

    return Held(["a"], provider=provider), gate


async def test_beyond_the_limit_a_stream_waits_queued_then_runs(make: Callable[..., Pipeline]) -> None:
    reg = StreamRegistry()
    pipe = make(registry=reg, max_streams=1, timeout=30)
    first_src, release = _gated()
    first = pipe.open(first_src)
    t1 = asyncio.create_task(_consume(first))
    await _until(lambda: first.chunks == 1)
    second_src = ScriptedSource(["b"])
    second = pipe.open(second_src, stream_id="second")
    t2 = asyncio.create_task(_consume(second))
    await _until(lambda: reg.info("second") is not None and reg.info("second").state == "queued")  # type: ignore[union-attr]
    assert second_src.opens == 0  # the provider is not contacted while queued
    assert pipe.admission is not None and pipe.admission.stats().waiting == 1
    release.set()
    assert await t1 is None and await t2 is None
    assert second.message.text == "b"
    st = pipe.admission.stats()
    assert (st.active, st.waiting, st.admitted, st.waited, st.refused, st.peak) == (0, 0, 2, 1, {}, 1)


async def test_refuse_mode_fails_at_once_with_the_typed_error(make: Callable[..., Pipeline]) -> None:
    reg = StreamRegistry()
    pipe = make(registry=reg, max_streams=1, on_full="refuse", retry_after=7)
    held_src, release = _gated()
    held = pipe.open(held_src)
    t1 = asyncio.create_task(_consume(held))
    await _until(lambda: held.chunks == 1)
    src = ScriptedSource(["never"])
    refused = pipe.open(src)
    err = await _consume(refused)
    assert isinstance(err, AdmissionRefused)
    assert (err.reason, err.limit, err.retry_after, err.retryable) == ("full", "pipeline", 7.0, False)
    assert src.opens == 0 and refused.outcome == "error" and refused.attempt == 0
    assert refused.message.text == ""
    release.set()
    assert await t1 is None
    assert reg.get_all_stats().errors == {"AdmissionRefused": 1}
    assert pipe.admission is not None and pipe.admission.stats().refused == {"full": 1}


async def test_the_wait_is_bounded_by_the_timeout(make: Callable[..., Pipeline]) -> None:
    pipe = make(max_streams=1, timeout=0.05)
    held_src, release = _gated()
    held = pipe.open(held_src)
    t1 = asyncio.create_task(_consume(held))
    await _until(lambda: held.chunks == 1)
    err = await _consume(pipe.open(ScriptedSource(["x"])))
    assert isinstance(err, AdmissionRefused) and err.reason == "timeout" and err.waited >= 0.05
    release.set()
    assert await t1 is None
    adm = pipe.admission
    assert adm is not None and adm.stats().active == 0 and adm.stats().waiting == 0


async def test_a_full_provider_does_not_hold_up_another(make: Callable[..., Pipeline]) -> None:
    pipe = make(max_streams=10, providers={"a": 1}, timeout=30)
    a1_src, release = _gated("a")
    a1 = pipe.open(a1_src)
    t1 = asyncio.create_task(_consume(a1))
    await _until(lambda: a1.chunks == 1)
    a2 = pipe.open(ScriptedSource(["a2"], provider="a"))
    t2 = asyncio.create_task(_consume(a2))
    await _until(lambda: pipe.admission is not None and pipe.admission.stats().waiting == 1)
    # b arrives after a2 but its provider has room: it runs now
    assert await _consume(pipe.open(ScriptedSource(["b"], provider="b"))) is None
    assert not t2.done()
    adm = pipe.admission
    assert adm is not None and adm.stats().by_provider == {"a": 1}
    release.set()
    assert await t1 is None and await t2 is None
    assert adm.limit_for("a") == 1 and adm.limit_for("b") is None


async def test_max_per_provider_and_max_waiting(make: Callable[..., Pipeline]) -> None:
    pipe = make(max_per_provider=1, max_waiting=0)
    held_src, release = _gated("x")
    held = pipe.open(held_src)
    t1 = asyncio.create_task(_consume(held))
    await _until(lambda: held.chunks == 1)
    err = await _consume(pipe.open(ScriptedSource(["y"], provider="x")))
    assert isinstance(err, AdmissionRefused) and (err.reason, err.limit, err.provider) == (
        "queue_full",
        "provider",
        "x",
    )
    assert "provider 'x'" in str(err)
    release.set()
    assert await t1 is None


async def test_cancel_interrupts_the_wait_and_leaks_no_slot(make: Callable[..., Pipeline]) -> None:
    pipe = make(max_streams=1, timeout=30)
    held_src, release = _gated()
    held = pipe.open(held_src)
    t1 = asyncio.create_task(_consume(held))
    await _until(lambda: held.chunks == 1)
    queued = pipe.open(ScriptedSource(["q"]))
    t2 = asyncio.create_task(_consume(queued))
    adm = pipe.admission
    assert adm is not None
    await _until(lambda: adm.stats().waiting == 1)
    queued.cancel()
    assert isinstance(await t2, StreamCancelled)
    assert adm.stats().waiting == 0 and adm.stats().active == 1
    release.set()
    assert await t1 is None
    assert adm.stats().active == 0
    assert await _consume(pipe.open(ScriptedSource(["after"]))) is None  # the slot is free again


async def test_the_slot_is_held_through_retries(make: Callable[..., Pipeline]) -> None:
    seen: list[int] = []

    class Retry:
        @hookimpl
        def stream_error(self, stream: Any) -> str:
            seen.append(pipe.admission.stats().active)  # type: ignore[union-attr]
            return "retry"

    pipe = make(Retry(), max_streams=1)
    src = ScriptedSource([Fail(TransportError("reset"))], [Fail(TransportError("reset"))], ["ok"])
    assert await _consume(pipe.open(src)) is None
    assert seen == [1, 1] and src.opens == 3
    assert pipe.admission is not None and pipe.admission.stats().admitted == 1


async def test_a_permit_covers_the_first_stream_opened_in_its_context(make: Callable[..., Pipeline]) -> None:
    pipe = make(max_streams=2, on_full="refuse")
    adm = pipe.admission
    assert adm is not None
    permit = await adm.acquire()
    assert adm.stats().active == 1
    with permit.covering():
        assert await _consume(pipe.open(ScriptedSource(["one"]))) is None  # took no slot of its own
        assert adm.stats().admitted == 1
        held_src, release = _gated()
        first = pipe.open(held_src)
        t1 = asyncio.create_task(_consume(first))  # the task inherits the context: uses the permit
        await _until(lambda: first.chunks == 1)
        assert adm.stats().active == 1
        second = asyncio.create_task(_consume(pipe.open(ScriptedSource(["two"]))))  # permit busy: own slot
        assert await second is None
        assert adm.stats().admitted == 2
        release.set()
        assert await t1 is None
    permit.release()
    permit.release()  # idempotent
    assert adm.stats().active == 0
    assert adm.try_acquire() is not None and adm.try_acquire() is not None and adm.try_acquire() is None


async def test_waiters_are_served_in_arrival_order() -> None:
    adm = Admission(max_streams=1, timeout=30)
    first = await adm.acquire()
    order: list[int] = []

    async def take(n: int) -> None:
        p = await adm.acquire()
        order.append(n)
        p.release()

    tasks = []
    for n in range(5):
        tasks.append(asyncio.create_task(take(n)))
        await asyncio.sleep(0)
    await _until(lambda: adm.stats().waiting == 5)
    first.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


def test_no_limit_means_no_admission_hooks(core_pipeline: Callable[..., Pipeline]) -> None:
    pipe = core_pipeline()
    assert pipe.admission is None
    assert not pipe.plugin_manager.has_plugin(ADMISSION_PLUGIN)


def test_the_admission_section_is_validated(core_pipeline: Callable[..., Pipeline]) -> None:
    base = core_pipeline().config.model_dump()
    with pytest.raises(ConfigError, match=r"admission\.max_streams"):
        Pipeline(config={**base, "admission": {"max_streams": 0}}).plugins()
    with pytest.raises(ConfigError, match=r"admission\.bogus: unknown key"):
        Pipeline(config={**base, "admission": {"bogus": 1}}).plugins()
    pipe = Pipeline(config={**base, "admission": {"providers": {"openai": 3}, "on_full": "refuse"}})
    adm = pipe.admission
    assert adm is not None and adm.limit_for("openai") == 3 and adm.config.on_full == "refuse"


def test_the_admission_section_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHWARM_STREAM__ADMISSION__MAX_STREAMS", "5")
    monkeypatch.setenv("SCHWARM_STREAM__PLUGINS__AUTOLOAD", "false")
    pipe = Pipeline(config=Config.from_env())
    assert pipe.admission is not None and pipe.admission.config.max_streams == 5


async def test_an_admission_shared_by_two_pipelines(make: Callable[..., Pipeline]) -> None:
    shared = Admission(max_streams=1, on_full="refuse")
    base = make().config
    p1 = Pipeline(config=base, admission=shared, registry=StreamRegistry())
    p2 = Pipeline(config=base, admission=shared, registry=StreamRegistry())
    held_src, release = _gated()
    held = p1.open(held_src)
    t1 = asyncio.create_task(_consume(held))
    await _until(lambda: held.chunks == 1)
    assert isinstance(await _consume(p2.open(ScriptedSource(["x"]))), AdmissionRefused)
    release.set()
    assert await t1 is None
    assert p1.admission is shared and p2.admission is shared


async def test_a_waiter_on_another_threads_loop_is_woken() -> None:
    adm = Admission(max_streams=1, timeout=10)
    held = await adm.acquire()

    def other() -> bool:
        async def main() -> bool:
            p = await adm.acquire()
            p.release()
            return True

        return asyncio.run(main())

    fut = asyncio.ensure_future(asyncio.to_thread(other))
    await _until(lambda: adm.stats().waiting == 1)
    held.release()
    assert await asyncio.wait_for(fut, 10) is True
    assert adm.stats().active == 0


def test_sync_streams_on_their_own_threads_share_the_limit(make: Callable[..., Pipeline]) -> None:
    import threading

    from schwarm_stream import SyncStream
    from schwarm_stream.testing import Stall

    pipe = make(max_streams=1, timeout=30)
    texts: list[str] = []

    def run() -> None:
        with SyncStream(pipe.open(ScriptedSource(["a", Stall(0.05), "b"]))) as s:
            for _ in s:
                pass
            texts.append(s.message.text)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert texts == ["ab", "ab", "ab"]
    st = pipe.admission.stats()  # type: ignore[union-attr]
    assert (st.admitted, st.peak, st.active, st.waiting) == (3, 1, 0, 0)  # one at a time, each loop woken
