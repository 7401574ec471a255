"""The producer side: the sink plugin against a real redis-server (in-process)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from typing import Any

import openai
import pytest
import redis.asyncio
from schwarm_stream_redis import (
    LogMessage,
    RedisSettings,
    RedisSinkError,
    RedisStreamPlugin,
    StreamDegraded,
    StreamStalled,
    read_stream,
    redis_log,
    stream_info,
    stream_key,
)
from schwarm_stream_redis.testing import RedisServer, free_port, wait_written

import schwarm_stream
from schwarm_stream import Chunk, Pipeline, hookimpl
from schwarm_stream.sources import from_iterator, openai_chat
from schwarm_stream.testing.server import ProviderServer, SSEReply, openai_chat_events

NO_AUTOLOAD = {"plugins": {"autoload": False}}


def words(n: int, gate: asyncio.Event | None = None, at: int = -1) -> Any:
    """A re-openable source of ``n`` words that waits for ``gate`` before word ``at``."""

    async def gen() -> AsyncIterator[str]:
        for i in range(n):
            if gate is not None and i == at:
                await gate.wait()
            yield f"w{i} "

    return from_iterator(gen)


def text(n: int) -> str:
    return "".join(f"w{i} " for i in range(n))


def pipeline(url: str, client: redis.asyncio.Redis, **settings: Any) -> Pipeline:
    settings.setdefault("tenant", "acme")
    return Pipeline(
        [RedisStreamPlugin(RedisSettings(url=url, **settings), client=client)], config=NO_AUTOLOAD
    )


async def read_all(client: redis.asyncio.Redis, sid: str, tenant: str = "acme", after: int = 0) -> LogMessage:
    shown = LogMessage()
    async for value in read_stream(client, tenant, sid, after=after, block_ms=100, idle_timeout=10):
        shown.feed(value)
    return shown


async def test_every_delivered_event_is_in_the_log_in_order_and_equal(
    redis_server: RedisServer,
    rclient: redis.asyncio.Redis,
    provider: ProviderServer,
    oai_client: openai.AsyncOpenAI,
) -> None:
    calls = [
        {
            "id": "call_1",
            "name": "get_weather",
            "arguments": {"city": "Paris"},
            "chunks": ['{"ci', 'ty": "Paris"}'],
        }
    ]
    provider.script("openai-chat", SSEReply(openai_chat_events(["Hel", "lo ", "wörld\n"], tool_calls=calls)))
    stream = pipeline(redis_server.url, rclient).open(openai_chat(oai_client, model="m", messages=[]))
    async with stream:
        delivered = [ev async for ev in stream]

    logged = [v async for v in read_stream(rclient, "acme", stream.id, block_ms=100)]
    *events, end = logged
    assert events == delivered  # same types, same fields, same seq (raw is never logged)
    assert [e.seq for e in events] == list(range(1, len(delivered) + 1))
    assert end.status == "complete" and end.seq == len(delivered) + 1
    assert end.message["text"] == stream.message.text == "Hello wörld\n"
    assert end.message["tool_calls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    ]
    assert end.message["finish_reason"] == "tool_calls"
    key = stream_key("acme", stream.id)
    (start_id, start), *_ = await rclient.xrange(key, count=1)
    assert start_id == b"0-1" and start[b"type"] == b"start"  # the start entry, seq 0
    assert 0 < await rclient.ttl(key) <= 3600  # EXPIRE refreshed with the writes


async def test_the_log_is_written_before_other_sinks_see_the_event(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    order: list[str] = []

    class LocalSink:
        @hookimpl(tryfirst=True)  # even a tryfirst sink registered later runs after the queueing
        def stream_event(self, stream: Any, event: Any) -> None:
            w = redis_log(stream)
            # the newest queued item is this event (batched: a plain text chunk is queued as its text)
            last = w._pending[-1] if w is not None and w._pending else None
            order.append("queued" if last is event or last is getattr(event, "text", None) else "not queued")

    plugin = RedisStreamPlugin(RedisSettings(url=redis_server.url, tenant="acme"), client=rclient)
    pipe = Pipeline([LocalSink(), plugin], config=NO_AUTOLOAD)
    stream = pipe.open(words(5))
    await stream.collect()
    assert order and set(order) == {"queued"}
    assert (await read_all(rclient, stream.id)).text == text(5)


async def test_the_consumer_loop_ends_only_after_the_terminal_entry_is_in_redis(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    stream = pipeline(redis_server.url, rclient).open(words(300))
    async with stream:
        async for _ in stream:
            pass
        # no waiting: when the loop is over, the whole log and its end are in Redis already
        last = await rclient.xrevrange(stream_key("acme", stream.id), count=1)
    assert last[0][1][b"type"] == b"end" and last[0][1][b"status"] == b"complete"
    assert redis_log(stream).written_seq == 301 + 1


async def test_reset_events_are_logged_and_a_reader_shows_the_final_attempt(
    redis_server: RedisServer,
    rclient: redis.asyncio.Redis,
    provider: ProviderServer,
    oai_client: openai.AsyncOpenAI,
) -> None:
    first = openai_chat_events(["old ", "text "], finish_reason=None, usage=None, done=False)
    provider.script(
        "openai-chat", SSEReply(first, end="truncate"), SSEReply(openai_chat_events(["new ", "text"]))
    )
    plugin = RedisStreamPlugin(RedisSettings(url=redis_server.url, tenant="acme"), client=rclient)
    pipe = Pipeline([plugin], config={**NO_AUTOLOAD, "recovery": {"mid_stream": "restart"}})
    stream = pipe.open(openai_chat(oai_client, model="m", messages=[]))
    message = await stream.collect()
    assert message.text == "new text" and message.recovery == "restarted"
    logged = [v async for v in read_stream(rclient, "acme", stream.id, block_ms=100)]
    assert [type(v).__name__ for v in logged].count("Reset") == 1
    shown = LogMessage()
    for v in logged:
        shown.feed(v)
    assert shown.text == message.text and shown.end.message["recovery"] == "restarted"


@pytest.mark.parametrize(("outcome", "status"), [("error", "error"), ("cancelled", "cancelled")])
async def test_a_stream_that_does_not_complete_gets_a_terminal_entry_with_its_outcome(
    redis_server: RedisServer, rclient: redis.asyncio.Redis, outcome: str, status: str
) -> None:
    async def gen() -> AsyncIterator[str]:
        yield "partial "
        if outcome == "error":
            raise schwarm_stream.TransportError("connection reset by peer")
        await asyncio.sleep(30)
        yield "never"

    stream = pipeline(redis_server.url, rclient).open(from_iterator(gen))
    with pytest.raises(schwarm_stream.StreamError):
        async with stream:
            async for _ in stream:
                if outcome == "cancelled":
                    stream.cancel()
    shown = await read_all(rclient, stream.id)
    assert shown.end.status == status and shown.text == "partial "
    assert shown.end.message["text"] == "partial " and shown.end.error["type"] == type(stream.error).__name__


async def test_the_producer_finishes_when_every_reader_leaves(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    gate = asyncio.Event()
    stream = pipeline(redis_server.url, rclient).open(words(50, gate, at=10))
    produced = asyncio.create_task(stream.collect())
    await wait_written(stream, 5)
    readers = [asyncio.create_task(read_all(rclient, stream.id)) for _ in range(3)]
    await asyncio.sleep(0.1)
    for r in readers:  # every client goes away mid-stream
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    gate.set()
    message = await produced
    assert stream.outcome == "complete" and message.text == text(50)
    assert (await read_all(rclient, stream.id)).text == text(50)  # a later reader still gets everything


async def calls(client: redis.asyncio.Redis, command: str) -> int:
    stats = await client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.mark.parametrize("mode", ["per_event", "batched"])
async def test_writes_are_batched_not_one_round_trip_per_event(
    redis_server: RedisServer, rclient: redis.asyncio.Redis, mode: str
) -> None:
    xadds, expires = await calls(rclient, "xadd"), await calls(rclient, "expire")
    stream = pipeline(redis_server.url, rclient, write_mode=mode).open(words(2000))
    await stream.collect()
    xadds, expires = await calls(rclient, "xadd") - xadds, await calls(rclient, "expire") - expires
    # one EXPIRE per round trip: far fewer round trips than events, in both modes
    assert 0 < expires < 2000 // 10
    if mode == "per_event":
        assert xadds == 2000 + 2 + 1  # entries: start + events (2000 chunks + finish) + end
    else:
        assert xadds <= 2 * expires + 1  # the events of one write share one entry: start, batches, end
    assert (await read_all(rclient, stream.id)).text == text(2000)


async def test_backpressure_pauses_the_stream_while_redis_lags_and_loses_nothing(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    seen_paused: list[bool] = []

    class Observer:
        @hookimpl
        def stream_event(self, stream: Any, event: Any) -> None:
            seen_paused.append(stream.paused)

    plugin = RedisStreamPlugin(
        RedisSettings(url=redis_server.url, tenant="acme", max_pending=5), client=rclient
    )
    admin = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await admin.execute_command("CLIENT", "PAUSE", "300", "WRITE")  # Redis lags: writes wait 300 ms
        stream = Pipeline([Observer(), plugin], config=NO_AUTOLOAD).open(words(60))
        message = await stream.collect()
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
    assert any(seen_paused) and not stream.paused
    assert message.text == text(60) and (await read_all(rclient, stream.id)).text == text(60)


# -- Redis failures ----------------------------------------------------------------------------------------


async def test_fail_mode_fails_the_stream_when_the_log_vanishes_and_readers_are_told(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    gate = asyncio.Event()
    stream = pipeline(redis_server.url, rclient, on_redis_error="fail").open(words(20, gate, at=5))
    produced = asyncio.create_task(stream.collect())
    await wait_written(stream, 5)
    await rclient.delete(stream_key("acme", stream.id))  # as after a restart without persistence
    gate.set()
    with pytest.raises(RedisSinkError) as info:
        await produced
    assert info.value.reason == "log_lost" and info.value.retryable is False
    assert stream.outcome == "error" and redis_log(stream).state == "failed"
    with pytest.raises(StreamDegraded) as reader_err:
        await read_all(rclient, stream.id, after=5)
    assert reader_err.value.producer_status == "error" and reader_err.value.status == 502


async def test_degrade_mode_goes_on_locally_with_a_flag_a_warning_and_readers_are_told(
    redis_server: RedisServer, rclient: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    gate = asyncio.Event()
    stream = pipeline(redis_server.url, rclient, on_redis_error="degrade").open(words(20, gate, at=5))
    produced = asyncio.create_task(stream.collect())
    await wait_written(stream, 5)
    await rclient.delete(stream_key("acme", stream.id))
    with caplog.at_level(logging.WARNING, logger="schwarm_stream.redis"):
        gate.set()
        message = await produced
    assert message.text == text(20) and stream.outcome == "complete"  # the stream itself is fine
    assert redis_log(stream).degraded and redis_log(stream).error.reason == "log_lost"
    assert [r for r in caplog.records if "degraded" in r.getMessage()]
    with pytest.raises(StreamDegraded) as reader_err:  # never a truncated "complete"
        await read_all(rclient, stream.id)
    assert reader_err.value.producer_status == "degraded"


@pytest.mark.parametrize("mode", ["fail", "degrade"])
async def test_a_slow_redis_counts_as_a_failure_after_write_timeout(
    redis_server: RedisServer, rclient: redis.asyncio.Redis, mode: str
) -> None:
    gate = asyncio.Event()
    stream = pipeline(redis_server.url, rclient, on_redis_error=mode, write_timeout=0.2).open(
        words(10, gate, at=3)
    )
    produced = asyncio.create_task(stream.collect())
    await wait_written(stream, 3)
    admin = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await admin.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
        gate.set()
        if mode == "fail":
            with pytest.raises(RedisSinkError) as info:
                await produced
            assert info.value.reason == "timeout"
        else:
            assert (await produced).text == text(10)
            assert redis_log(stream).degraded and redis_log(stream).error.reason == "timeout"
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
    # Redis was still paused when the stream ended, so the "incomplete" marker may not have landed: the
    # reader then gets StreamStalled; either way an error, never a truncated "complete"
    shown = LogMessage()
    with pytest.raises((StreamDegraded, StreamStalled)):
        async for v in read_stream(rclient, "acme", stream.id, block_ms=100, idle_timeout=0.5):
            shown.feed(v)
    assert shown.end is None and shown.text == text(3)


@pytest.mark.parametrize("mode", ["fail", "degrade"])
async def test_redis_down_at_start(mode: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    client = redis.asyncio.Redis.from_url(url)
    try:
        stream = pipeline(url, client, on_redis_error=mode, write_timeout=1.0).open(words(3))
        if mode == "fail":
            with pytest.raises(RedisSinkError) as info:
                await stream.collect()
            assert info.value.reason == "unavailable" and stream.chunks == 0  # the provider was never read
        else:
            assert (await stream.collect()).text == text(3) and redis_log(stream).degraded
    finally:
        await client.aclose()


# -- keys, tenants, configuration ---------------------------------------------------------------------------


async def test_tenant_comes_from_metadata_and_bad_ids_never_reach_a_key(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    pipe = pipeline(redis_server.url, rclient)
    stream = pipe.open(words(2), metadata={"tenant": "globex"})
    await stream.collect()
    assert redis_log(stream).key == f"schwarm:globex:stream:{{{stream.id}}}"
    assert (await read_all(rclient, stream.id, tenant="globex")).text == text(2)

    for kwargs in ({"metadata": {"tenant": "a:*"}}, {"stream_id": "chat-1"}, {"stream_id": "A" * 32}):
        bad = pipe.open(words(2), **kwargs)
        with pytest.raises(RedisSinkError) as info:
            await bad.collect()
        assert info.value.reason == "invalid_ref"
    keys = [k.decode() for k in await rclient.keys("*")]
    assert keys and all(re.fullmatch(r"schwarm:[A-Za-z0-9_.-]+:stream:\{[0-9a-f]{32}\}", k) for k in keys)


async def test_entry_point_plugin_is_inactive_until_configured(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    (ep,) = [ep for ep in entry_points(group="schwarm_stream") if ep.name == "redis"]
    assert ep.value == "schwarm_stream_redis:plugin"
    plugin = ep.load()
    try:
        idle = schwarm_stream.open(words(2), config={})
        await idle.collect()
        assert redis_log(idle) is None and await rclient.keys(f"*{idle.id}*") == []

        cfg = {"redis": {"url": redis_server.url, "tenant": "initech", "maxlen": 50}}
        active = schwarm_stream.open(words(2), config=cfg)
        await active.collect()
        assert redis_log(active).key == f"schwarm:initech:stream:{{{active.id}}}"
        assert (await read_all(rclient, active.id, tenant="initech")).text == text(2)
    finally:
        await plugin.aclose()
    with pytest.raises(schwarm_stream.ConfigError, match=r"redis\.on_redis_error"):
        schwarm_stream.open(words(1), config={"redis": {"on_redis_error": "ignore"}})


@pytest.mark.parametrize(
    "layout", [{"write_mode": "per_event"}, {"batch_max": 5}, {}], ids=["per_event", "small", "batched"]
)
async def test_approximate_maxlen_keeps_at_least_maxlen_entries(
    redis_server: RedisServer, rclient: redis.asyncio.Redis, layout: dict[str, Any]
) -> None:
    stream = pipeline(redis_server.url, rclient, maxlen=100, **layout).open(words(1000))
    await stream.collect()
    info = await stream_info(rclient, "acme", stream.id)
    assert info.end is not None
    kept = info.end.seq + 1 - info.first_seq  # events (and the end) still in the log
    assert 100 <= kept  # MAXLEN ~ / MINID ~ trim whole nodes: more than asked, never less
    if layout:
        assert kept < 1000  # small entries: trimming really happened
    tail = LogMessage()
    async for v in read_stream(rclient, "acme", stream.id, after=1000 - 50, block_ms=100):
        tail.feed(v)
    assert tail.text == "".join(f"w{i} " for i in range(950, 1000))


def test_chunk_type_roundtrip_keeps_kind_and_index() -> None:
    from schwarm_stream_redis._codec import decode_entry, encode_event

    for ev in (Chunk("x\r\n\0y", "reasoning", 2, 1, 7), Chunk("", "refusal", 0, 0, 1)):
        assert decode_entry(encode_event(ev))[2] == ev


# -- batching: flush by timer, by size, and at once at the end ------------------------------------------


def never_timed(url: str, client: redis.asyncio.Redis, **settings: Any) -> Pipeline:
    """A pipeline whose flush timer is an hour (past the 1 s the config allows, so built unvalidated)."""
    base = RedisSettings(url=url, tenant="acme", **settings).model_dump()
    plugin = RedisStreamPlugin(
        RedisSettings.model_construct(**{**base, "flush_interval": 3600.0}), client=client
    )
    return Pipeline([plugin], config=NO_AUTOLOAD)


async def test_a_quiet_stream_is_flushed_by_the_timer_not_held_for_a_full_batch(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    gate = asyncio.Event()
    stream = pipeline(redis_server.url, rclient, batch_max=1000, flush_interval=0.05).open(words(5, gate, 3))
    it = stream.__aiter__()
    for _ in range(3):
        await it.__anext__()
    # the source now waits for the gate: neither size (1000) nor the end can flush, only the timer
    await wait_written(stream, 3)
    gate.set()
    async for _ in it:
        pass
    assert (await read_all(rclient, stream.id)).text == text(5)


async def test_a_full_batch_is_written_without_waiting_for_the_timer(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    gate = asyncio.Event()
    # a timer that never fires within the test: only the size (10 queued events) can flush
    stream = never_timed(redis_server.url, rclient, batch_max=10).open(words(30, gate, 25))
    it = stream.__aiter__()
    for _ in range(25):
        await it.__anext__()
    await wait_written(stream, 20)
    gate.set()
    async for _ in it:
        pass
    entries = await rclient.xrange(stream_key("acme", stream.id))
    sizes = [int(f[b"seq"]) - int(f[b"first"]) + 1 for _, f in entries if f[b"type"] == b"events"]
    assert sum(sizes) == 31 and max(sizes) <= 10  # 30 words + finish, in entries of at most batch_max


@pytest.mark.parametrize("outcome", ["complete", "error", "cancelled"])
async def test_the_end_flushes_the_batch_at_once_whatever_the_outcome(
    redis_server: RedisServer, rclient: redis.asyncio.Redis, outcome: str
) -> None:
    async def gen() -> AsyncIterator[str]:
        yield "a "
        yield "b "
        if outcome == "error":
            raise schwarm_stream.TransportError("connection reset by peer")
        if outcome == "cancelled":
            await asyncio.sleep(30)

    # a timer that never fires within the test: the end must not wait for it
    stream = never_timed(redis_server.url, rclient).open(from_iterator(gen))
    async with asyncio.timeout(30):  # a hang guard, not a measurement
        try:
            async with stream:
                async for ev in stream:
                    if outcome == "cancelled" and getattr(ev, "text", "") == "b ":
                        stream.cancel()
        except schwarm_stream.StreamError:
            assert outcome != "complete"
        # nothing lost: the events and the terminal entry are in Redis when the stream is over
        last = await rclient.xrevrange(stream_key("acme", stream.id), count=1)
    assert last[0][1][b"type"] == b"end" and last[0][1][b"status"] == outcome.encode()
    shown = await read_all(rclient, stream.id)
    assert shown.text == "a b " and shown.end is not None and shown.end.status == outcome


async def test_two_registered_instances_write_every_event_once(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    # the entry-point instance (config-driven, no url) and an explicit one: only the writer's owner feeds it
    explicit = RedisStreamPlugin(RedisSettings(url=redis_server.url, tenant="acme"), client=rclient)
    stream = Pipeline([RedisStreamPlugin(), explicit], config=NO_AUTOLOAD).open(words(20))
    await stream.collect()
    entries = await rclient.xrange(stream_key("acme", stream.id))
    from schwarm_stream_redis._codec import decode_entry

    logged = [
        e
        for _, f in entries
        if f[b"type"] == b"events"
        for e in decode_entry({k.decode(): v.decode() for k, v in f.items()})[2]  # type: ignore[union-attr]
    ]
    assert [e.seq for e in logged] == list(range(1, 22))  # 20 words + finish, once each (before: twice)
    assert (await read_all(rclient, stream.id)).text == text(20)
