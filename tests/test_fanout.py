"""Fan-out queues: block = backpressure without loss, drop policies count exactly, slow consumers isolated."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import schwarm_stream
from schwarm_stream import Chunk, StreamError
from schwarm_stream.compose.fanout import DROP_FLAG, Fanout
from schwarm_stream.sources import from_iterator

N = 60  # text parts; the stream delivers N chunks + 1 finish


def parts(n: int = N) -> list[str]:
    return [f"w{i} " for i in range(n)]


async def test_block_slow_consumer_gets_everything_in_order_and_fast_is_not_held_back() -> None:
    maxsize = 5
    async with schwarm_stream.open(from_iterator(parts())) as stream:
        fan = Fanout(stream, maxsize=maxsize, policy="block")
        fast, slow = fan.subscribe("fast"), fan.subscribe("slow")
        fast_seqs: list[int] = []
        slow_seqs: list[int] = []
        lead: list[int] = []  # how far ahead the fast consumer is each time the slow one gets an event

        async def run_fast() -> None:
            async for ev in fast:
                fast_seqs.append(ev.seq)

        async def run_slow() -> None:
            async for ev in slow:
                slow_seqs.append(ev.seq)
                lead.append(len(fast_seqs) - len(slow_seqs))
                await asyncio.sleep(0.001)  # a slow consumer

        async with fan:
            await asyncio.gather(run_fast(), run_slow())
    total = N + 1
    assert slow_seqs == list(range(1, total + 1))  # every event, once, in order
    assert fast_seqs == slow_seqs
    # Backpressure: the fast consumer is never more than the slow one's queue (+ the event in flight) ahead ...
    assert max(lead) <= maxsize + 1
    # ... and never held back further than that: it has what the slow queue holds, or the end.
    for k, ahead in enumerate(lead, start=1):
        assert ahead >= min(maxsize - 1, total - k)
    assert fan.dropped_events == 0 and stream.stats().dropped_events == 0
    assert fan.message.flags == [] and stream.message.text == "".join(parts())


async def test_block_stops_reading_the_provider() -> None:
    maxsize = 4
    async with schwarm_stream.open(from_iterator(parts())) as stream:
        fan = Fanout(stream, maxsize=maxsize)
        idle = fan.subscribe("idle")
        async with fan:
            for _ in range(1000):  # let the pump run until it blocks on the full queue
                await asyncio.sleep(0)
            assert idle.queued == maxsize
            # the pump holds one event it cannot place: nothing more was read from the provider
            assert stream.events_received == maxsize + 1
            got = [ev.seq async for ev in idle]
    assert got == list(range(1, N + 2))


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
async def test_drop_policies_count_exactly(policy: Any) -> None:
    maxsize = 7
    async with schwarm_stream.open(from_iterator(parts())) as stream:
        fan = Fanout(stream, maxsize=100)
        reader = fan.subscribe("reader")
        lossy = fan.subscribe("lossy", maxsize=maxsize, policy=policy)
        await fan.run()  # nobody reads while the stream runs
        got_reader = [ev.seq async for ev in reader]
        got_lossy = [ev.seq async for ev in lossy]
    total = N + 1
    assert got_reader == list(range(1, total + 1))
    expected = (
        list(range(1, maxsize + 1))
        if policy == "drop_newest"
        else list(range(total - maxsize + 1, total + 1))
    )
    assert got_lossy == expected
    assert lossy.dropped == total - maxsize and reader.dropped == 0
    stats = fan.stats()
    assert stats["dropped_events"] == total - maxsize
    assert stats["consumers"]["lossy"] == {
        "received": maxsize,
        "dropped": total - maxsize,
        "queued": 0,
        "policy": policy,
        "maxsize": maxsize,
    }
    assert stream.stats().dropped_events == total - maxsize
    message = stream.message
    assert message.dropped_events == total - maxsize and DROP_FLAG in message.flags
    assert fan.message.dropped_events == total - maxsize
    # drops never reach the accumulator: the message text is complete
    assert message.text == "".join(parts()) and message.complete


async def test_a_closed_consumer_does_not_block_the_others() -> None:
    async with schwarm_stream.open(from_iterator(parts())) as stream:
        fan = Fanout(stream, maxsize=2)
        gone, stays = fan.subscribe("gone"), fan.subscribe("stays")
        gone.close()
        async with fan:
            got = [ev.seq async for ev in stays]
    assert got == list(range(1, N + 2))
    assert [ev async for ev in gone] == []


async def test_errors_reach_every_consumer_after_the_events_before_them() -> None:
    def failing() -> Any:
        async def gen() -> Any:
            yield "a"
            yield "b"
            raise ConnectionResetError("gone")

        return gen()

    async with schwarm_stream.open(from_iterator(failing)) as stream:
        fan = Fanout(stream, maxsize=8)
        a, b = fan.subscribe(), fan.subscribe()
        task = fan.start()
        for sub in (a, b):
            seen = []
            with pytest.raises(StreamError):
                async for ev in sub:
                    seen.append(ev.text if isinstance(ev, Chunk) else type(ev).__name__)
            assert seen == ["a", "b"]
        with pytest.raises(StreamError):
            await task


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="overflow policy"):
        Fanout(from_iterator([]), policy="drop_random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="maxsize"):
        Fanout(from_iterator([]), maxsize=0)  # type: ignore[arg-type]
