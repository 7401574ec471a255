"""agent_loop on Gemini, Ollama and Bedrock: tool results go back in each protocol's own shape.

Every case runs the official SDK client (or the native httpx source) over a real socket to the
loopback provider server, and asserts on the conversation the server received on turn 2.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import boto3
import ollama
import pytest
from google import genai

from schwarm_stream.compose.agent import agent_loop, detect_format
from schwarm_stream.sources import bedrock_converse, gemini_generate, native_ollama, ollama_chat
from schwarm_stream.testing.server import OfflineProvider, ProviderServer

ASK = "What's the weather in Berlin?"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CREDS = {"region_name": "us-east-1", "aws_access_key_id": "offline", "aws_secret_access_key": "offline"}
NO_RETRY = {"retry": {"attempts": 1}}


@pytest.fixture
async def server() -> AsyncIterator[ProviderServer]:
    async with ProviderServer(OfflineProvider()) as srv:
        yield srv


def gemini(server: ProviderServer) -> Any:
    client = genai.Client(api_key="offline", http_options={"base_url": server.url})
    tools = [{"function_declarations": [{"name": "get_weather", "parameters": WEATHER}]}]
    return gemini_generate(client, model="gemini-2.5-flash", contents=ASK, config={"tools": tools})


OLLAMA_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]


def ollama_sdk(server: ProviderServer) -> Any:
    client = ollama.AsyncClient(host=server.url)
    return ollama_chat(
        client, model="llama3.2", messages=[{"role": "user", "content": ASK}], tools=OLLAMA_TOOLS
    )


def ollama_native(server: ProviderServer) -> Any:
    return native_ollama(
        server.url, model="llama3.2", messages=[{"role": "user", "content": ASK}], tools=OLLAMA_TOOLS
    )


def bedrock(server: ProviderServer) -> Any:
    client = boto3.client("bedrock-runtime", endpoint_url=server.url, **CREDS)
    return bedrock_converse(
        client,
        modelId="amazon.nova-micro-v1:0",
        messages=[{"role": "user", "content": [{"text": ASK}]}],
        toolConfig={"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": WEATHER}}}]},
    )


def weather(city: str) -> dict[str, Any]:
    return {"city": city, "temperature_c": 21}


def broken(city: str) -> dict[str, Any]:
    raise RuntimeError(f"no station in {city}")


MAKERS: dict[str, Callable[[ProviderServer], Any]] = {
    "gemini": gemini,
    "ollama-sdk": ollama_sdk,
    "ollama-native": ollama_native,
    "bedrock": bedrock,
}
FORMATS = {"gemini": "gemini", "ollama-sdk": "ollama", "ollama-native": "ollama", "bedrock": "bedrock"}


@pytest.mark.parametrize("name", list(MAKERS))
async def test_two_turns_with_a_tool(server: ProviderServer, name: str) -> None:
    source = MAKERS[name](server)
    assert detect_format(source) == FORMATS[name]
    loop = agent_loop(source, tools={"get_weather": weather}, config=NO_RETRY)
    message = await loop.run()
    assert loop.outcome == "complete"
    assert [t.number for t in loop.turns] == [1, 2]
    assert loop.turns[0].message.tool_calls[0].parsed == {"city": "Berlin"}
    # the offline model answers turn 2 with the tool result it was sent, so the text proves the round trip
    assert message.text == 'The tool returned: {"city": "Berlin", "temperature_c": 21}'
    assert len(server.requests) == 2


async def test_gemini_conversation_format(server: ProviderServer) -> None:
    loop = agent_loop(gemini(server), tools={"get_weather": weather}, config=NO_RETRY)
    await loop.run()
    sent = server.requests[1].json["contents"]
    assert [c["role"] for c in sent] == ["user", "model", "user"]
    assert sent[0]["parts"] == [{"text": ASK}]
    [call] = [p["functionCall"] for p in sent[1]["parts"] if "functionCall" in p]
    assert call["name"] == "get_weather" and call["args"] == {"city": "Berlin"}
    [part] = sent[2]["parts"]
    response = part["functionResponse"]
    assert response["name"] == "get_weather"
    assert response["response"] == {"output": {"city": "Berlin", "temperature_c": 21}}


@pytest.mark.parametrize("name", ["ollama-sdk", "ollama-native"])
async def test_ollama_conversation_format(server: ProviderServer, name: str) -> None:
    loop = agent_loop(MAKERS[name](server), tools={"get_weather": weather}, config=NO_RETRY)
    await loop.run()
    sent = server.requests[1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    [call] = sent[1]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert call["function"]["arguments"] == {"city": "Berlin"}  # an object on this API, not a JSON string
    assert sent[2]["tool_name"] == "get_weather"
    assert sent[2]["content"] == '{"city": "Berlin", "temperature_c": 21}'


async def test_bedrock_conversation_format(server: ProviderServer) -> None:
    loop = agent_loop(bedrock(server), tools={"get_weather": weather}, config=NO_RETRY)
    await loop.run()
    sent = server.requests[1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    [use] = [b["toolUse"] for b in sent[1]["content"] if "toolUse" in b]
    assert use["name"] == "get_weather" and use["input"] == {"city": "Berlin"}
    assert all(b.get("text", "x") for b in sent[1]["content"])  # Converse rejects blank text blocks
    [block] = sent[2]["content"]
    result = block["toolResult"]
    assert result["toolUseId"] == use["toolUseId"]
    assert result["content"] == [{"json": {"city": "Berlin", "temperature_c": 21}}]
    assert "status" not in result


@pytest.mark.parametrize("name", ["gemini", "bedrock", "ollama-native"])
async def test_a_failing_tool_is_sent_back_as_an_error(server: ProviderServer, name: str) -> None:
    loop = agent_loop(MAKERS[name](server), tools={"get_weather": broken}, config=NO_RETRY, max_turns=2)
    await loop.run()
    assert [r.call.name for r in loop.tool_errors] == ["get_weather"]
    body = server.requests[1].json
    if name == "gemini":
        [part] = body["contents"][2]["parts"]
        assert "no station in Berlin" in part["functionResponse"]["response"]["error"]
    elif name == "bedrock":
        result = body["messages"][2]["content"][0]["toolResult"]
        assert result["status"] == "error"
        assert "no station in Berlin" in result["content"][0]["text"]
    else:
        assert "no station in Berlin" in body["messages"][2]["content"]
