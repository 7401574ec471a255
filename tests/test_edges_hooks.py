"""Issue 14 items 1, 5 and 9: hung hooks, plugin names and partials, observers that mutate events.

Every stream goes over 127.0.0.1 through the official openai client against the testing kit's
ProviderServer. Bounded waits (``asyncio.timeout(10)``) prove that nothing hangs; nothing here
asserts wall-clock performance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest

from schwarm_stream import (
    Chunk,
    Event,
    PluginError,
    Stream,
    StreamCancelled,
    StreamTimeout,
    hookimpl,
)
from schwarm_stream.testing.server import ProviderServer, SSEReply
from tests.support.faults import Delivered, consume, fault_pipeline, golden_events, sdk_source

PROTOCOL = "openai-chat"


pytestmark = pytest.mark.usefixtures("no_waits")  # conftest: retry waits skipped


@pytest.fixture
async def server() -> AsyncIterator[ProviderServer]:
    """conftest's server, plus: no hung hook may leave a connection open."""
    async with ProviderServer() as srv:
        yield srv
    assert srv.connections_open() == 0


@pytest.fixture
def source(oai: openai.AsyncOpenAI) -> Callable[..., Any]:
    return lambda **kw: sdk_source(PROTOCOL, oai, **kw)


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(0.001)


class Hangs:
    """An async stream_chunk that never returns on the second chunk."""

    def __init__(self) -> None:
        self.calls = 0
        self.ends: list[str | None] = []

    @hookimpl
    async def stream_chunk(self, stream: Stream, chunk: Chunk) -> None:
        self.calls += 1
        if self.calls == 2:
            await asyncio.Event().wait()  # forever

    @hookimpl
    def stream_end(self, stream: Stream) -> None:
        self.ends.append(stream.outcome)


NO_PROVIDER_TIMEOUTS = {"first_chunk": 60.0, "idle": 60.0, "slow_hook": 60.0}


# -- item 1: a hook that never returns ------------------------------------------------------------


