"""The agent loop through the real SDK clients against the offline provider on a loopback socket."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest

from schwarm_stream import Reset, StreamIncomplete, ToolCallDelta, hookimpl
from schwarm_stream.compose.agent import AgentLoop, ToolResult, TurnEnd, TurnStart, agent_loop
from schwarm_stream.sources import anthropic_messages, from_iterator, openai_chat, openai_responses
from schwarm_stream.testing.server import (
    OfflineProvider,
    ProviderServer,
    SSEReply,
    anthropic_events,
    openai_chat_events,
)

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CHAT_TOOLS: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
ANTHROPIC_TOOLS: Any = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}]
RESPONSES_TOOLS: Any = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
ASK = "What's the weather in Berlin?"


@pytest.fixture
async def server() -> AsyncIterator[ProviderServer]:
    async with ProviderServer(OfflineProvider()) as srv:
        yield srv


def chat(server: ProviderServer) -> Any:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
    return openai_chat(client, model="m", messages=[{"role": "user", "content": ASK}], tools=CHAT_TOOLS)


def claude(server: ProviderServer) -> Any:
    client = anthropic.AsyncAnthropic(api_key="x", base_url=server.anthropic_base_url)
    return anthropic_messages(
        client, model="m", max_tokens=256, messages=[{"role": "user", "content": ASK}], tools=ANTHROPIC_TOOLS
    )


def responses(server: ProviderServer) -> Any:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
    return openai_responses(client, model="m", input=ASK, tools=RESPONSES_TOOLS)


class Weather:
    """A sync tool that records its calls and the thread it ran on."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.threads: list[threading.Thread] = []

    def __call__(self, city: str) -> dict[str, Any]:
        self.calls.append(city)
        self.threads.append(threading.current_thread())
        return {"city": city, "temperature_c": 21}


async def collect(loop: AgentLoop) -> list[Any]:
    return [ev async for ev in loop]


@pytest.mark.parametrize("make", [chat, claude, responses])
async def test_two_turns_with_a_tool(server: ProviderServer, make: Any) -> None:
    weather = Weather()
    loop = agent_loop(make(server), tools={"get_weather": weather})
    events = await collect(loop)

    boundaries = [type(e).__name__ for e in events if isinstance(e, (TurnStart, TurnEnd, ToolResult))]
    assert boundaries == ["TurnStart", "ToolResult", "TurnEnd", "TurnStart", "TurnEnd"]
    assert weather.calls == ["Berlin"]
    assert weather.threads[0] is not threading.main_thread()  # sync tools run off the event loop
    [result] = [e for e in events if isinstance(e, ToolResult)]
    assert result.error is None and result.output == {"city": "Berlin", "temperature_c": 21}
    assert result.content == '{"city": "Berlin", "temperature_c": 21}'
    # the model's second turn saw the tool result
    assert loop.outcome == "complete"
    assert loop.message is not None and loop.message.text == f"The tool returned: {result.content}"
    assert [t.number for t in loop.turns] == [1, 2]
    assert loop.turns[0].message.tool_calls[0].id == result.call.id
    assert all(t.stats.state == "complete" for t in loop.turns)
    # events between the boundaries are the normalized stream events
    assert any(isinstance(e, ToolCallDelta) and e.name == "get_weather" for e in events)
    assert len(server.requests) == 2


