"""Smoothing, the partial-JSON view of tool-call arguments (linear cost), and the validator hook point."""

from __future__ import annotations

import json
import types
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import schwarm_stream
from schwarm_stream import Chunk, InvalidToolArguments, ToolCallDelta
from schwarm_stream import transformers as tr
from schwarm_stream.sources import from_iterator, openai_chat
from schwarm_stream.testing.server import ProviderServer, SSEReply, openai_chat_events
from schwarm_stream.transformers import Smoother, ToolCallValidator, arguments_so_far, validated_arguments


async def deliver(plugins: list[Any], parts: Any) -> tuple[list[Any], Any]:
    async with schwarm_stream.Pipeline(plugins).open(from_iterator(parts)) as stream:
        events = [ev async for ev in stream]
    return events, stream


def texts(events: list[Any]) -> list[str]:
    return [e.text for e in events if type(e) is Chunk]


PARTS = ["Hel", "lo wo", "rld. How", " are you", "?\nFine", ". ", "Ok"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("word", ["Hello ", "world. ", "How are ", "you?\n", "Fine. ", "Ok"]),
        ("line", ["Hello world. How are you?\n", "Fine. Ok"]),
        ("sentence", ["Hello world. ", "How are you?\n", "Fine. ", "Ok"]),
    ],
)
async def test_smoothing_releases_at_boundaries(mode: Any, expected: list[str]) -> None:
    events, stream = await deliver([Smoother(mode, max_delay=None)], PARTS)
    assert texts(events) == expected
    assert stream.message.text == "".join(PARTS)


async def test_sentence_boundary_split_across_chunks() -> None:
    events, _ = await deliver([Smoother("sentence", max_delay=None)], ["One.", " Two", ".", " Three"])
    assert texts(events) == ["One. ", "Two. ", "Three"]


@settings(max_examples=50, deadline=None)
@given(
    parts=st.lists(st.text(alphabet="ab .!?\n", max_size=8), max_size=20),
    mode=st.sampled_from(["word", "line", "sentence"]),
)
async def test_smoothing_never_changes_the_text(parts: list[str], mode: Any) -> None:
    events, stream = await deliver([Smoother(mode, max_delay=None, max_chars=10_000)], parts)
    out = texts(events)
    assert "".join(out) == "".join(parts) == stream.message.text
    boundary = {"word": " \n", "line": "\n", "sentence": "\n "}[mode]
    for t in out[:-1]:  # every release but the final flush ends at a boundary
        assert t and t[-1] in boundary


async def test_max_chars_releases_without_a_boundary() -> None:
    events, _ = await deliver([Smoother("line", max_delay=None, max_chars=5)], ["abc", "def", "gh", "i\nj"])
    assert texts(events) == ["abcdef", "ghi\n", "j"]


async def test_max_delay_checked_on_arrival(monkeypatch: pytest.MonkeyPatch) -> None:
    now = {"t": 0.0}
    monkeypatch.setattr(tr, "time", types.SimpleNamespace(monotonic=lambda: now["t"]))

    arrival = {"aaa": 0.0, "bbb": 0.2, "ccc": 0.4, "ddd": 0.6}

    class Arrivals:
        # the clock moves as the stream receives each part (timed reads may read a few ahead)
        @schwarm_stream.hookimpl
        def stream_receive(self, stream: Any, event: Any) -> None:
            if type(event) is Chunk:
                now["t"] = arrival[event.text]

    events, _ = await deliver([Arrivals(), Smoother("word", max_delay=0.3)], ["aaa", "bbb", "ccc", "ddd"])
    assert texts(events) == ["aaabbbccc", "ddd"]


async def test_non_text_events_flush_held_text() -> None:
    events, _ = await deliver([Smoother("line", max_delay=None)], ["no newline here"])
    assert [type(e).__name__ for e in events] == ["Chunk", "Finish"]


def test_bad_smoother_settings() -> None:
    with pytest.raises(ValueError, match="mode"):
        Smoother("paragraph")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_chars"):
        Smoother(max_chars=0)


