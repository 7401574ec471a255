"""The Chat Completions single-event fast path gives exactly the events of the general path.

``chat_events`` yields a bare ASCII text delta (one choice already started, nothing else in the
payload that the normalizer reads) as its one ``Chunk`` without calling ``ChatNormalizer.feed`` or
the surrogate repair. Every recorded Chat Completions body of the corpus, and the same bodies with
their payloads mutated at random (other objects, usage, finish reasons, indexes, non-ASCII or
lone-surrogate text, extra delta keys, several choices, non-object data, errors, cuts), must give
the same events and the same typed error, with the fast path on and off.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from schwarm_stream.sources import _openai_chat
from schwarm_stream.sources._sse import SSE, SSEReader
from tests.support.corpus import load_corpus

CHAT = [s for s in load_corpus() if s.protocol == "openai-chat"]


def sse_events(body: bytes) -> list[SSE]:
    reader = SSEReader(unterminated=True)
    return [*reader.feed(body), *reader.end()]


async def _iterate(events: list[SSE]) -> AsyncIterator[SSE]:
    for ev in events:
        yield ev


class CountingNormalizer(_openai_chat.ChatNormalizer):
    """The normalizer, counting the payloads the general path fed it."""

    fed = 0

    def feed(self, d: Any) -> list[Any]:
        CountingNormalizer.fed += 1
        return super().feed(d)


def run(events: list[SSE]) -> tuple[list[Any], tuple[str, str] | None]:
    async def go() -> tuple[list[Any], tuple[str, str] | None]:
        out: list[Any] = []
        try:
            async for ev in _openai_chat.chat_events(_iterate(events)):
                out.append(ev)
        except Exception as exc:  # the typed error (or any other) is part of what must agree
            return out, (type(exc).__name__, str(exc))
        return out, None

    return asyncio.run(go())


def both(events: list[SSE], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, int, int]:
    """(fast result, general result, payloads fed to the normalizer with the fast path on / off)."""
    monkeypatch.setattr(_openai_chat, "ChatNormalizer", CountingNormalizer)
    CountingNormalizer.fed = 0
    fast = run(events)
    fed_fast = CountingNormalizer.fed
    with monkeypatch.context() as m:
        m.setattr(_openai_chat, "_CHUNK_OBJECTS", ())  # no payload qualifies: the general path only
        CountingNormalizer.fed = 0
        general = run(events)
        fed_general = CountingNormalizer.fed
    return fast, general, fed_fast, fed_general


def test_corpus_has_chat_bodies() -> None:
    assert len(CHAT) >= 20


@pytest.mark.parametrize("stream", CHAT, ids=[s.id for s in CHAT])
def test_recorded_bodies_same_events(stream: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, general, _, _ = both(sse_events(stream.body), monkeypatch)
    assert fast == general


def test_fast_path_is_taken_on_recorded_text_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = 0
    for stream in CHAT:
        _, _, fed_fast, fed_general = both(sse_events(stream.body), monkeypatch)
        assert fed_fast <= fed_general
        taken += fed_general - fed_fast
    assert taken > 100  # the test above compares something: most text deltas skip the normalizer


def _mutations() -> list[Callable[[dict[str, Any]], Any]]:
    def choice(d: dict[str, Any]) -> dict[str, Any]:
        chs = d.get("choices") or [{}]
        return chs[0] if isinstance(chs[0], dict) else {}

    def delta(d: dict[str, Any]) -> dict[str, Any]:
        ch = choice(d)
        if not isinstance(ch.get("delta"), dict):
            ch["delta"] = {}
        dl: dict[str, Any] = ch["delta"]
        return dl

    return [
        lambda d: d.__setitem__("object", "chat.completion"),
        lambda d: d.__setitem__("object", ""),
        lambda d: d.__setitem__("object", 0),
        lambda d: d.__setitem__("usage", {"prompt_tokens": 3, "completion_tokens": 4, "x": 1}),
        lambda d: d.__setitem__("usage", None),
        lambda d: d.__setitem__("error", {"message": "overloaded", "type": "server_error"}),
        lambda d: choice(d).__setitem__("finish_reason", "stop"),
        lambda d: choice(d).__setitem__("finish_reason", "length"),
        lambda d: choice(d).__setitem__("index", 1),
        lambda d: choice(d).__setitem__("index", True),
        lambda d: choice(d).__setitem__("index", None),
        lambda d: delta(d).__setitem__("content", "héllo"),
        lambda d: delta(d).__setitem__("content", "\ud83d"),
        lambda d: delta(d).__setitem__("content", ""),
        lambda d: delta(d).__setitem__("content", None),
        lambda d: delta(d).__setitem__("content", [{"type": "text", "text": "parts"}]),
        lambda d: delta(d).__setitem__("role", "assistant"),
        lambda d: delta(d).__setitem__("reasoning_content", "hmm"),
        lambda d: choice(d).__setitem__("delta", "text"),
        lambda d: d.__setitem__("choices", [*d.get("choices", []), {"index": 1, "delta": {"content": "b"}}]),
        lambda d: d.__setitem__("choices", []),
        lambda d: d.__setitem__("choices", ["x"]),
        lambda d: d.__setitem__("choices", {"0": 1}),
        lambda d: d.pop("id", None),
    ]


@pytest.mark.parametrize("seed", range(40))
def test_mutated_bodies_same_events(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(seed)
    mutations = _mutations()
    stream = CHAT[seed % len(CHAT)]
    events: list[SSE] = []
    for ev in sse_events(stream.body):
        data = ev.data
        if rnd.random() < 0.15 and data != "[DONE]":
            try:
                d = json.loads(data)
            except ValueError:
                d = None
            if isinstance(d, dict):
                rnd.choice(mutations)(d)
                data = json.dumps(d)
            else:
                data = rnd.choice(["[1]", "{", '"text"'])
            if rnd.random() < 0.05:
                data = rnd.choice(["[1]", "{bad", "null", "3"])
        events.append(SSE(ev.event, data, ev.offset, ev.unterminated))
    if rnd.random() < 0.3:  # a cut: the stream ends early
        events = events[: rnd.randrange(1, len(events) + 1)]
    fast, general, _, _ = both(events, monkeypatch)
    assert fast == general


def test_text_of_an_unstarted_choice_takes_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Choice 1's first payload is a bare text delta: it must start choice 1, so a stream whose
    # choice 0 finished but choice 1 did not is still truncated without [DONE].
    head = '{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}'
    second = '{"id":"c1","object":"chat.completion.chunk","choices":[{"index":1,"delta":{"content":"b"}}]}'
    finish = '{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
    events = [SSE("message", data, i) for i, data in enumerate([head, head, second, second, finish])]
    fast, general, _, _ = both(events, monkeypatch)
    assert fast == general
    assert fast[1] is not None and fast[1][0] == "StreamIncomplete"
