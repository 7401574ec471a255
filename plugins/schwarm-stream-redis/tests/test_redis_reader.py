"""The reader side: cursors, unknown / other-tenant / trimmed logs, stalls and outages (real redis-server)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio
from schwarm_stream_redis import (
    MAX_SEQ,
    InvalidStreamRef,
    LogMessage,
    LogUnavailable,
    RedisSettings,
    RedisStreamPlugin,
    StreamGone,
    StreamStalled,
    StreamUnknown,
    parse_cursor,
    read_stream,
    stream_info,
    stream_key,
    validate_stream_id,
    validate_tenant,
)
from schwarm_stream_redis.testing import RedisServer, wait_written

from schwarm_stream import Pipeline
from schwarm_stream.sources import from_iterator


async def produce(url: str, client: redis.asyncio.Redis, n: int, **settings: Any) -> str:
    async def gen() -> AsyncIterator[str]:
        for i in range(n):
            yield f"w{i} "

    plugin = RedisStreamPlugin(RedisSettings(url=url, tenant="acme", **settings), client=client)
    stream = Pipeline([plugin], config={"plugins": {"autoload": False}}).open(from_iterator(gen))
    await stream.collect()
    return stream.id


async def collect(client: redis.asyncio.Redis, sid: str, after: Any = 0, tenant: str = "acme") -> LogMessage:
    shown = LogMessage()
    async for v in read_stream(client, tenant, sid, after=after, block_ms=100, idle_timeout=5):
        shown.feed(v)
    return shown


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 0), ("", 0), ("0", 0), ("42", 42), (7, 7), (MAX_SEQ, MAX_SEQ)]
)
def test_cursor_accepts_decimal_sequence_numbers(value: Any, expected: int) -> None:
    assert parse_cursor(value) == expected


@pytest.mark.parametrize(
    "value", ["-1", "+1", " 4", "4 ", "1e3", "0x10", "4.0", "١٢", "9" * 17, -1, MAX_SEQ + 1, True, 1.0, b"4"]
)
def test_cursor_rejects_anything_else(value: Any) -> None:
    with pytest.raises(InvalidStreamRef) as info:
        parse_cursor(value)
    assert info.value.status == 400 and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "bad", ["", "abc", "A" * 32, "g" * 32, "*", "0" * 31 + ":", "../" + "0" * 29, "0" * 33, None]
)
def test_stream_ids_must_be_uuid4_hex(bad: Any) -> None:
    with pytest.raises(InvalidStreamRef, match="stream id"):
        validate_stream_id(bad)
    assert validate_stream_id(uuid.uuid4().hex)


@pytest.mark.parametrize("bad", ["", "a:b", "a b", "*", "-x", "x" * 65, "a\nb", "tenant\x00", 3])
def test_tenants_must_be_short_safe_names(bad: Any) -> None:
    with pytest.raises(InvalidStreamRef, match="tenant"):
        validate_tenant(bad)
    assert stream_key("acme.eu-1", "0" * 32) == "schwarm:acme.eu-1:stream:{" + "0" * 32 + "}"


async def test_invalid_ids_are_rejected_before_redis_is_asked() -> None:
    dead = redis.asyncio.Redis(port=1)  # would raise LogUnavailable if it were contacted
    try:
        with pytest.raises(InvalidStreamRef):
            await collect(dead, "schwarm:*")
        with pytest.raises(InvalidStreamRef):
            await collect(dead, uuid.uuid4().hex, after="1; DEL x")
    finally:
        await dead.aclose()


async def test_unknown_and_other_tenants_streams_are_both_unknown(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    sid = await produce(redis_server.url, rclient, 3)
    assert (await collect(rclient, sid)).text == "w0 w1 w2 "
    errors = []
    for tenant, stream_id in (("acme", uuid.uuid4().hex), ("globex", sid)):
        with pytest.raises(StreamUnknown) as info:
            await collect(rclient, stream_id, tenant=tenant)
        errors.append(info.value)
    assert [e.status for e in errors] == [404, 404]  # no way to tell "exists elsewhere" from "never existed"


async def test_resume_from_any_seq_gives_exactly_the_rest(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    sid = await produce(redis_server.url, rclient, 10)
    full = await collect(rclient, sid)
    end = full.end.seq
    for after in range(0, end):
        rest = [v async for v in read_stream(rclient, "acme", sid, after=str(after), block_ms=100)]
        assert [v.seq for v in rest] == list(range(after + 1, end + 1))
    assert [v async for v in read_stream(rclient, "acme", sid, after=end)] == []  # has everything: 204
    with pytest.raises(InvalidStreamRef, match="past the end"):
        await collect(rclient, sid, after=end + 1)


# both layouts: one entry per event, and small batched entries (so whole radix nodes can go)
LAYOUTS = pytest.mark.parametrize(
    "layout", [{"write_mode": "per_event"}, {"batch_max": 5}], ids=["per_event", "batched"]
)


@LAYOUTS
async def test_a_trimmed_position_is_gone_never_silently_skipped(
    redis_server: RedisServer, rclient: redis.asyncio.Redis, layout: dict[str, Any]
) -> None:
    sid = await produce(redis_server.url, rclient, 1000, maxlen=100, **layout)
    info = await stream_info(rclient, "acme", sid)
    assert info.first_seq > 1 and info.start is None  # the start entry went with the first node
    with pytest.raises(StreamGone) as gone:
        await collect(rclient, sid, after=0)
    assert gone.value.status == 410 and gone.value.first_seq == info.first_seq
    # right at the edge: the oldest entry left is exactly the next one
    tail = await collect(rclient, sid, after=info.first_seq - 1)
    assert tail.end is not None and tail.end.status == "complete"


@LAYOUTS
async def test_trimming_under_a_slow_reader_is_detected_mid_read(
    redis_server: RedisServer, rclient: redis.asyncio.Redis, layout: dict[str, Any]
) -> None:
    sid = await produce(redis_server.url, rclient, 50, **layout)
    key = stream_key("acme", sid)
    reader = read_stream(rclient, "acme", sid, count=2, block_ms=100)
    got = [await reader.__anext__(), await reader.__anext__()]
    assert [v.seq for v in got] == [1, 2]
    await rclient.xtrim(key, maxlen=5, approximate=False)  # XREAD alone would now jump ahead
    with pytest.raises(StreamGone) as gone:
        async for _ in reader:
            pass
    # per event: the reader had 2 entries = 2 events; batched: 2 entries of 5 events, already fetched
    assert gone.value.after == (2 if layout.get("write_mode") == "per_event" else 10)
    assert gone.value.first_seq is not None and gone.value.first_seq > gone.value.after + 1


async def test_a_log_that_stops_growing_stalls_and_a_vanished_log_is_gone(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    gate = asyncio.Event()

    async def gen() -> AsyncIterator[str]:
        yield "a "
        await gate.wait()
        yield "b "

    plugin = RedisStreamPlugin(RedisSettings(url=redis_server.url, tenant="acme"), client=rclient)
    stream = Pipeline([plugin], config={"plugins": {"autoload": False}}).open(from_iterator(gen))
    produced = asyncio.create_task(stream.collect())
    await wait_written(stream, 1)
    with pytest.raises(StreamStalled) as stalled:
        async for _ in read_stream(rclient, "acme", stream.id, block_ms=50, idle_timeout=0.3):
            pass
    assert stalled.value.status == 504
    reader = read_stream(rclient, "acme", stream.id, after=1, block_ms=50, idle_timeout=10)
    pending = asyncio.create_task(reader.__anext__())
    await asyncio.sleep(0.1)
    await rclient.delete(stream_key("acme", stream.id))  # expired / lost while a client waits
    with pytest.raises(StreamGone):
        await pending
    gate.set()
    await asyncio.gather(produced, return_exceptions=True)


async def test_cancelling_a_blocked_reader_leaves_the_client_usable(
    redis_server: RedisServer, rclient: redis.asyncio.Redis
) -> None:
    gate = asyncio.Event()

    async def gen() -> AsyncIterator[str]:
        yield "a "
        await gate.wait()
        yield "b "

    plugin = RedisStreamPlugin(RedisSettings(url=redis_server.url, tenant="acme"), client=rclient)
    stream = Pipeline([plugin], config={"plugins": {"autoload": False}}).open(from_iterator(gen))
    produced = asyncio.create_task(stream.collect())
    await wait_written(stream, 1)
    blocked = asyncio.create_task(collect(rclient, stream.id, after=1))
    await asyncio.sleep(0.1)
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    assert await rclient.ping() is True
    gate.set()
    await produced
    assert (await collect(rclient, stream.id)).text == "a b "


async def test_redis_down_while_reading_is_log_unavailable(private_redis: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(private_redis.url)
    try:
        sid = await produce(private_redis.url, client, 3)
        private_redis.stop()
        with pytest.raises(LogUnavailable) as info:
            await collect(client, sid)
        assert info.value.status == 503
    finally:
        await client.aclose()


def test_all_keys_of_a_stream_share_one_cluster_hash_slot() -> None:
    from redis.crc import key_slot

    sid = uuid.uuid4().hex
    key = stream_key("acme", sid)
    assert key.endswith("{" + sid + "}")  # the hash tag: only the stream id is hashed
    assert key_slot(key.encode()) == key_slot(sid.encode()) == key_slot(stream_key("globex", sid).encode())
