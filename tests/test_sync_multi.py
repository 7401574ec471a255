"""``merge_sync``, ``race_sync``, ``hedge_sync``, ``compare_sync``: many streams from sync code.

Through the sync OpenAI client against the loopback provider server (a thread of its own). Each form
gives what its async form gives; leaving (or a ``break``) closes every provider connection still open
and ends the background thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import openai
import pytest

import schwarm_stream
from schwarm_stream import Chunk, Pipeline
from schwarm_stream.compose.multi import (
    HedgePolicy,
    NoWinner,
    SyncMerged,
    SyncRaced,
    compare,
    compare_sync,
    hedge_sync,
    merge,
    merge_sync,
    race_sync,
)
from schwarm_stream.sources import from_iterator, openai_chat
from schwarm_stream.testing.server import SSEReply, Stall, ThreadedProviderServer, openai_chat_events
from tests.support.sync_checks import no_new_threads

PIPELINE = Pipeline(config={"plugins": {"autoload": False, "disable": ["retry", "recovery", "timeouts"]}})


def chat(server: ThreadedProviderServer, model: str, sync: bool = True) -> Any:
    cls = openai.OpenAI if sync else openai.AsyncOpenAI
    client: Any = cls(api_key="sk-test", base_url=server.openai_base_url)
    return openai_chat(client, model=model, messages=[{"role": "user", "content": "hi"}])


def by_model(**replies: Any) -> Any:
    """A responder answering each request by its model name (a reply object may serve many requests)."""
    return lambda request: replies[request.json["model"]]


def texts(tagged: list[Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in tagged:
        if isinstance(t.event, Chunk):
            out[t.source] = out.get(t.source, "") + t.event.text
    return out


def test_merge_sync_gives_every_event_once_and_each_message_like_merge() -> None:
    replies = by_model(
        a=SSEReply(openai_chat_events(["a1", "a2", "a3"], model="a")),
        b=SSEReply(openai_chat_events(["b1", "b2"], model="b")),
    )
    with ThreadedProviderServer(replies) as server:

        async def reference() -> list[Any]:
            async with merge(chat(server, "a", False), chat(server, "b", False), names=["a", "b"]) as m:
                return [t async for t in m]

        expected = asyncio.run(reference())
        with no_new_threads():
            with merge_sync(chat(server, "a"), chat(server, "b"), names=["a", "b"], pipeline=PIPELINE) as m:
                assert isinstance(m, SyncMerged) and set(m.streams) == {"a", "b"}  # started on entry
                tagged = list(m)
    assert texts(tagged) == texts(expected) == {"a": "a1a2a3", "b": "b1b2"}
    assert {k: v.text for k, v in m.messages.items()} == {"a": "a1a2a3", "b": "b1b2"}
    assert m.errors == {}
    for name in ("a", "b"):  # order within each source kept, as in the async merge
        assert [t.event.seq for t in tagged if t.source == name] == [
            t.event.seq for t in expected if t.source == name
        ]


def test_merge_sync_keeps_one_failure_apart_and_fail_fast_raises_it() -> None:
    replies = by_model(
        good=SSEReply(openai_chat_events(["ok"], model="good")),
        bad=SSEReply(openai_chat_events(["cut"], finish_reason=None, usage=None, done=False), end="truncate"),
    )
    with ThreadedProviderServer(replies) as server, no_new_threads():
        m = merge_sync(chat(server, "good"), chat(server, "bad"), names=["good", "bad"], pipeline=PIPELINE)
        tagged = list(m)  # no `with`: entered on the first event, closed at the end
        assert texts(tagged) == {"good": "ok", "bad": "cut"}
        assert isinstance(m.errors["bad"], schwarm_stream.StreamError)
        assert m.messages["bad"].text == "cut" and not m.messages["bad"].complete
        assert m.messages["good"].complete

        with pytest.raises(schwarm_stream.StreamError) as info:
            with merge_sync(chat(server, "bad"), names=["bad"], fail_fast=True, pipeline=PIPELINE) as m:
                for _ in m:
                    pass
        assert info.value.partial is not None and info.value.partial.text == "cut"


def test_break_out_of_merge_sync_closes_every_connection_and_the_thread() -> None:
    gate = threading.Event()
    replies = by_model(
        a=SSEReply([*openai_chat_events(["a"], model="a")[:2], Stall(gate)], end="stall"),
        b=SSEReply([*openai_chat_events(["b"], model="b")[:2], Stall(gate)], end="stall"),
    )
    with ThreadedProviderServer(replies) as server:
        try:
            with no_new_threads():
                m = merge_sync(chat(server, "a"), chat(server, "b"), names=["a", "b"], pipeline=PIPELINE)
                streaming: set[str] = set()
                for t in m:  # no `with`: the break ends the merge
                    if isinstance(t.event, Chunk):
                        streaming.add(t.source)
                    if streaming == {"a", "b"}:  # both connections open, both stalled
                        break
                server.wait_connections(0)
            assert {s.outcome for s in m.streams.values()} == {"cancelled"}
        finally:
            gate.set()


def test_race_sync_keeps_the_first_and_closes_the_loser() -> None:
    gate = threading.Event()
    replies = by_model(
        slow=SSEReply([Stall(gate), *openai_chat_events(["slow"])], end="stall"),
        fast=SSEReply(openai_chat_events(["fast", "!"])),
    )
    with ThreadedProviderServer(replies) as server:
        try:
            with no_new_threads():
                with race_sync(
                    chat(server, "slow"), chat(server, "fast"), names=["slow", "fast"], pipeline=PIPELINE
                ) as r:
                    assert isinstance(r, SyncRaced)
                    got = [e.text for e in r if isinstance(e, Chunk)]
                    server.wait_connections(1)  # the loser's stalled connection is closed at once
            assert r.winner == "fast" and got == ["fast", "!"] and r.started == ["slow", "fast"]
            assert r.message is not None and r.message.text == "fast!" and r.message.complete
            assert r.time_to_first_content is not None
        finally:
            gate.set()


def test_race_sync_raises_no_winner_when_every_contender_fails() -> None:
    def broken() -> Any:
        raise ValueError("boom: not retryable")

    with no_new_threads(), pytest.raises(NoWinner) as info:
        for _ in race_sync(from_iterator(broken), from_iterator(broken), names=["x", "y"], pipeline=PIPELINE):
            pass
    assert set(info.value.errors) == {"x", "y"}


def test_hedge_sync_starts_the_backup_when_the_primary_is_slow_and_shares_its_policy() -> None:
    gate = threading.Event()
    replies = by_model(
        p=SSEReply([Stall(gate), *openai_chat_events(["late"])], end="stall"),
        b=SSEReply(openai_chat_events(["backup"])),
    )
    policy = HedgePolicy(delay=0.05, max_extra_share=1.0)
    with ThreadedProviderServer(replies) as server:
        try:
            with no_new_threads():
                with hedge_sync(chat(server, "p"), chat(server, "b"), policy=policy, pipeline=PIPELINE) as h:
                    got = "".join(e.text for e in h if isinstance(e, Chunk))
        finally:
            gate.set()
    assert got == "backup" and h.winner == "backup" and h.started == ["primary", "backup"]
    assert (policy.requests, policy.hedged, policy.pending) == (1, 1, 0)


def test_hedge_policy_counts_stay_exact_across_threads() -> None:
    """Flask request threads share one policy: concurrent hedge_sync calls keep its budget exact."""
    policy = HedgePolicy(delay=30.0, max_extra_share=1.0)

    def one() -> None:
        for _ in hedge_sync(from_iterator(["p"]), from_iterator(["b"]), policy=policy, pipeline=PIPELINE):
            pass

    threads = [threading.Thread(target=one) for _ in range(8)]
    with no_new_threads():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # every backup was scheduled and then skipped (the primary answered first): nothing left reserved
    assert (policy.requests, policy.hedged, policy.pending) == (8, 0, 0)


def test_compare_sync_reports_what_compare_reports() -> None:
    replies = by_model(
        a=SSEReply(openai_chat_events(["Hello\n", "world"], model="a")),
        b=SSEReply(openai_chat_events(["Hello\n", "there"], model="b")),
    )
    with ThreadedProviderServer(replies) as server:
        expected = asyncio.run(
            compare(chat(server, "a", False), chat(server, "b", False), names=["a", "b"], pipeline=PIPELINE)
        )
        with no_new_threads():
            report = compare_sync(chat(server, "a"), chat(server, "b"), names=["a", "b"], pipeline=PIPELINE)
    assert (
        [r.text for r in report.results]
        == [r.text for r in expected.results]
        == ["Hello\nworld", "Hello\nthere"]
    )
    assert report.diffs == expected.diffs and "+there" in report.diffs["b"]
    assert all(r.complete for r in report.results)
