"""The ``accumulate`` built-in: the message from the received events, where providers misbehave too.

Sequences no SDK would produce are fed through a minimal :class:`Source` that yields events; the
rest goes through the real OpenAI client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai
import pytest

from schwarm_stream import (
    Chunk,
    Event,
    Extra,
    Finish,
    Message,
    Pipeline,
    ResponseInfo,
    Source,
    ToolCallDelta,
    Usage,
    hookimpl,
)
from schwarm_stream.builtins.accumulate import choices
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing.server import ProviderServer, SSEReply, sse


class Events(Source):
    """Yields the given events (one list per attempt); raises ``fail`` at the end of an attempt."""

    provider = "test"

    def __init__(self, *attempts: Sequence[Event], fail: Sequence[BaseException | None] = ()) -> None:
        self.attempts = list(attempts)
        self.fail = list(fail)

    async def open(self, stream: Any, attempt: Any) -> AsyncIterator[Event]:
        n = attempt.number - 1
        for ev in self.attempts[n]:
            yield ev
        if n < len(self.fail) and self.fail[n] is not None:
            raise self.fail[n]  # type: ignore[misc]


@pytest.fixture
def pipe(core_pipeline: Any) -> Pipeline:
    return core_pipeline()


async def collect(pipe: Pipeline, *events: Event) -> Message:
    async with pipe.open(Events(list(events))) as s:
        return await s.collect()


async def test_usage_reports_are_cumulative_and_fields_not_sent_stay_none(pipe: Pipeline) -> None:
    m = await collect(
        pipe,
        Usage(input_tokens=10, extras={"cache_read_input_tokens": 4}),
        Chunk("x"),
        Usage(output_tokens=3),
        Usage(output_tokens=7, extras={"service_tier": "standard"}),
        Finish("stop"),
    )
    assert m.usage is not None
    assert (m.usage.input_tokens, m.usage.output_tokens, m.usage.total_tokens) == (10, 7, 17)
    assert m.usage.extras == {"cache_read_input_tokens": 4, "service_tier": "standard"}
    m = await collect(pipe, Usage(output_tokens=2), Finish("stop"))
    assert m.usage is not None and m.usage.input_tokens is None and m.usage.total_tokens == 2


async def test_response_info_first_id_wins_and_model_is_updated(pipe: Pipeline) -> None:
    m = await collect(pipe, ResponseInfo("id-1", "m-a"), ResponseInfo("id-2", "m-b"), Finish("stop"))
    assert (m.id, m.model) == ("id-1", "m-b")


async def test_parts_keep_provider_order_and_kinds(pipe: Pipeline) -> None:
    m = await collect(
        pipe,
        Chunk("think ", "reasoning", 0),
        Extra("signature", 0, "sig-"),
        Chunk("more", "reasoning", 0),
        Extra("signature", 0, "nature"),
        Chunk("Hello", "text", 1),
        Chunk(" there", "text", 1),
        ToolCallDelta(2, "t1", "f", '{"a":'),
        ToolCallDelta(2, None, None, "1}"),
        Chunk("after", "text", 3),
        Finish("tool_use"),
    )
    assert (m.reasoning, m.text) == ("think more", "Hello thereafter")
    assert [(b.type, b.index) for b in m.content] == [
        ("reasoning", 0),
        ("text", 1),
        ("tool_call", 2),
        ("text", 3),
    ]
    assert m.content[0].signature == "sig-nature"
    assert m.tool_calls[0].parsed == {"a": 1}


async def test_signature_only_thinking_block_still_gets_a_block(pipe: Pipeline) -> None:
    m = await collect(pipe, Extra("signature", 0, "abc"), Chunk("hi", "text", 1), Finish("end_turn"))
    assert [(b.type, b.signature) for b in m.content] == [("reasoning", "abc"), ("text", None)]
    assert m.to_anthropic()["content"][0] == {"type": "thinking", "thinking": "", "signature": "abc"}


async def test_tool_call_without_id_or_name_gets_defaults(pipe: Pipeline) -> None:
    m = await collect(pipe, ToolCallDelta(4, None, None, "{}"), Finish("tool_calls"))
    [call] = m.tool_calls
    assert (call.id, call.name, call.index, call.parsed) == ("call_4", "", 4, {})


async def test_empty_arguments_parse_as_an_empty_object_never_truncated_json(pipe: Pipeline) -> None:
    m = await collect(
        pipe, ToolCallDelta(0, "c", "f", ""), ToolCallDelta(0, None, None, "  "), Finish("tool_calls")
    )
    assert m.tool_calls[0].parsed == {} and m.tool_calls[0].valid


async def test_tool_call_state_mid_stream_parses_leniently(core_pipeline: Any) -> None:
    seen: list[Any] = []

    class Peek:
        @hookimpl
        def stream_tool_call_delta(self, stream: Any, delta: ToolCallDelta) -> None:
            state = stream.tool_call(delta.index)
            seen.append((state.id, state.name, state.arguments, state.parsed_so_far()))

    events = [
        ToolCallDelta(0, "c1", "search", ""),
        ToolCallDelta(0, None, None, '{"query": "pari'),
        ToolCallDelta(0, None, None, 's", "n": 3}'),
        Finish("tool_calls"),
    ]
    async with core_pipeline(Peek()).open(Events(events)) as s:
        await s.collect()
    assert seen == [
        ("c1", "search", "", {}),
        ("c1", "search", '{"query": "pari', {"query": "pari"}),
        ("c1", "search", '{"query": "paris", "n": 3}', {"query": "paris", "n": 3}),
    ]
    assert s.tool_call(7) is None


async def test_message_mid_stream_is_the_partial(pipe: Pipeline) -> None:
    partials: list[tuple[str, bool]] = []
    async with pipe.open(Events([Chunk("a"), Chunk("b"), Finish("stop")])) as s:
        async for ev in s:
            if isinstance(ev, Chunk):
                partials.append((s.message.text, s.message.complete))
    assert partials == [("a", False), ("ab", False)]
    assert s.message.text == "ab" and s.message.complete


async def test_state_starts_afresh_after_retry_and_goes_on_after_continue(core_pipeline: Any) -> None:
    class Decide:
        def __init__(self, action: str) -> None:
            self.action, self.used = action, False

        @hookimpl
        def stream_error(self) -> str | None:
            if self.used:
                return None
            self.used = True
            return self.action

    class Continuable(Events):
        def continuation(self, partial: Message) -> Source:
            return self

    first = [Chunk("Hel"), Usage(5, 1)]
    second = [Chunk("lo"), Finish("stop"), Usage(None, 2)]
    err = ConnectionResetError("dropped")

    async with core_pipeline(Decide("restart")).open(Events(first, second, fail=[err])) as s:
        m = await s.collect()
    assert m.text == "lo" and m.recovery == "restarted"
    assert m.usage is not None and (m.usage.input_tokens, m.usage.output_tokens) == (None, 2)

    async with core_pipeline(Decide("continue")).open(Continuable(first, second, fail=[err])) as s:
        m = await s.collect()
    assert m.text == "Hello" and m.recovery == "continued"
    assert m.usage is not None and (m.usage.input_tokens, m.usage.output_tokens) == (5, 2)


async def test_accumulation_is_unaffected_by_transformers(core_pipeline: Any) -> None:
    class Redact:
        @hookimpl
        def stream_transform(self, event: Event) -> Any:
            if isinstance(event, Chunk):
                return event.replace(text="*" * len(event.text))
            if isinstance(event, ToolCallDelta):
                return ()
            return None

    async with core_pipeline(Redact()).open(
        Events([Chunk("secret"), ToolCallDelta(0, "c", "f", "{}"), Finish("stop")])
    ) as s:
        delivered = [e async for e in s]
    assert [e.text for e in delivered if isinstance(e, Chunk)] == ["******"]
    assert s.message.text == "secret" and s.message.tool_calls[0].name == "f"


async def test_several_choices(pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    def chunk(i: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": i, "delta": delta, "finish_reason": finish}],
            }
        )

    parts = [
        chunk(0, {"content": "zero "}),
        chunk(1, {"content": "one "}),
        chunk(1, {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}]}),
        chunk(0, {"content": "0"}),
        chunk(0, {}, "stop"),
        chunk(1, {}, "tool_calls"),
    ]
    server.script("openai-chat", SSEReply(parts))  # complete without [DONE]: every choice finished
    async with pipe.open(openai_chat(oai, model="m", messages=[], n=2)) as s:
        m = await s.collect()
    assert (m.text, m.finish_reason, m.tool_calls) == ("zero 0", "stop", [])
    both = choices(s)
    assert [(c.choice, c.text, c.finish_reason, len(c.tool_calls)) for c in both] == [
        (0, "zero 0", "stop", 0),
        (1, "one ", "tool_calls", 1),
    ]
    assert all(c.complete for c in both)


async def test_a_plugin_can_replace_message_building(core_pipeline: Any) -> None:
    class Builder:
        @hookimpl
        def stream_message(self, stream: Any) -> Message:
            return Message(text="replaced", complete=stream.building_complete)

    async with core_pipeline(Builder()).open(Events([Chunk("x"), Finish("stop")])) as s:
        m = await s.collect()
    assert m.text == "replaced" and m.complete
