"""Fault matrix rows 23-28 (plugins, sinks, consumers, cancellation) and the control API.

pause() stops pulling from the provider, resume() goes on, cancel() closes the provider connection at
once, stats() reports progress; caller cancellation (task cancel, ``break``, KeyboardInterrupt in the
sync wrapper) never triggers a retry and ``stream_end`` fires exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import openai
import pytest

from schwarm_stream import (
    Chunk,
    Event,
    Recovery,
    Stream,
    StreamCancelled,
    StreamError,
    hookimpl,
    open_sync,
)
from schwarm_stream.testing import switches
from schwarm_stream.testing.server import (
    JSONReply,
    ProviderServer,
    SSEReply,
    Stall,
    ThreadedProviderServer,
)
from tests.support.faults import (
    Delivered,
    consume,
    content_indices,
    fault_pipeline,
    golden,
    golden_events,
    sdk_source,
    view,
)

PROTOCOL = "openai-chat"
TOOL = {"name": "get_weather", "arguments": {"city": "Paris"}}


class Ends:
    """Counts stream_end calls and records outcomes."""

    def __init__(self) -> None:
        self.outcomes: list[str | None] = []
        self.events: list[Event] = []

    @hookimpl
    def stream_event(self, stream: Stream, event: Event) -> None:
        self.events.append(event)

    @hookimpl
    def stream_end(self, stream: Stream) -> None:
        self.outcomes.append(stream.outcome)


async def _until(predicate: Callable[[], bool]) -> None:
    # The stream's state is plain attributes (no event to await): poll it.
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(0.001)


def _others() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


@pytest.fixture(autouse=True)
def _no_waits() -> Iterator[None]:
    with switches.no_waits():
        yield


@pytest.fixture
async def server() -> AsyncIterator[ProviderServer]:
    async with ProviderServer() as srv:
        yield srv
    assert srv.connections_open() == 0


@pytest.fixture
async def oai(server: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
    yield client
    await client.close()


@pytest.fixture
def source(oai: openai.AsyncOpenAI) -> Callable[..., Any]:
    return lambda **kw: sdk_source(PROTOCOL, oai, **kw)


# -- rows 23, 24: plugins that raise ---------------------------------------------------------------


class Broken:
    @hookimpl
    def stream_chunk(self, stream: Stream, chunk: Chunk) -> None:
        raise RuntimeError("plugin bug")

    @hookimpl(tryfirst=True)
    def stream_error(self, stream: Stream, error: StreamError) -> Recovery:
        raise RuntimeError("decision bug")


class Bogus:
    @hookimpl(tryfirst=True)
    def stream_error(self, stream: Stream, error: StreamError) -> str:
        return "pray"


@pytest.mark.parametrize("bad", [Broken, Bogus])
async def test_row23_24_failing_plugins_are_isolated_and_decisions_fall_through(
    server: ProviderServer, source: Callable[..., Any], bad: type
) -> None:
    events = golden_events(PROTOCOL, tool=TOOL)
    busy = JSONReply(503, {"error": {"type": "server_error", "message": "busy"}})
    server.script(PROTOCOL, busy, SSEReply(events))
    ends = Ends()
    pipe = fault_pipeline(ends, bad())
    async with pipe.open(source()) as stream:
        message = await stream.collect()
    assert view(message, PROTOCOL) == golden(PROTOCOL, events)  # the retry plugin decided instead
    assert stream.plugin_errors and all("bad" not in e.plugin_name for e in stream.plugin_errors)
    assert {e.hook_name for e in stream.plugin_errors} >= {"stream_error"}
    delivered = [e for e in ends.events if isinstance(e, Chunk)]
    assert "".join(c.text for c in delivered) == message.text  # the other plugin saw every event
    assert ends.outcomes == ["complete"]


# -- rows 25, 26, 27: slow plugins, a sink that goes away, a slow consumer ----------------------------


class SlowSink:
    def __init__(self) -> None:
        self.seen = 0

    @hookimpl
    async def stream_event(self, stream: Stream, event: Event) -> None:
        await asyncio.sleep(0.03)  # longer than the idle timeout below
        self.seen += 1


class GoneSink:
    def __init__(self) -> None:
        self.seen = 0

    @hookimpl
    def stream_event(self, stream: Stream, event: Event) -> None:
        self.seen += 1
        if self.seen > 3:
            raise ConnectionResetError("client went away")


async def test_row25_26_slow_and_disconnected_sinks_do_not_stall_or_break_the_stream(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events(PROTOCOL)
    server.script(PROTOCOL, SSEReply(events))
    slow, gone, ends = SlowSink(), GoneSink(), Ends()
    pipe = fault_pipeline(slow, gone, ends, timeouts={"idle": 0.01, "first_chunk": 2.0})
    async with pipe.open(source()) as stream:
        message = await stream.collect()
    assert view(message, PROTOCOL) == golden(PROTOCOL, events)  # the accumulator saw everything
    assert slow.seen == len(ends.events) == stream.events_delivered  # no idle timeout while hooks run
    assert any(e.plugin_name and e.hook_name == "stream_event" for e in stream.plugin_errors)
    assert len(server.requests) == 1


async def test_row27_a_slow_consumer_gets_every_event_once_in_order_without_timeouts(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events(PROTOCOL, tool=TOOL)
    server.script(PROTOCOL, SSEReply(events))
    seen = Delivered()
    pipe = fault_pipeline(timeouts={"idle": 0.01, "first_chunk": 2.0})
    async with pipe.open(source()) as stream:
        async for ev in stream:
            seen.feed(ev)
            await asyncio.sleep(0.02)  # the consumer is slower than the idle timeout
    assert seen.seqs_contiguous() and stream.outcome == "complete"
    assert seen.text() == golden(PROTOCOL, events)["text"]
    assert len(server.requests) == 1


# -- row 28: caller cancellation ----------------------------------------------------------------------


async def test_row28_task_cancel_closes_the_connection_never_retries_and_ends_once(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    baseline = _others()
    events = golden_events(PROTOCOL)
    cut = content_indices(PROTOCOL, events)[3]
    server.script(PROTOCOL, SSEReply([*events[:cut], Stall()]))
    ends = Ends()
    got_content = asyncio.Event()

    async def consumer() -> None:
        async with fault_pipeline(ends).open(source()) as stream:
            async for ev in stream:
                if isinstance(ev, Chunk):
                    got_content.set()

    task = asyncio.create_task(consumer())
    await got_content.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await server.wait_connections(0)
    assert ends.outcomes == ["cancelled"] and len(server.requests) == 1
    assert _others() <= baseline


async def test_row28_break_closes_the_connection_and_ends_once(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events(PROTOCOL)
    server.script(PROTOCOL, SSEReply([*events[:4], Stall()]))
    ends = Ends()
    async with fault_pipeline(ends).open(source()) as stream:
        async for ev in stream:
            if isinstance(ev, Chunk):
                break
    assert server.connections_open() == 0 or await _closes(server)
    assert ends.outcomes == ["cancelled"] and stream.outcome == "cancelled"
    assert len(server.requests) == 1


async def _closes(server: ProviderServer) -> bool:
    await server.wait_connections(0)
    return True


def test_row28_keyboard_interrupt_in_the_sync_wrapper_never_retries() -> None:
    events = golden_events(PROTOCOL)
    with ThreadedProviderServer() as srv:
        srv.script(PROTOCOL, SSEReply([*events[:4], Stall()]))
        client = openai.OpenAI(api_key="sk-test", base_url=srv.openai_base_url)
        ends = Ends()
        src = sdk_source(PROTOCOL, client)
        with pytest.raises(KeyboardInterrupt):
            with open_sync(src, plugins=[ends], config={"plugins": {"autoload": False}}) as s:
                for ev in s:
                    if isinstance(ev, Chunk):
                        raise KeyboardInterrupt
        srv.wait_connections(0)
        client.close()
        assert ends.outcomes == ["cancelled"]
        assert len(srv.requests) == 1


# -- control API: cancel, pause/resume, stats ------------------------------------------------------------


async def test_cancel_from_another_task_closes_the_provider_connection_at_once(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    baseline = _others()
    events = golden_events(PROTOCOL)
    server.script(PROTOCOL, SSEReply([*events[:4], Stall()]))
    ends = Ends()
    stream = fault_pipeline(ends, recovery={"mid_stream": "restart"}).open(source())
    seen = Delivered()

    async def consumer() -> StreamError | None:
        nonlocal seen
        seen, error = await consume(stream)
        return error

    task = asyncio.create_task(consumer())
    await _until(lambda: stream.chunks > 0 and stream.reading)
    stream.cancel()
    error = await task
    assert isinstance(error, StreamCancelled) and seen.mismatch(error.partial) is None
    await server.wait_connections(0)
    assert ends.outcomes == ["cancelled"] and len(server.requests) == 1  # never recovered
    assert _others() <= baseline


async def test_cancel_interrupts_a_backoff_wait(server: ProviderServer, source: Callable[..., Any]) -> None:
    server.script(PROTOCOL, JSONReply(503, {"error": {"message": "x"}}, headers={"retry-after": "30"}))
    previous = switches.set_testing(False)  # a real 30 s backoff
    try:
        ends = Ends()
        stream = fault_pipeline(ends).open(source())
        task = asyncio.create_task(consume(stream))
        await _until(lambda: stream.attempt >= 2)
        stream.cancel()
        _, error = await asyncio.wait_for(task, 5)  # fails if the 30 s wait was not interrupted
    finally:
        switches.set_testing(previous.active, attempts=previous.attempts)
    assert isinstance(error, StreamCancelled)
    assert ends.outcomes == ["cancelled"] and len(server.requests) == 1


async def test_pause_stops_reading_and_resume_goes_on(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events(PROTOCOL, tool=TOOL)
    server.script(PROTOCOL, SSEReply(events))
    pipe = fault_pipeline(timeouts={"idle": 0.01, "first_chunk": 2.0})
    stream = pipe.open(source())
    paused_at: list[int] = []

    async def controller() -> None:
        await _until(lambda: stream.paused)
        assert stream.stats().state == "paused"
        received = stream.events_received
        for _ in range(5):
            await asyncio.sleep(0.01)  # longer than the idle timeout: paused is not idle
        paused_at.append(stream.events_received - received)
        stream.resume()

    ctl = asyncio.create_task(controller())
    async with stream:
        async for ev in stream:
            if isinstance(ev, Chunk) and stream.chunks == 2:
                stream.pause()
    await ctl
    assert paused_at == [0]  # nothing was pulled from the provider while paused
    assert view(stream.message, PROTOCOL) == golden(PROTOCOL, events)


async def test_stats_report_state_attempts_chunks_tokens_and_timing(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events(PROTOCOL)
    cut = content_indices(PROTOCOL, events)[2]
    server.script(PROTOCOL, SSEReply(events[:cut], end="rst"), SSEReply(events))
    pipe = fault_pipeline(recovery={"mid_stream": "restart"})
    async with pipe.open(source()) as stream:
        assert stream.stats().state == "new"
        async for _ in stream:
            assert stream.stats().state == "running"
    stats = stream.stats()
    want = golden(PROTOCOL, events)
    assert stats.state == "complete" and stats.attempts == 2 and stats.resets == 1
    assert stats.chunks == len(content_indices(PROTOCOL, events)) + 2  # two chunks of the failed attempt
    assert stats.output_tokens == want["usage"]["output_tokens"]
    assert stats.tokens_per_second is not None and stats.tokens_per_second > 0
    assert stats.time_to_first_token is not None and 0 <= stats.time_to_first_token <= stats.elapsed
    assert stats.to_dict()["attempts"] == 2
