"""Held text is released within max_delay even while the provider is silent (Stream.flush_after)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from schwarm_stream import Chunk, Pipeline, StreamTimeout, hookimpl
from schwarm_stream.builtins.buffer import Buffer
from schwarm_stream.sources import from_iterator, openai_chat
from schwarm_stream.testing.server import ProviderServer, SSEReply, Stall, openai_chat_events
from schwarm_stream.transformers import Smoother


def pipeline(*plugins: Any, **sections: Any) -> Pipeline:
    return Pipeline(plugins, config={"plugins": {"autoload": False}, **sections})


def gated(gate: asyncio.Event, before: list[str], after: list[str]) -> Any:
    """Yields ``before``, waits until the consumer opens ``gate``, then yields ``after``."""

    async def gen() -> AsyncIterator[str]:
        for text in before:
            yield text
        await gate.wait()
        for text in after:
            yield text

    return from_iterator(lambda: gen())


async def consume_opening(stream: Any, gate: asyncio.Event) -> list[str]:
    texts: list[str] = []
    async for ev in stream:
        if isinstance(ev, Chunk):
            texts.append(ev.text)
            gate.set()  # the provider only goes on once the held text reached us
    return texts


@pytest.mark.parametrize(
    "plugin",
    [Buffer(max_events=100, max_delay=0.02), Smoother("sentence", max_delay=0.02)],
    ids=["buffer", "smoother"],
)
async def test_held_text_reaches_the_consumer_while_the_provider_is_silent(plugin: Any) -> None:
    gate = asyncio.Event()
    async with pipeline(plugin).open(gated(gate, ["Hel", "lo"], [" world."])) as stream:
        # Without a timed flush this would deadlock: the text waits for the next event,
        # and the provider waits for the consumer to have seen the text.
        texts = await asyncio.wait_for(consume_opening(stream, gate), 10)
    assert texts[0] == "Hello" and "".join(texts) == "Hello world."
    assert stream.message.text == "Hello world." and stream.message.complete


async def test_a_timed_flush_does_not_interrupt_the_provider_read_nor_reorder_events() -> None:
    async def slow() -> AsyncIterator[str]:
        for i in range(6):
            await asyncio.sleep(0.01)  # longer than max_delay: flushes fall between reads
            yield f"{i},"

    async with pipeline(Buffer(max_events=3, max_delay=0.005)).open(from_iterator(lambda: slow())) as stream:
        events = [ev async for ev in stream]
    texts = [ev.text for ev in events if isinstance(ev, Chunk)]
    assert "".join(texts) == "0,1,2,3,4,5,"  # every chunk once, in order
    assert len(texts) > 2  # timed flushes did release some text early (the buffer holds up to 3)
    assert [ev.seq for ev in events] == list(range(1, len(events) + 1))
    assert stream.message.text == "0,1,2,3,4,5,"


async def test_idle_timeout_and_cancellation_still_work_during_timed_reads() -> None:
    gate = asyncio.Event()
    body = openai_chat_events(["one ", "two"])
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply([*body[:2], Stall(gate)], end="stall"))
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
        src = openai_chat(client, model="m", messages=[{"role": "user", "content": "hi"}])
        cfg = {"timeouts": {"idle": 0.2, "first_chunk": 5}, "retry": {"attempts": 1}}
        async with pipeline(Buffer(max_events=50, max_delay=0.02), **cfg).open(src) as stream:
            seen: list[str] = []
            with pytest.raises(StreamTimeout) as info:
                async for ev in stream:
                    if isinstance(ev, Chunk):
                        seen.append(ev.text)
        assert info.value.kind == "idle"
        assert seen == ["one "]  # released by the timed flush before the stall ended the stream
        assert info.value.partial is not None and info.value.partial.text == "one "
        await client.close()
        await server.wait_connections(0)
        assert server.connections_open() == 0


async def test_timed_reads_run_a_bounded_number_of_events_ahead_of_the_consumer() -> None:
    from schwarm_stream._reads import READ_AHEAD

    produced = {"n": 0}

    async def fast() -> AsyncIterator[str]:
        for i in range(200):
            produced["n"] += 1
            yield f"{i},"

    lead: list[int] = []
    async with pipeline(Buffer(max_events=2, max_delay=30.0)).open(from_iterator(lambda: fast())) as stream:
        async for ev in stream:
            if isinstance(ev, Chunk):
                await asyncio.sleep(0)  # a consumer that yields to the loop: the reader task runs
                lead.append(produced["n"] - stream.events_received)
    assert stream.message.text == "".join(f"{i}," for i in range(200))
    assert max(lead) <= READ_AHEAD + 1  # the queue plus the read in flight, never more
    assert max(lead) > 1  # it did read ahead (one task switch per batch, not per event)


class _KeepTimed:
    """A transformer that keeps a timed flush pending (so reads stay timed) and holds nothing."""

    @hookimpl
    def stream_transform(self, stream: Any, event: Any) -> None:
        stream.flush_after(30.0)


async def test_a_paused_stream_reads_nothing_more_ahead() -> None:
    produced = {"n": 0}

    async def gen() -> AsyncIterator[str]:
        for i in range(100):
            produced["n"] += 1
            yield f"{i},"
            await asyncio.sleep(0.001)  # a paced provider: the reader task is often inside a read

    async with pipeline(_KeepTimed()).open(from_iterator(lambda: gen())) as stream:
        async for ev in stream:
            if isinstance(ev, Chunk) and ev.text == "3,":
                stream.pause()
                at_pause = produced["n"]
                await asyncio.sleep(0.05)  # ~50 events' time
                assert produced["n"] <= at_pause + 1  # the read in flight completes; nothing after it
                stream.resume()
    assert stream.message.text == "".join(f"{i}," for i in range(100))
