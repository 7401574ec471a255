"""InvalidOutput through stream_error: the configured "repair" recovery asks again with the errors.

The loopback server answers the first request with an answer that fails validation (scripted), the
offline provider answers the repair with valid JSON; the second request must carry the invalid
answer and pydantic's errors, on every protocol.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest
from pydantic import BaseModel

import schwarm_stream
from schwarm_stream import InvalidOutput, Partial, Reset
from schwarm_stream.builtins.recovery import error_class
from schwarm_stream.sources import anthropic_messages, openai_chat, openai_responses
from schwarm_stream.testing._wire import anthropic_events, chunk_text, openai_chat_events, responses_events
from schwarm_stream.testing.server import OfflineProvider, ProviderServer, SSEReply

ASK = [{"role": "user", "content": "Describe Berlin."}]
BAD = '{"name": "Berlin", "population": "lots"}'
REPAIR: Any = {"plugins": {"autoload": False}, "recovery": {"on_error": {"invalid_output": "repair"}}}


class City(BaseModel):
    name: str
    population: int


@pytest.fixture
async def server() -> AsyncIterator[ProviderServer]:
    async with ProviderServer(OfflineProvider()) as srv:
        yield srv


def _bad_reply(protocol: str) -> SSEReply:
    if protocol == "openai-chat":
        return SSEReply(openai_chat_events(chunk_text(BAD)))
    if protocol == "openai-responses":
        return SSEReply(responses_events(chunk_text(BAD)))
    use = {"id": "toolu_bad", "name": "City", "input": BAD, "chunks": chunk_text(BAD)}
    return SSEReply(anthropic_events([], tool_uses=[use]))


def _source(server: ProviderServer, protocol: str) -> Any:
    oai = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
    if protocol == "openai-chat":
        return openai_chat(oai, model="m", messages=ASK)
    if protocol == "openai-responses":
        return openai_responses(oai, model="m", input="Describe Berlin.")
    ant = anthropic.AsyncAnthropic(api_key="x", base_url=server.anthropic_base_url, max_retries=0)
    return anthropic_messages(ant, model="m", max_tokens=256, messages=ASK)


@pytest.mark.usefixtures("no_waits")
@pytest.mark.parametrize("protocol", ["openai-chat", "openai-responses", "anthropic-messages"])
async def test_repair_sends_the_errors_back_and_validates_the_new_answer(
    server: ProviderServer, protocol: str
) -> None:
    server.script(protocol, _bad_reply(protocol))
    events: list[Any] = []
    async with schwarm_stream.open(_source(server, protocol), output=City, config=REPAIR) as stream:
        async for ev in stream:
            events.append(ev)
        city = await stream.get_final_output()
    assert isinstance(city, City) and city.population == 1  # the offline answer to the repair turn
    assert stream.attempt == 2 and stream.message.recovery == "fallback"
    # consumers were told to discard the invalid answer, and the partial value started over
    reset = next(i for i, e in enumerate(events) if isinstance(e, Reset))
    assert reset > 0 and any(isinstance(e, Partial) for e in events[reset:])
    first, second = (r.json for r in server.requests[-2:])
    assert isinstance(first, dict) and isinstance(second, dict)
    if protocol == "openai-responses":
        turns = second["input"]
        assert turns[-2] == {"role": "assistant", "content": BAD}
        prompt = turns[-1]["content"]
        assert second["text"] == first["text"]  # still asking for the shape
    elif protocol == "openai-chat":
        turns = second["messages"]
        assert turns[:-2] == ASK and turns[-2] == {"role": "assistant", "content": BAD}
        prompt = turns[-1]["content"]
        assert second["response_format"] == first["response_format"]
    else:
        turns = second["messages"]
        use, result = turns[-2]["content"][0], turns[-1]["content"][0]
        assert use["type"] == "tool_use" and use["input"] == json.loads(BAD)
        assert result["type"] == "tool_result" and result["tool_use_id"] == use["id"] and result["is_error"]
        prompt = result["content"]
        assert second["tool_choice"] == first["tool_choice"]
    assert "population" in prompt and "int" in prompt  # pydantic's error, sent back


@pytest.mark.usefixtures("no_waits")
async def test_without_repair_configured_invalid_output_is_raised(server: ProviderServer) -> None:
    server.script("openai-chat", _bad_reply("openai-chat"))
    source = _source(server, "openai-chat")
    async with schwarm_stream.open(source, output=City, config={"plugins": {"autoload": False}}) as stream:
        with pytest.raises(InvalidOutput) as info:
            await stream.get_final_output()
    assert info.value.raw_text == BAD and stream.attempt == 1 and len(server.requests) == 1
    assert error_class(info.value) == "invalid_output"


@pytest.mark.usefixtures("no_waits")
async def test_repairs_are_bounded_by_max_recoveries(server: ProviderServer) -> None:
    for _ in range(3):
        server.script("openai-chat", _bad_reply("openai-chat"))
    config = {**REPAIR, "recovery": {**REPAIR["recovery"], "max_recoveries": 1}}
    async with schwarm_stream.open(_source(server, "openai-chat"), output=City, config=config) as stream:
        with pytest.raises(InvalidOutput):
            await stream.get_final_output()
    assert stream.attempt == 2 and len(server.requests) == 2


async def test_partial_recovery_ends_without_a_final_value() -> None:
    # [recovery] on_error = {invalid_output = "partial"}: the stream ends without an exception,
    # but an answer that failed validation is still no final value
    from schwarm_stream.testing import ScriptedSource

    config = {"plugins": {"autoload": False}, "recovery": {"on_error": {"invalid_output": "partial"}}}
    async with schwarm_stream.open(ScriptedSource([BAD]), output=City, config=config) as stream:
        await stream.until_done()
        assert stream.outcome == "partial" and not stream.message.complete
        with pytest.raises(InvalidOutput):
            await stream.get_final_output()
    assert stream.message.text == BAD