async def test_openai_conversation_format(server: ProviderServer) -> None:
    loop = agent_loop(chat(server), tools={"get_weather": Weather()})
    await loop.run()
    sent = server.requests[1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    call = sent[1]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Berlin"}'}
    assert sent[2]["tool_call_id"] == call["id"]
    assert loop.messages[:3] == sent
    assert loop.messages[3] == {"role": "assistant", "content": loop.message.text}  # type: ignore[union-attr]


async def test_anthropic_conversation_format(server: ProviderServer) -> None:
    loop = agent_loop(claude(server), tools={"get_weather": Weather()})
    await loop.run()
    sent = server.requests[1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    tool_use = sent[1]["content"][-1]
    assert tool_use["type"] == "tool_use" and tool_use["input"] == {"city": "Berlin"}
    [block] = sent[2]["content"]
    assert block["type"] == "tool_result" and block["tool_use_id"] == tool_use["id"]
    assert "is_error" not in block


async def test_responses_conversation_format(server: ProviderServer) -> None:
    loop = agent_loop(responses(server), tools={"get_weather": Weather()})
    await loop.run()
    sent = server.requests[1].json["input"]
    assert sent[0] == {"role": "user", "content": ASK}
    call = next(i for i in sent if i.get("type") == "function_call")
    output = sent[-1]
    assert output["type"] == "function_call_output" and output["call_id"] == call["call_id"]


async def test_async_tool(server: ProviderServer) -> None:
    seen: list[str] = []

    async def get_weather(city: str) -> str:
        await asyncio.sleep(0)
        seen.append(city)
        return f"sunny in {city}"

    loop = agent_loop(chat(server), tools={"get_weather": get_weather})
    message = await loop.run()
    assert seen == ["Berlin"]
    assert message.text == "The tool returned: sunny in Berlin"


@pytest.mark.parametrize("make", [chat, claude])
async def test_unknown_tool_is_reported_to_the_model(server: ProviderServer, make: Any) -> None:
    loop = agent_loop(make(server), tools={})
    events = await collect(loop)
    [result] = [e for e in events if isinstance(e, ToolResult)]
    assert result.error == "unknown tool 'get_weather'; available tools: (none)"
    assert loop.outcome == "tool_error" and loop.tool_errors == [result]
    assert loop.message is not None and "unknown tool 'get_weather'" in loop.message.text
    last = server.requests[1].json["messages"][-1]
    if make is claude:
        assert last["content"][0]["is_error"] is True
    else:
        assert last["content"].startswith("error: unknown tool")


async def test_a_raising_tool_is_reported_to_the_model(server: ProviderServer) -> None:
    def get_weather(city: str) -> str:
        raise LookupError(f"no station in {city}")

    loop = agent_loop(chat(server), tools={"get_weather": get_weather})
    await loop.run()
    result = loop.turns[0].results[0]
    assert result.error == "tool 'get_weather' raised LookupError: no station in Berlin"
    # the model saw the error and answered, but a tool failed: not "complete"
    assert loop.message is not None and "raised LookupError" in loop.message.text
    assert loop.outcome == "tool_error"
    assert loop.tool_errors == [result]


NO_REQUIRED = {"type": "object", "properties": {"city": {"type": "string"}}}  # no "required"


@pytest.mark.parametrize("fmt", ["openai", "anthropic", "responses"])
async def test_a_schema_without_required_gets_empty_arguments_and_the_loop_says_tool_error(
    server: ProviderServer, fmt: str
) -> None:
    # Issue 18: the offline model fills only required arguments, so it sends {}; get_weather(**{})
    # raises TypeError. The loop used to report "complete" for that.
    client: Any
    if fmt == "anthropic":
        client = anthropic.AsyncAnthropic(api_key="x", base_url=server.anthropic_base_url)
        tools: Any = [{"name": "get_weather", "description": "Weather", "input_schema": NO_REQUIRED}]
        source: Any = anthropic_messages(
            client, model="m", max_tokens=256, messages=[{"role": "user", "content": ASK}], tools=tools
        )
    else:
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
        if fmt == "openai":
            tools = [{"type": "function", "function": {"name": "get_weather", "parameters": NO_REQUIRED}}]
            source = openai_chat(client, model="m", messages=[{"role": "user", "content": ASK}], tools=tools)
        else:
            tools = [{"type": "function", "name": "get_weather", "parameters": NO_REQUIRED}]
            source = openai_responses(client, model="m", input=ASK, tools=tools)
    weather = Weather()
    loop = agent_loop(source, tools={"get_weather": weather})
    message = await loop.run()

    [result] = loop.turns[0].results
    assert result.call.parsed == {} and weather.calls == []
    assert result.error is not None and result.error.startswith("tool 'get_weather' raised TypeError:")
    assert result.content == f"error: {result.error}"
    assert loop.outcome == "tool_error" and loop.tool_errors == [result]
    assert len(loop.turns) == 2 and message.complete and not message.tool_calls


async def test_a_tool_error_stays_reported_when_the_model_tries_again(server: ProviderServer) -> None:
    # The model calls with a city the tool rejects, then again with a good one, then answers.
    def call(city: str) -> SSEReply:
        args = {"id": f"call_{city}", "name": "get_weather", "arguments": {"city": city}}
        return SSEReply(openai_chat_events(tool_calls=[args], finish_reason="tool_calls"))

    server.script("openai-chat", call("Atlantis"), call("Berlin"))

    def get_weather(city: str) -> str:
        if city == "Atlantis":
            raise LookupError("no such city")
        return f"sunny in {city}"

    loop = agent_loop(chat(server), tools={"get_weather": get_weather})
    await loop.run()
    assert [len(t.results) for t in loop.turns] == [1, 1, 0]
    failed, ok = loop.turns[0].results[0], loop.turns[1].results[0]
    assert ok.error is None and ok.content == "sunny in Berlin"
    assert loop.tool_errors == [failed] and failed.call.parsed == {"city": "Atlantis"}
    assert loop.outcome == "tool_error"  # a tool raised during the loop, even if the model recovered


async def test_a_tool_error_does_not_hide_max_turns(server: ProviderServer) -> None:
    def get_weather(city: str) -> str:
        raise LookupError("down")

    args = {"id": "call_again", "name": "get_weather", "arguments": {"city": "Berlin"}}
    server.script("openai-chat", SSEReply(openai_chat_events(tool_calls=[args], finish_reason="tool_calls")))
    server.script("openai-chat", SSEReply(openai_chat_events(tool_calls=[args], finish_reason="tool_calls")))
    loop = agent_loop(chat(server), tools={"get_weather": get_weather}, max_turns=2)
    await loop.run()
    assert loop.outcome == "max_turns" and len(loop.tool_errors) == 1


async def test_max_turns_stops_before_running_tools(server: ProviderServer) -> None:
    weather = Weather()
    loop = agent_loop(chat(server), tools={"get_weather": weather}, max_turns=1)
    events = await collect(loop)
    assert loop.outcome == "max_turns"
    assert weather.calls == [] and not any(isinstance(e, ToolResult) for e in events)
    assert loop.message is not None and loop.message.tool_calls[0].name == "get_weather"
    assert len(server.requests) == 1


class RestartOnce:
    """Recovery stand-in: restart the stream after the first failure."""

    def __init__(self) -> None:
        self.failures: list[Any] = []

    @hookimpl
    def stream_error(self, stream: Any, error: Any) -> str | None:
        self.failures.append(error)
        return "restart" if len(self.failures) == 1 else None


async def test_tool_calls_of_a_reset_attempt_are_never_executed(server: ProviderServer) -> None:
    # Attempt 1 streams a call to get_weather("Atlantis") and breaks off without a terminator; the
    # restarted attempt (offline provider) asks for Berlin. Only the final message's call may run.
    ghost = openai_chat_events(
        ["Checking"],
        tool_calls=[{"id": "call_GHOST", "name": "get_weather", "arguments": {"city": "Atlantis"}}],
        finish_reason=None,
        usage=None,
        done=False,
    )
    server.script("openai-chat", SSEReply(ghost))
    weather, restart = Weather(), RestartOnce()
    loop = agent_loop(chat(server), tools={"get_weather": weather}, plugins=[restart])
    events = await collect(loop)

    assert isinstance(restart.failures[0], StreamIncomplete)
    first_turn = events[: next(i for i, e in enumerate(events) if isinstance(e, TurnEnd))]
    assert any(isinstance(e, ToolCallDelta) and e.id == "call_GHOST" for e in first_turn)
    assert any(isinstance(e, Reset) for e in first_turn)
    assert weather.calls == ["Berlin"]
    assert loop.turns[0].message.recovery == "restarted"
    assert [r.call.id for t in loop.turns for r in t.results] == ["call_offline_1"]
    sent = server.requests[2].json["messages"]
    assert "call_GHOST" not in str(sent)


class EndPartial:
    @hookimpl
    def stream_error(self, stream: Any, error: Any) -> str:
        return "partial"


async def test_a_partial_message_never_runs_its_tools(server: ProviderServer) -> None:
    call = {"id": "toolu_X", "name": "get_weather", "input": {}}
    server.script(
        "anthropic-messages", SSEReply(anthropic_events(["Checking"], tool_uses=[call], stop=False))
    )
    weather = Weather()
    loop = agent_loop(claude(server), tools={"get_weather": weather}, plugins=[EndPartial()])
    await collect(loop)
    assert loop.outcome == "incomplete"
    assert weather.calls == []
    assert loop.message is not None and not loop.message.complete
    assert loop.message.tool_calls[0].id == "toolu_X"


async def test_a_failed_turn_raises_with_the_partial(server: ProviderServer) -> None:
    truncated = openai_chat_events(["half an ans"], finish_reason=None, usage=None, done=False)
    server.script("openai-chat", SSEReply(truncated))
    loop = agent_loop(chat(server), tools={"get_weather": Weather()})
    with pytest.raises(StreamIncomplete) as info:
        await loop.run()
    assert loop.outcome == "error"
    assert info.value.partial is not None and info.value.partial.text == "half an ans"
    assert loop.message is not None and loop.message.text == "half an ans"


def test_bad_arguments_are_rejected_clearly() -> None:
    with pytest.raises(TypeError, match="openai_chat, anthropic_messages, openai_responses, gemini_generate"):
        agent_loop(from_iterator(["x"]), tools={})
    with pytest.raises(ValueError, match="max_turns must be at least 1"):
        agent_loop(from_iterator(["x"]), tools={}, format="openai", max_turns=0)


async def test_a_loop_runs_once(server: ProviderServer) -> None:
    loop = agent_loop(chat(server), tools={"get_weather": Weather()})
    await loop.run()
    with pytest.raises(RuntimeError, match="runs once"):
        await loop.run()


async def test_truncated_arguments_are_reported_not_executed(server: ProviderServer) -> None:
    # finish_reason "length" cut the arguments: the message is complete, the call is not valid JSON.
    cut = openai_chat_events(
        tool_calls=[{"id": "call_cut", "name": "get_weather", "arguments": '{"city": "Ber'}],
        finish_reason="length",
    )
    server.script("openai-chat", SSEReply(cut))
    weather = Weather()
    loop = agent_loop(chat(server), tools={"get_weather": weather})
    await loop.run()
    result = loop.turns[0].results[0]
    assert weather.calls == []
    assert result.error is not None and result.error.startswith(
        "arguments of 'get_weather' are not valid JSON"
    )
    assert server.requests[1].json["messages"][-1]["content"] == result.content
    assert loop.outcome == "tool_error" and loop.tool_errors == [result]


class Turns:
    def __init__(self) -> None:
        self.seen: list[tuple[Any, Any]] = []

    @hookimpl
    def stream_start(self, stream: Any) -> None:
        self.seen.append((stream.metadata, stream.agent_id))


async def test_each_turn_carries_its_number_in_metadata(server: ProviderServer) -> None:
    turns = Turns()
    loop = agent_loop(
        chat(server), tools={"get_weather": Weather()}, plugins=[turns], metadata={"user": "u1"}, agent_id="a"
    )
    await loop.run()
    assert turns.seen == [({"user": "u1", "turn": 1}, "a"), ({"user": "u1", "turn": 2}, "a")]