async def test_total_timeout_interrupts_a_hung_hook(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    server.script(PROTOCOL, SSEReply(golden_events(PROTOCOL)))
    hangs = Hangs()
    pipe = fault_pipeline(hangs, timeouts={**NO_PROVIDER_TIMEOUTS, "total": 2.0, "hook": 60.0})
    async with asyncio.timeout(10):
        seen, error = await consume(pipe.open(source()))
    assert isinstance(error, StreamTimeout) and error.kind == "total"
    assert hangs.calls == 2  # the timeout came while the hook hung, not while reading
    # The partial holds what was received: what the consumer got plus the chunk whose hook hung.
    assert error.partial is not None and error.partial.text.startswith(seen.text()) and seen.text()
    assert hangs.ends == ["error"]
    await server.wait_connections(0)


async def test_cancel_interrupts_a_hung_hook(server: ProviderServer, source: Callable[..., Any]) -> None:
    server.script(PROTOCOL, SSEReply(golden_events(PROTOCOL)))
    hangs = Hangs()
    stream = fault_pipeline(hangs, timeouts={**NO_PROVIDER_TIMEOUTS, "total": 60.0, "hook": 60.0}).open(
        source()
    )
    task = asyncio.create_task(consume(stream))
    async with asyncio.timeout(10):
        await _until(lambda: stream.running_hook is not None)
        stream.cancel()
        _, error = await task
    assert isinstance(error, StreamCancelled)
    assert hangs.ends == ["cancelled"]
    await server.wait_connections(0)


async def test_hook_limit_isolate_warns_names_the_plugin_and_completes(
    server: ProviderServer, source: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    server.script(PROTOCOL, SSEReply(golden_events(PROTOCOL)))
    hangs = Hangs()
    pipe = fault_pipeline(hangs, timeouts={**NO_PROVIDER_TIMEOUTS, "total": 60.0, "hook": 0.2})
    with caplog.at_level(logging.WARNING, logger="schwarm_stream"):
        async with asyncio.timeout(10), pipe.open(source()) as stream:
            message = await stream.collect()
    assert message.complete and message.text
    (err,) = stream.plugin_errors
    assert err.plugin_name == f"{__name__}.Hangs" and err.hook_name == "stream_chunk"
    assert "timeouts.hook=0.2s" in str(err)
    assert any("timeouts.hook" in r.getMessage() for r in caplog.records)
    assert hangs.ends == ["complete"]


async def test_hook_limit_strict_fails_the_stream_with_the_partial(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    server.script(PROTOCOL, SSEReply(golden_events(PROTOCOL)))
    hangs = Hangs()
    seen = Delivered()
    pipe = fault_pipeline(
        hangs, plugins={"autoload": False, "policy": "strict"}, timeouts={**NO_PROVIDER_TIMEOUTS, "hook": 0.2}
    )
    with pytest.raises(PluginError) as info:
        async with asyncio.timeout(10), pipe.open(source()) as stream:
            async for ev in stream:
                seen.feed(ev)
    err = info.value
    assert err.hook_name == "stream_chunk" and err.plugin_name == f"{__name__}.Hangs"
    assert err.partial is not None and not err.partial.complete
    assert err.partial.text.startswith(seen.text()) and seen.text()
    await server.wait_connections(0)


# -- item 5: names and the strict partial ----------------------------------------------------------


class FailsOnSecond:
    def __init__(self) -> None:
        self.n = 0

    @hookimpl
    def stream_chunk(self, stream: Stream, chunk: Chunk) -> None:
        self.n += 1
        if self.n == 2:
            raise RuntimeError("plugin bug")


async def test_an_unnamed_plugin_is_named_by_module_and_class(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    server.script(PROTOCOL, SSEReply(golden_events(PROTOCOL)))
    pipe = fault_pipeline(FailsOnSecond(), FailsOnSecond())  # two of a class: both registered
    async with asyncio.timeout(10), pipe.open(source()) as stream:
        await stream.collect()
    names = sorted(e.plugin_name for e in stream.plugin_errors)
    assert names == [f"{__name__}.FailsOnSecond", f"{__name__}.FailsOnSecond#2"]
    assert all(f"plugin {e.plugin_name!r}" in str(e) for e in stream.plugin_errors)


async def test_strict_plugin_error_carries_the_partial(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    server.script(PROTOCOL, SSEReply(golden_events(PROTOCOL)))
    seen = Delivered()
    pipe = fault_pipeline(FailsOnSecond(), plugins={"autoload": False, "policy": "strict"})
    with pytest.raises(PluginError) as info:
        async with asyncio.timeout(10), pipe.open(source()) as stream:
            async for ev in stream:
                seen.feed(ev)
    err = info.value
    assert err.partial is not None and not err.partial.complete
    assert err.partial.text.startswith(seen.text()) and seen.text()
    assert err.committed and err.attempts == 1 and err.stream_id == stream.id
    assert stream.message is err.partial
    await server.wait_connections(0)


# -- item 9: observers cannot change delivered events ----------------------------------------------


class Mutates:
    @hookimpl
    def stream_event(self, stream: Stream, event: Event) -> None:
        if isinstance(event, Chunk):
            event.text = "HACKED"


class MutatesAsync:
    @hookimpl
    async def stream_chunk(self, stream: Stream, chunk: Chunk) -> None:
        chunk.text = "HACKED"
        chunk.seq = 999


@pytest.mark.parametrize("plugin", [Mutates, MutatesAsync])
async def test_an_observer_cannot_change_what_consumers_see(
    server: ProviderServer, source: Callable[..., Any], plugin: type
) -> None:
    server.script(PROTOCOL, SSEReply(golden_events(PROTOCOL)))
    seen = Delivered()
    texts: list[str] = []
    async with asyncio.timeout(10), fault_pipeline(plugin()).open(source()) as stream:
        async for ev in stream:
            seen.feed(ev)
            if isinstance(ev, Chunk):
                texts.append(ev.text)
    message = stream.message
    assert message.complete and "HACKED" not in message.text
    assert "".join(texts) == message.text == seen.text()
    (err,) = stream.plugin_errors
    assert err.plugin_name == f"{__name__}.{plugin.__name__}" and "immutable" in str(err)


async def test_an_observer_mutation_fails_a_strict_stream(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    server.script(PROTOCOL, SSEReply(golden_events(PROTOCOL)))
    pipe = fault_pipeline(Mutates(), plugins={"autoload": False, "policy": "strict"})
    with pytest.raises(PluginError) as info:
        async with asyncio.timeout(10), pipe.open(source()) as stream:
            async for _ in stream:
                pass
    assert info.value.partial is not None and "HACKED" not in info.value.partial.text
    await server.wait_connections(0)


class HangsAtStart:
    @hookimpl
    async def stream_start(self, stream: Stream) -> None:
        await asyncio.Event().wait()


async def test_a_hung_stream_start_is_interrupted_by_cancel(source: Callable[..., Any]) -> None:
    stream = fault_pipeline(HangsAtStart(), timeouts={**NO_PROVIDER_TIMEOUTS, "hook": 60.0}).open(source())
    task = asyncio.create_task(consume(stream))
    async with asyncio.timeout(10):
        await _until(lambda: stream.running_hook is not None)
        stream.cancel()
        _, error = await task
    assert isinstance(error, StreamCancelled) and stream.outcome == "cancelled"


class SwallowsCancel:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    async def stream_chunk(self, stream: Stream, chunk: Chunk) -> None:
        self.calls += 1
        if self.calls == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                return  # a hook that swallows the hook limit's cancellation


async def test_a_hook_that_swallows_the_cancellation_does_not_poison_the_stream(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    server.script(PROTOCOL, SSEReply(golden_events(PROTOCOL)))
    hook = SwallowsCancel()
    pipe = fault_pipeline(hook, timeouts={**NO_PROVIDER_TIMEOUTS, "hook": 0.2})
    async with asyncio.timeout(10), pipe.open(source()) as stream:
        message = await stream.collect()
    assert message.complete and hook.calls > 1 and stream.plugin_errors == []


def test_the_hook_limit_is_a_timeouts_setting_with_a_default() -> None:
    from schwarm_stream.config import Config

    assert Config().timeouts.hook == 30.0
    assert Config.from_dict({"timeouts": {"hook": None}}).timeouts.hook is None
