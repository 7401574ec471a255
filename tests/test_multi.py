"""merge, race, hedge, priorities, rate limiting and compare — over real SDK clients where a provider is involved."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

import schwarm_stream
from schwarm_stream import Chunk, Pipeline, hookimpl
from schwarm_stream.compose.multi import HedgePolicy, LatencyTracker, NoWinner, compare, hedge, merge, race
from schwarm_stream.compose.ratelimit import RateLimit, TokenBucket
from schwarm_stream.sources import from_iterator, openai_chat
from schwarm_stream.testing.server import ProviderServer, Sleep, SSEReply, Stall, openai_chat_events

# One attempt per stream and no entry-point plugins: these tests are about scheduling.
PIPELINE = Pipeline(config={"plugins": {"autoload": False, "disable": ["retry", "recovery", "timeouts"]}})


def chat(server: ProviderServer, model: str) -> Any:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
    return openai_chat(client, model=model, messages=[{"role": "user", "content": "hi"}])


def by_model(**replies: Any) -> Any:
    """A responder answering each request by its model name (requests of concurrent streams race)."""
    return lambda request: replies[request.json["model"]]


def words(*items: str, first: float = 0.0) -> Any:
    async def gen() -> Any:
        if first:
            await asyncio.sleep(first)
        for w in items:
            yield w

    return from_iterator(lambda: gen())


async def test_merge_keeps_every_event_exactly_once_and_each_message() -> None:
    replies = by_model(
        a=SSEReply(openai_chat_events(["a1", "a2", "a3", "a4"], model="a")),
        b=SSEReply(openai_chat_events(["b1", "b2"], model="b")),
    )
    async with ProviderServer(replies) as server:
        async with merge(chat(server, "a"), chat(server, "b"), names=["a", "b"], pipeline=PIPELINE) as m:
            tagged = [t async for t in m]
    per_source = {
        name: "".join(t.event.text for t in tagged if t.source == name and isinstance(t.event, Chunk))
        for name in ("a", "b")
    }
    assert per_source == {"a": "a1a2a3a4", "b": "b1b2"}
    assert {k: v.text for k, v in m.messages.items()} == per_source
    assert all(v.complete for v in m.messages.values())
    for name in ("a", "b"):  # delivery order within each source is preserved, seqs contiguous
        seqs = [t.event.seq for t in tagged if t.source == name]
        assert seqs == list(range(1, len(seqs) + 1))


async def test_merge_one_failure_does_not_end_the_others() -> None:
    replies = by_model(
        good=SSEReply(openai_chat_events(["ok"], model="good")),
        bad=SSEReply(openai_chat_events(["cut"], finish_reason=None, usage=None, done=False), end="truncate"),
    )
    async with ProviderServer(replies) as server:
        async with merge(
            chat(server, "good"), chat(server, "bad"), names=["good", "bad"], pipeline=PIPELINE
        ) as m:
            tagged = [t async for t in m]
    assert m.messages["good"].text == "ok" and m.messages["good"].complete
    assert isinstance(m.errors["bad"], schwarm_stream.StreamError)
    assert m.messages["bad"].text == "cut" and not m.messages["bad"].complete
    assert [t.event.text for t in tagged if t.source == "good" and isinstance(t.event, Chunk)] == ["ok"]


async def test_merge_fail_fast_raises_and_cancels_the_rest() -> None:
    gate = asyncio.Event()
    replies = by_model(
        bad=SSEReply(
            [*openai_chat_events(["x"], finish_reason=None, usage=None, done=False)], end="truncate"
        ),
        slow=SSEReply([openai_chat_events(["slow"])[0], Stall(gate)], end="stall"),
    )
    async with ProviderServer(replies) as server:
        with pytest.raises(schwarm_stream.TransportError):
            async with merge(
                chat(server, "bad"),
                chat(server, "slow"),
                names=["bad", "slow"],
                fail_fast=True,
                pipeline=PIPELINE,
            ) as m:
                async for _ in m:
                    pass
        await server.wait_connections(0)
        assert server.connections_open() == 0


async def test_merge_serves_higher_priority_first_and_is_fair_among_equals() -> None:
    m = merge(
        from_iterator(["l1", "l2", "l3"]),
        from_iterator(["h1", "h2", "h3"]),
        from_iterator(["e1", "e2", "e3"]),
        names=["low", "high", "equal"],
        priorities={"high": 10},
        pipeline=PIPELINE,
    )
    async with m:
        for _ in range(1000):  # let every producer fill its lane (bounded, no wall clock)
            if all(s.outcome for s in m.streams.values()):
                break
            await asyncio.sleep(0)
        order = [t.source async for t in m]
    assert order[:4] == ["high"] * 4  # three chunks + finish, all before anyone else
    rest = order[4:]
    assert rest[:2] in (["low", "equal"], ["equal", "low"])  # round robin between equal priorities
    assert rest.count("low") == rest.count("equal") == 4


async def test_race_keeps_the_first_to_deliver_content_and_closes_the_losers() -> None:
    gate = asyncio.Event()
    replies = by_model(
        slow=SSEReply([Stall(gate), *openai_chat_events(["slow"])], end="stall"),
        fast=SSEReply(openai_chat_events(["fast", "!"])),
    )
    async with ProviderServer(replies) as server:
        async with race(
            chat(server, "slow"), chat(server, "fast"), names=["slow", "fast"], pipeline=PIPELINE
        ) as r:
            texts = [e.text async for e in r if isinstance(e, Chunk)]
            # The loser's stalled connection is closed at once; only the winner's
            # finished keep-alive connection may stay in the client's pool.
            await server.wait_connections(1)
            assert server.connections_open() <= 1
        assert r.winner == "fast" and texts == ["fast", "!"]
        assert r.message is not None and r.message.text == "fast!" and r.message.complete
        assert len(server.requests) == 2


async def test_race_win_on_complete_and_no_winner() -> None:
    async with race(
        words("a", "b", first=0.01), words("c"), names=["x", "y"], win_on="complete", pipeline=PIPELINE
    ) as r:
        assert "".join([e.text async for e in r if isinstance(e, Chunk)]) in ("ab", "c")
    assert r.winner in ("x", "y")

    def broken() -> Any:
        raise ValueError("boom: not retryable")

    async with race(from_iterator(broken), from_iterator(broken), names=["a", "b"], pipeline=PIPELINE) as r2:
        with pytest.raises(NoWinner) as info:
            async for _ in r2:
                pass
    assert set(info.value.errors) == {"a", "b"}


async def test_hedge_starts_the_backup_only_when_due() -> None:
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(openai_chat_events(["quick"])))
        async with hedge(chat(server, "p"), chat(server, "b"), delay=60.0, pipeline=PIPELINE) as h:
            assert "".join([e.text async for e in h if isinstance(e, Chunk)]) == "quick"
        assert h.winner == "primary" and h.started == ["primary"]
        assert len(server.requests) == 1  # the backup never went out

    gate = asyncio.Event()
    replies = by_model(
        p=SSEReply([Stall(gate), *openai_chat_events(["late"])], end="stall"),
        b=SSEReply(openai_chat_events(["backup"])),
    )
    async with ProviderServer(replies) as server:
        async with hedge(chat(server, "p"), chat(server, "b"), delay=0.05, pipeline=PIPELINE) as h:
            assert "".join([e.text async for e in h if isinstance(e, Chunk)]) == "backup"
            await server.wait_connections(1)  # the stalled primary was closed
        assert h.winner == "backup" and h.started == ["primary", "backup"]
        assert len(server.requests) == 2


async def test_hedge_starts_the_backup_at_once_when_the_primary_fails() -> None:
    def broken() -> Any:
        raise ValueError("boom: not retryable")

    async with hedge(from_iterator(broken), words("rescued"), delay=30.0, pipeline=PIPELINE) as h:
        assert [e.text async for e in h if isinstance(e, Chunk)] == ["rescued"]
    assert h.winner == "backup"


def test_hedge_policy_caps_the_share_of_extra_requests() -> None:
    policy = HedgePolicy(delay=0.0, max_extra_share=0.25)
    allowed = 0
    for _ in range(100):  # 100 concurrent requests: none of the backups has started yet
        if policy.due_after() is not None:
            allowed += 1
    assert allowed == 25 and policy.pending == 25
    for _ in range(20):
        policy.started()
    for _ in range(5):
        policy.skipped()
    assert (policy.hedged, policy.pending) == (20, 0)
    assert policy.due_after() is not None  # skipped reservations were released


def test_latency_tracker_percentiles() -> None:
    t = LatencyTracker(window=100, initial=9.0)
    assert t.percentile(95) == 9.0
    for i in range(1, 201):
        t.observe(i / 100)
    assert len(t) == 100  # window keeps the last 100: 1.01 .. 2.00
    assert t.percentile(0) == pytest.approx(1.01) and t.percentile(100) == pytest.approx(2.0)
    assert t.percentile(50) == pytest.approx(1.5, abs=0.011)


async def test_rate_limit_shared_per_provider_serves_higher_priority_first() -> None:
    order: list[str] = []

    class Record:
        @hookimpl
        def stream_chunk(self, stream: Any, chunk: Chunk) -> None:
            order.append(stream.metadata["name"])

    pipeline = Pipeline([RateLimit(chunks_per_second=200, burst=1, scope="provider"), Record()])

    async def run(name: str, priority: int) -> None:
        src = from_iterator([f"{name}{i}" for i in range(8)])
        async with pipeline.open(src, metadata={"name": name, "priority": priority}) as s:
            await s.collect()

    await asyncio.gather(run("low", 0), run("high", 5))
    assert sorted(order) == ["high"] * 8 + ["low"] * 8
    last_high = max(i for i, n in enumerate(order) if n == "high")
    assert order[: last_high + 1].count("low") <= 2  # at most the burst token and one in flight


async def test_token_bucket_rejects_bad_rate_and_rate_limit_needs_one_unit() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        TokenBucket(0)
    with pytest.raises(ValueError, match="exactly one"):
        RateLimit()


async def test_compare_reports_numbers_and_a_text_diff() -> None:
    replies = by_model(
        a=SSEReply([Sleep(0.01), *openai_chat_events(["Hello\n", "world"], model="a")]),
        b=SSEReply(openai_chat_events(["Hello\n", "there"], model="b")),
    )
    async with ProviderServer(replies) as server:
        report = await compare(chat(server, "a"), chat(server, "b"), names=["a", "b"], pipeline=PIPELINE)
    a, b = report.results
    assert (a.text, b.text) == ("Hello\nworld", "Hello\nthere")
    assert a.chunks == 2 and b.complete and a.output_tokens is not None
    assert a.time_to_first_chunk is not None and a.duration >= a.time_to_first_chunk
    assert "-world" in report.diffs["b"] and "+there" in report.diffs["b"]
    rendered = report.render()
    assert "text diff: a vs b" in rendered and rendered.splitlines()[0].startswith("source")
    assert report.to_dict()["results"][1]["name"] == "b"
