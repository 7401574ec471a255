"""The Anthropic Messages source, through the real ``anthropic`` client over a loopback socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from schwarm_stream import Chunk, Extra, Pipeline, ProviderError, ToolCallDelta
from schwarm_stream.sources import anthropic_messages
from schwarm_stream.testing.server import (
    ProviderServer,
    SSEReply,
    anthropic_error_event,
    anthropic_events,
    sse,
)

HI: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture
def pipe(core_pipeline: Callable[..., Pipeline]) -> Pipeline:
    return core_pipeline()


def ev(data: dict[str, Any]) -> bytes:
    return sse(data, event=data["type"])


def start(usage: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 5, "output_tokens": 1},
    }
    return ev({"type": "message_start", "message": message})


def block(index: int, content_block: dict[str, Any], *deltas: dict[str, Any]) -> list[bytes]:
    out = [ev({"type": "content_block_start", "index": index, "content_block": content_block})]
    out += [ev({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
    out.append(ev({"type": "content_block_stop", "index": index}))
    return out


def stop(reason: str = "end_turn", output_tokens: int = 7) -> list[bytes]:
    return [
        ev(
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            }
        ),
        ev({"type": "message_stop"}),
    ]


async def run(pipe: Pipeline, server: ProviderServer, ant: anthropic.AsyncAnthropic, parts: list[Any]) -> Any:
    server.script("anthropic-messages", SSEReply(parts))
    async with pipe.open(anthropic_messages(ant, model="claude-x", max_tokens=50, messages=HI)) as s:
        events = [e async for e in s]
    return s, events


async def test_text_usage_and_stop_reason(
    pipe: Pipeline, server: ProviderServer, ant: anthropic.AsyncAnthropic
) -> None:
    events = anthropic_events(
        ["Sun", "ny"], usage={"input_tokens": 12, "output_tokens": 42}, model="claude-x"
    )
    s, delivered = await run(pipe, server, ant, events)
    m = s.message
    assert (m.text, m.finish_reason, m.id, m.model, m.complete) == (
        "Sunny",
        "end_turn",
        "msg_test",
        "claude-x",
        True,
    )
    assert m.usage is not None and (m.usage.input_tokens, m.usage.output_tokens) == (12, 42)
    assert m.usage.extras == {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    assert [e.text for e in delivered if isinstance(e, Chunk)] == ["Sun", "ny"]
    req = server.requests[0].json
    assert req["stream"] is True and req["max_tokens"] == 50


async def test_tool_use_with_input_json_deltas(
    pipe: Pipeline, server: ProviderServer, ant: anthropic.AsyncAnthropic
) -> None:
    tools = [
        {
            "id": "toolu_a",
            "name": "get_weather",
            "input": {"city": "Paris"},
            "chunks": ['{"ci', 'ty": "Pa', 'ris"}'],
        },
        {"id": "toolu_b", "name": "noop", "input": {}, "chunks": []},
    ]
    s, delivered = await run(pipe, server, ant, anthropic_events(["Let me check."], tool_uses=tools))
    calls = s.message.tool_calls
    assert [(c.id, c.name, c.arguments, c.parsed) for c in calls] == [
        ("toolu_a", "get_weather", '{"city": "Paris"}', {"city": "Paris"}),
        ("toolu_b", "noop", "", {}),
    ]
    assert s.message.finish_reason == "tool_use" and s.message.text == "Let me check."
    deltas = [d for d in delivered if isinstance(d, ToolCallDelta)]
    assert deltas[0].id == "toolu_a" and deltas[0].name == "get_weather"
    assert [b.type for b in s.message.content] == ["text", "tool_call", "tool_call"]


async def test_thinking_and_signature(
    pipe: Pipeline, server: ProviderServer, ant: anthropic.AsyncAnthropic
) -> None:
    body = anthropic_events(["Answer."], thinking_chunks=["Hmm, ", "let me see."], signature="U0lH")
    s, delivered = await run(pipe, server, ant, body)
    m = s.message
    assert m.reasoning == "Hmm, let me see." and m.text == "Answer."
    assert [e.kind for e in delivered if isinstance(e, Chunk)] == ["reasoning", "reasoning", "text"]
    thinking = m.content[0]
    assert (thinking.type, thinking.text, thinking.signature) == ("reasoning", "Hmm, let me see.", "U0lH")
    assert m.to_anthropic()["content"][0] == {
        "type": "thinking",
        "thinking": "Hmm, let me see.",
        "signature": "U0lH",
    }


async def test_redacted_thinking_is_kept_for_the_next_turn(
    pipe: Pipeline, server: ProviderServer, ant: anthropic.AsyncAnthropic
) -> None:
    parts = [
        start(),
        *block(0, {"type": "redacted_thinking", "data": "ENCRYPTED"}),
        *block(1, {"type": "text", "text": ""}, {"type": "text_delta", "text": "ok"}),
        *stop(),
    ]
    s, _ = await run(pipe, server, ant, parts)
    assert [b.type for b in s.message.content] == ["redacted_reasoning", "text"]
    assert s.message.to_anthropic()["content"] == [
        {"type": "redacted_thinking", "data": "ENCRYPTED"},
        {"type": "text", "text": "ok"},
    ]


async def test_citations(pipe: Pipeline, server: ProviderServer, ant: anthropic.AsyncAnthropic) -> None:
    cite = {"type": "char_location", "cited_text": "sky is blue", "document_index": 0, "start_char_index": 0}
    parts = [
        start(),
        *block(
            0,
            {"type": "text", "text": "", "citations": []},
            {"type": "citations_delta", "citation": cite},
            {"type": "text_delta", "text": "The sky is blue."},
        ),
        *stop(),
    ]
    s, delivered = await run(pipe, server, ant, parts)
    assert s.message.text == "The sky is blue."
    assert s.message.content[0].citations == [cite]
    assert any(isinstance(e, Extra) and e.kind == "citation" for e in delivered)


async def test_ping_and_unknown_event_types_are_tolerated(
    pipe: Pipeline, server: ProviderServer, ant: anthropic.AsyncAnthropic
) -> None:
    parts = [
        start(),
        b'event: ping\ndata: {"type": "ping"}\n\n',
        ev({"type": "future_event", "payload": {"x": 1}}),
        *block(
            0,
            {"type": "text", "text": ""},
            {"type": "text_delta", "text": "a"},
            {"type": "future_delta", "stuff": 1},
            {"type": "text_delta", "text": "b"},
        ),
        *block(1, {"type": "future_block", "data": 42}),
        b'event: ping\ndata: {"type": "ping"}\n\n',
        *stop(),
    ]
    s, _ = await run(pipe, server, ant, parts)
    assert s.message.text == "ab" and s.message.complete
    assert [b.type for b in s.message.content] == ["text", "future_block"]
    assert s.message.content[1].data == {"type": "future_block", "data": 42}


async def test_overloaded_error_event_is_a_529_in_band_provider_error(
    pipe: Pipeline, server: ProviderServer, ant: anthropic.AsyncAnthropic
) -> None:
    parts = [*anthropic_events(["par", "tial"], stop=False, stop_reason=None)[:-1], anthropic_error_event()]
    server.script("anthropic-messages", SSEReply(parts))
    with pytest.raises(ProviderError) as info:
        async with pipe.open(anthropic_messages(ant, model="claude-x", max_tokens=5, messages=HI)) as s:
            await s.collect()
    err = info.value
    assert (err.status_code, err.error_type, err.in_band, err.retryable) == (
        529,
        "overloaded_error",
        True,
        True,
    )
    assert err.partial is not None and err.partial.text == "partial" and not err.partial.complete
    assert err.provider == "anthropic"


async def test_a_second_message_start_after_content_is_a_protocol_error(
    pipe: Pipeline, server: ProviderServer, ant: anthropic.AsyncAnthropic
) -> None:
    from schwarm_stream import ProtocolError

    parts = [
        start(),
        *block(0, {"type": "text", "text": ""}, {"type": "text_delta", "text": "a"}),
        start(),
        *stop(),
    ]
    server.script("anthropic-messages", SSEReply(parts))
    with pytest.raises(ProtocolError, match="second message_start"):
        async with pipe.open(anthropic_messages(ant, model="claude-x", max_tokens=5, messages=HI)) as s:
            await s.collect()


def test_anthropic_messages_needs_model_messages_and_max_tokens(ant: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(TypeError, match="max_tokens"):
        anthropic_messages(ant, model="m", messages=HI)