# -- arguments parsed so far ----------------------------------------------------------------------

ARGS = json.dumps({"city": "Paris", "days": [1, 2, 3], "note": "x" * 1500})


async def _tool_stream(server: ProviderServer, plugins: list[Any]) -> Any:
    frags = [ARGS[i : i + 1] for i in range(len(ARGS))]
    server.script(
        "openai-chat",
        SSEReply(openai_chat_events([], tool_calls=[{"name": "f", "arguments": ARGS, "chunks": frags}])),
    )
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
    return schwarm_stream.Pipeline(plugins).open(
        openai_chat(client, model="m", messages=[{"role": "user", "content": "x"}])
    )


async def test_arguments_so_far_is_linear_and_converges(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed_bytes = {"n": 0, "calls": 0}
    real = tr.jiter.from_json

    def counting(data: bytes, **kw: Any) -> Any:
        parsed_bytes["n"] += len(data)
        parsed_bytes["calls"] += 1
        return real(data, **kw)

    monkeypatch.setattr(tr, "jiter", types.SimpleNamespace(from_json=counting))
    views: list[Any] = []
    async with ProviderServer() as server:
        async with await _tool_stream(server, []) as stream:
            async for ev in stream:
                if type(ev) is ToolCallDelta:
                    views.append(arguments_so_far(stream, ev.index))  # after every single fragment
            streamed = dict(parsed_bytes)
            final = arguments_so_far(stream, 0, exact=True)
    n = len(ARGS)
    assert len(views) > n  # one call per fragment (plus the header fragment)
    # Geometric re-parsing: total bytes parsed <= growth/(growth-1) * n = 3n, not ~n^2/2 (1.2M here).
    assert streamed["n"] <= 3 * n
    assert streamed["calls"] < 30
    assert parsed_bytes["n"] == streamed["n"] + n  # exact=True parses all of it once more
    assert final == json.loads(ARGS) == stream.message.tool_calls[0].parsed
    # Partial views are prefixes of the final object: the city is known early, the note grows.
    partial = [v for v in views if isinstance(v, dict) and "note" in v]
    assert partial and all(
        v["city"] == "Paris" and json.loads(ARGS)["note"].startswith(v["note"]) for v in partial
    )


async def test_arguments_so_far_before_anything_and_for_unknown_calls() -> None:
    _, stream = await deliver([], ["text only"])
    assert arguments_so_far(stream, 0) is None
    with pytest.raises(ValueError, match="growth"):
        arguments_so_far(stream, 0, growth=1.0)


# -- validators -----------------------------------------------------------------------------------


class Weather(BaseModel):
    city: str
    days: list[int]
    note: str


class Strict(BaseModel):
    city: int


async def test_validator_accepts_and_keeps_the_result() -> None:
    async with ProviderServer() as server:
        async with await _tool_stream(server, [ToolCallValidator({"f": Weather})]) as stream:
            message = await stream.collect()
    (result,) = validated_arguments(stream).values()
    assert isinstance(result, Weather) and result.city == "Paris"
    assert message.complete


async def test_validator_rejection_fails_the_attempt_with_a_typed_error() -> None:
    async with ProviderServer() as server:
        with pytest.raises(InvalidToolArguments, match=r"\(f\) was rejected by its validator") as info:
            async with await _tool_stream(server, [ToolCallValidator({"f": Strict})]) as stream:
                await stream.collect()
    assert info.value.partial is not None and info.value.partial.tool_calls[0].name == "f"


async def test_callable_validator_and_unknown_tools() -> None:
    seen: list[str] = []

    def check(call: Any) -> str:
        seen.append(call.name)
        return "ok"

    async with ProviderServer() as server:
        async with await _tool_stream(server, [ToolCallValidator(check)]) as stream:
            await stream.collect()
        assert seen == ["f"] and validated_arguments(stream) == {0: "ok"}
        with pytest.raises(InvalidToolArguments, match="no validator"):
            async with await _tool_stream(server, [ToolCallValidator({}, require_known=True)]) as stream:
                await stream.collect()
