"""Edges of the Redis log (issue 14): any Python str, writer failures that must not hang, two writers
on one stream id, and what ``maxlen`` trimming really promises. Against a real redis-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schwarm_stream_redis import (
    LogMessage,
    RedisSettings,
    RedisSinkError,
    RedisStreamPlugin,
    StreamDegraded,
    StreamGone,
    StreamIdConflict,
    read_stream,
    redis_log,
    stream_info,
    stream_key,
)
from schwarm_stream_redis import _writer as writer_module
from schwarm_stream_redis._codec import decode_entry, encode_end, encode_event, encode_start
from schwarm_stream_redis.testing import RedisServer

from schwarm_stream import Chunk, Finish, Heartbeat, Pipeline, Reset, ToolCallDelta, Usage
from schwarm_stream.sources import from_iterator

NO_AUTOLOAD = {"plugins": {"autoload": False}}

# every code point, lone surrogates included (codec=None: no "must be encodable" filter)
ANY_TEXT = st.text(alphabet=st.characters(codec=None), max_size=40)


def pieces(parts: list[str]) -> Any:
    async def gen() -> AsyncIterator[str]:
        for p in parts:
            yield p

    return from_iterator(gen)


def pipeline(url: str, client: redis.asyncio.Redis, **kw: Any) -> Pipeline:
    kw.setdefault("tenant", "acme")
    return Pipeline([RedisStreamPlugin(RedisSettings(url=url, **kw), client=client)], config=NO_AUTOLOAD)


async def read_all(client: redis.asyncio.Redis, sid: str, after: int = 0) -> LogMessage:
    shown = LogMessage()
    async for value in read_stream(client, "acme", sid, after=after, block_ms=100, idle_timeout=5):
        shown.feed(value)
    return shown


# -- item 3: any str, never a hang ----------------------------------------------------------------------


@given(text=ANY_TEXT, name=ANY_TEXT)
@settings(max_examples=300, deadline=None)
def test_every_str_encodes_to_utf8_fields_and_decodes_back_exactly(text: str, name: str) -> None:
    for ev in (Chunk(text, "text", 0, 0, 3), ToolCallDelta(0, name, name, text, 0, 4)):
        fields = encode_event(ev)
        for v in fields.values():
            v.encode("utf-8")  # what redis-py does: must never raise
        assert decode_entry(fields)[2] == ev
    for fields in (
        encode_start({"model": name}),
        encode_end(5, "error", message={"text": text}, error={"message": name}),
    ):
        for v in fields.values():
            v.encode("utf-8")
        assert decode_entry(fields)[2] is not None


@given(text=ANY_TEXT)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_str_goes_through_a_real_redis_and_back(redis_server: RedisServer, text: str) -> None:
    client = redis.Redis.from_url(redis_server.url)
    key = f"schwarm:acme:stream:{uuid.uuid4().hex}"
    try:
        ev = Chunk(text, "text", 0, 0, 1)
        client.xadd(key, encode_event(ev), id="1-1")  # type: ignore[arg-type]
        ((_, raw),) = client.xrange(key)
        fields = {k.decode(): v.decode("utf-8") for k, v in raw.items()}  # strict: valid UTF-8 in Redis
        assert decode_entry(fields)[2] == ev
    finally:
        client.delete(key)
        client.close()


@pytest.mark.parametrize("mode", ["fail", "degrade"])
async def test_split_surrogates_neither_hang_nor_lose_the_stream(
    redis_server: RedisServer, mode: str
) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        parts = ["smile ", "\ud83d", "\ude00", " lone \udfff end", "\ud800"]
        stream = pipeline(redis_server.url, client, on_redis_error=mode, write_timeout=1.0).open(
            pieces(parts)
        )
        async with asyncio.timeout(10):  # before the fix: stream_complete waited forever
            message = await stream.collect()
        assert redis_log(stream).state == "ok" and redis_log(stream).ended
        shown = await read_all(client, stream.id)
        assert shown.end is not None and shown.end.status == "complete"
        assert shown.text == message.text  # the log holds exactly what the consumer saw
    finally:
        await client.aclose()


@pytest.mark.parametrize("mode", ["fail", "degrade"])
async def test_an_unexpected_write_error_surfaces_through_the_failure_mode_never_hangs(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    def broken(*args: Any) -> dict[str, str]:
        raise UnicodeEncodeError("utf-8", "\ud83d", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(writer_module, "encode_event", broken)  # write_mode = "per_event"
    monkeypatch.setattr(writer_module, "encode_batch", broken)  # write_mode = "batched"
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        stream = pipeline(redis_server.url, client, on_redis_error=mode, write_timeout=1.0).open(
            pieces(["a", "b", "c"])
        )
        async with asyncio.timeout(10):
            if mode == "fail":
                with pytest.raises(RedisSinkError) as info:
                    await stream.collect()
                assert info.value.reason == "rejected" and "UnicodeEncodeError" in str(info.value)
            else:
                assert (await stream.collect()).text == "abc"
                assert redis_log(stream).degraded
        with pytest.raises(StreamDegraded):  # readers are told the log is incomplete
            await read_all(client, stream.id)
    finally:
        await client.aclose()


# -- item 10: one writer per stream id ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fail", "degrade"])
async def test_a_second_writer_on_the_same_stream_id_gets_a_typed_conflict(
    redis_server: RedisServer, mode: str
) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        pipe = pipeline(redis_server.url, client, on_redis_error=mode)
        sid = uuid.uuid4().hex
        first = pipe.open(pieces(["first ", "writer"]), stream_id=sid)
        assert (await first.collect()).text == "first writer"
        second = pipe.open(pieces(["second ", "writer"]), stream_id=sid)
        async with asyncio.timeout(10):
            with pytest.raises(StreamIdConflict) as info:
                await second.collect()
        assert isinstance(info.value, RedisSinkError) and info.value.reason == "conflict"
        assert sid in str(info.value) and second.chunks == 0  # refused before the provider was read
        shown = await read_all(client, sid)  # the first writer's log is untouched
        assert shown.text == "first writer" and shown.end is not None and shown.end.status == "complete"
    finally:
        await client.aclose()


async def test_two_concurrent_writers_exactly_one_wins(redis_server: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        pipe = pipeline(redis_server.url, client)
        sid = uuid.uuid4().hex
        streams = [pipe.open(pieces([f"writer{i} ", "text"]), stream_id=sid) for i in range(2)]
        results = await asyncio.gather(*(s.collect() for s in streams), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        wins = [r for r in results if not isinstance(r, BaseException)]
        assert len(wins) == 1 and len(errors) == 1 and isinstance(errors[0], StreamIdConflict), results
        assert (await read_all(client, sid)).text == wins[0].text
    finally:
        await client.aclose()


# -- item 10: what maxlen promises ----------------------------------------------------------------------


def words(n: int) -> Any:
    return pieces([f"w{i} " for i in range(n)])


LAYOUTS = pytest.mark.parametrize(
    "layout", [{"write_mode": "per_event"}, {"batch_max": 5}], ids=["per_event", "batched"]
)


@LAYOUTS
async def test_approximate_maxlen_may_keep_a_short_stream_whole(
    redis_server: RedisServer, rclient: redis.asyncio.Redis, layout: dict[str, Any]
) -> None:
    # MAXLEN ~ only drops whole radix-tree nodes (stream-node-max-entries, 100 by default): a log shorter
    # than about maxlen + 100 entries is not trimmed at all, so readers from seq 0 still get everything
    stream = pipeline(redis_server.url, rclient, maxlen=10, **layout).open(words(50))
    await stream.collect()
    info = await stream_info(rclient, "acme", stream.id)
    assert info.first_seq == 0 and info.end is not None  # the start entry is still there
    if layout.get("write_mode") == "per_event":
        assert await rclient.xlen(stream_key("acme", stream.id)) == info.end.seq + 1  # every entry
    assert (await read_all(rclient, stream.id)).text == "".join(f"w{i} " for i in range(50))


@LAYOUTS
async def test_a_size_that_really_trims_answers_410_for_trimmed_positions(
    redis_server: RedisServer, rclient: redis.asyncio.Redis, layout: dict[str, Any]
) -> None:
    stream = pipeline(redis_server.url, rclient, maxlen=10, **layout).open(words(600))
    await stream.collect()
    info = await stream_info(rclient, "acme", stream.id)
    assert info.end is not None
    kept = info.end.seq + 1 - info.first_seq  # events (and the end) still in the log
    assert 10 <= kept < info.end.seq + 1 and info.first_seq > 1  # trimmed, never below maxlen
    if layout.get("write_mode") == "per_event":
        assert await rclient.xlen(stream_key("acme", stream.id)) == kept  # the newest entries stay
    for after in (0, info.first_seq - 2):
        with pytest.raises(StreamGone) as gone:
            await read_all(rclient, stream.id, after=after)
        assert gone.value.status == 410 and gone.value.first_seq == info.first_seq
    tail = await read_all(rclient, stream.id, after=info.first_seq - 1)
    assert tail.end is not None and tail.end.status == "complete"
    assert tail.text == "".join(f"w{i} " for i in range(info.first_seq - 1, 600))


# -- item 3: every Redis call is bounded ----------------------------------------------------------------


async def test_a_redis_that_never_answers_bounds_writer_and_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    from schwarm_stream_redis import LogUnavailable
    from schwarm_stream_redis import _reader as reader_module

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # accepts every command, answers none

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.asyncio.Redis.from_url(url)
    monkeypatch.setattr(reader_module, "OP_TIMEOUT", 0.3)
    try:
        async with asyncio.timeout(10):
            stream = pipeline(url, client, write_timeout=0.3).open(pieces(["a"]))
            with pytest.raises(RedisSinkError) as info:
                await stream.collect()
            assert info.value.reason == "timeout"
            with pytest.raises(LogUnavailable):
                await read_all(client, uuid.uuid4().hex)
    finally:
        await client.aclose()
        server.close()


TEXTS = ["", "w1 ", "héllo", "\ud83d", '\n\t"\\', "😀", "x\ud83d\ude00", "\x00\x1f", "[", "chunk\t{}"]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize(("kind", "index", "choice"), [("text", 0, 0), ("reasoning", 0, 0), ("text", 1, 2)])
def test_the_batched_line_encodes_a_chunk_exactly_as_its_own_entry_would(
    text: str, kind: str, index: int, choice: int
) -> None:
    from schwarm_stream_redis._codec import encode_batch, encode_event_line, encode_events

    chunk = Chunk(text, kind, index, choice, 7)
    fields = encode_event(chunk)
    assert encode_event_line(chunk) == f"{fields['type']}\t{fields['data']}\n"  # the fast path is exact
    assert decode_entry(encode_events(7, [encode_event_line(chunk)]))[2] == [decode_entry(fields)[2]]
    assert decode_entry(encode_batch([chunk]))[2] == [decode_entry(fields)[2]]
    packed = encode_batch([chunk])
    assert packed["data"].encode("utf-8")  # always valid UTF-8 (lone surrogates escaped)


def _mixed_events() -> Any:
    """Any run of events: plain chunks (the compact run lines) mixed with every other kind."""
    plain = st.builds(Chunk, ANY_TEXT)
    other = st.one_of(
        st.builds(Chunk, ANY_TEXT, st.sampled_from(["text", "reasoning", "refusal"]), st.integers(0, 3),
                  st.integers(0, 2)),
        st.builds(Chunk, ANY_TEXT, st.just("text"), st.just(False), st.just(0)),  # False == 0, kept False
        st.builds(ToolCallDelta, st.integers(0, 3), st.none() | ANY_TEXT, st.none() | ANY_TEXT, ANY_TEXT),
        st.builds(Usage, st.none() | st.integers(0, 10**6), st.none() | st.integers(0, 10**6)),
        st.builds(Finish, st.none() | st.sampled_from(["stop", "length", "tool_calls"])),
        st.builds(Reset, st.integers(1, 5)),
        st.builds(Heartbeat),
    )
    return st.lists(st.one_of(plain, plain, other), min_size=1, max_size=40)


@given(events=_mixed_events(), first=st.integers(1, 10**9))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_a_compact_batch_decodes_to_exactly_its_events(events: list[Any], first: int) -> None:
    from schwarm_stream_redis._codec import encode_batch

    for seq, event in enumerate(events, first):
        event.seq = seq
    fields = encode_batch(events)
    fields["data"].encode("utf-8")  # redis-py can send it
    seq, kind, decoded = decode_entry(fields)
    assert (seq, kind) == (first + len(events) - 1, "events")
    assert decoded == events
    assert [type(e) for e in decoded] == [type(e) for e in events]
    assert [(type(e.index), type(e.choice)) for e in decoded if isinstance(e, Chunk)] == [
        (type(e.index), type(e.choice)) for e in events if isinstance(e, Chunk)
    ]


@pytest.mark.parametrize(
    "data",
    ['["a","b"]\n', '["a"]\n["b"]\n["c"]\n["d"]\n', '"a"\n', '{"a":1}\n', '["a","b","c"]', "\n"],
)
def test_an_events_entry_with_the_wrong_number_of_events_is_refused(data: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        decode_entry({"seq": "3", "type": "events", "first": "1", "data": data})


@given(events=_mixed_events())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_what_the_batched_writer_queues_decodes_to_exactly_the_delivered_events(events: list[Any]) -> None:
    # the writer queues a plain text chunk as its text alone: its entries still hold exactly the events
    class FakeStream:
        id = uuid.uuid4().hex

    settings_ = RedisSettings(url="redis://127.0.0.1:1", batch_max=7, max_pending=10**6)
    writer = writer_module.LogWriter(
        None,  # type: ignore[arg-type]  # no I/O here: push and encode only
        key="k",
        tenant="acme",
        stream=FakeStream(),  # type: ignore[arg-type]
        settings=settings_,
    )
    for seq, event in enumerate(events, 1):
        event.seq = seq
        writer.push(event)
    queued = list(writer._pending)
    entries = writer._encode(queued)
    decoded = [e for _, fields, _ in entries for e in decode_entry(fields)[2]]  # type: ignore[union-attr]
    assert decoded == events
    assert [(type(e), type(getattr(e, "index", None))) for e in decoded] == [
        (type(e), type(getattr(e, "index", None))) for e in events
    ]
    assert all(len(decode_entry(fields)[2]) <= 7 for _, fields, _ in entries)  # type: ignore[arg-type]


def test_a_hole_in_the_queued_seqs_is_never_written() -> None:
    class FakeStream:
        id = uuid.uuid4().hex

    writer = writer_module.LogWriter(
        None,  # type: ignore[arg-type]
        key="k",
        tenant="acme",
        stream=FakeStream(),  # type: ignore[arg-type]
        settings=RedisSettings(url="redis://127.0.0.1:1"),
    )
    for event in (Chunk("a", seq=1), Chunk("b", seq=2), Finish("stop", seq=4)):  # seq 3 never queued
        writer.push(event)
    with pytest.raises(ValueError, match="seq 4"):
        writer._encode(list(writer._pending))
