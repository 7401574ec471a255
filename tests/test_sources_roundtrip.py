"""``message.to_openai()`` / ``to_anthropic()`` go into a second real request, and the SDK accepts them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

from schwarm_stream import Pipeline
from schwarm_stream.sources import anthropic_messages, openai_chat
from schwarm_stream.testing.server import ProviderServer, SSEReply, anthropic_events, openai_chat_events

HI: Any = [{"role": "user", "content": "weather in Paris and Oslo?"}]


@pytest.fixture
def pipe(core_pipeline: Callable[..., Pipeline]) -> Pipeline:
    return core_pipeline()


async def test_openai_tool_call_turn_round_trips(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    calls = [
        {"id": "call_p", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"id": "call_o", "name": "get_weather", "arguments": {"city": "Oslo"}},
    ]
    server.script("openai-chat", SSEReply(openai_chat_events(["Checking."], tool_calls=calls)))
    server.script("openai-chat", SSEReply(openai_chat_events(["Sunny and snowy."])))
    source = openai_chat(oai, model="gpt-x", messages=HI)
    async with pipe.open(source) as s:
        first = await s.collect()

    turn = first.to_openai()
    results = [
        {"role": "tool", "tool_call_id": c.id, "content": f"{c.parsed['city']}: ok"} for c in first.tool_calls
    ]
    async with pipe.open(source.with_messages([*HI, turn, *results])) as s:
        second = await s.collect()

    assert second.text == "Sunny and snowy."
    sent = server.requests[1].json["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "call_p",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "call_o",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            },
        ],
    }
    assert [m["tool_call_id"] for m in sent[2:]] == ["call_p", "call_o"]


async def test_anthropic_thinking_and_tool_use_turn_round_trips(
    pipe: Pipeline, server: ProviderServer, ant: anthropic.AsyncAnthropic
) -> None:
    body = anthropic_events(
        ["Let me look."],
        thinking_chunks=["User wants ", "weather."],
        signature="U0lHTkFUVVJF",
        tool_uses=[{"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
    )
    server.script("anthropic-messages", SSEReply(body))
    server.script("anthropic-messages", SSEReply(anthropic_events(["Sunny."])))
    source = anthropic_messages(ant, model="claude-test", max_tokens=100, messages=HI)
    async with pipe.open(source) as s:
        first = await s.collect()

    turn = first.to_anthropic()
    result = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}],
    }
    async with pipe.open(source.with_messages([*HI, turn, result])) as s:
        second = await s.collect()

    assert second.text == "Sunny."
    sent = server.requests[1].json["messages"][1]
    assert sent == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "User wants weather.", "signature": "U0lHTkFUVVJF"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    }


async def test_openai_message_with_content_none_when_only_tool_calls(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(tool_calls=[{"name": "f", "arguments": "{}"}])))
    async with pipe.open(openai_chat(oai, model="gpt-x", messages=HI)) as s:
        m = await s.collect()
    assert m.to_openai() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }
