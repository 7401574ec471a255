"""One source per protocol; "official SDK client" or "native httpx" is the transport it is given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

import schwarm_stream
from schwarm_stream import StreamIncomplete
from schwarm_stream.compose.agent import detect_format
from schwarm_stream.sources import (
    AnthropicMessagesSource,
    OpenAIChatSource,
    OpenAIResponsesSource,
    native_anthropic,
    native_openai_chat,
    native_openai_responses,
    openai_chat,
)
from schwarm_stream.sources._sse import SSE
from schwarm_stream.sources._transport import (
    _PATHS,
    _SDK_OPENERS,
    Call,
    HttpxTransport,
    SdkTransport,
    Transport,
)
from schwarm_stream.testing.server import ProviderServer, SSEReply, openai_chat_events

HI: Any = [{"role": "user", "content": "hi"}]


class Canned(Transport):
    """A transport replaying SSE events, recording the calls it was given."""

    def __init__(self, *bodies: list[str]) -> None:
        self.bodies = list(bodies)
        self.calls: list[Call] = []

    async def events(self, call: Call, *, provider: str, max_event_bytes: int) -> AsyncIterator[SSE]:
        self.calls.append(call)
        for i, data in enumerate(self.bodies.pop(0)):
            yield SSE("message", data, i)


def test_the_native_sources_are_their_protocols_source() -> None:
    chat = native_openai_chat("http://127.0.0.1:1/v1", "k", model="m", messages=HI)
    responses = native_openai_responses("http://127.0.0.1:1/v1", "k", model="m", input="hi")
    messages = native_anthropic("http://127.0.0.1:1", "k", model="m", max_tokens=5, messages=HI)
    assert isinstance(chat, OpenAIChatSource) and isinstance(chat.transport, HttpxTransport)
    assert isinstance(responses, OpenAIResponsesSource) and isinstance(responses.transport, HttpxTransport)
    assert isinstance(messages, AnthropicMessagesSource) and isinstance(messages.transport, HttpxTransport)
    # so everything built on a protocol source takes either transport (the agent loop, here)
    assert [detect_format(s) for s in (chat, messages, responses)] == ["openai", "anthropic", "responses"]
    sdk = openai_chat(
        openai.AsyncOpenAI(api_key="sk-test", base_url="http://127.0.0.1:1/v1"), model="m", messages=HI
    )
    assert isinstance(sdk.transport, SdkTransport) and sdk.client.max_retries == 0


def test_both_transports_know_every_endpoint() -> None:
    assert set(_SDK_OPENERS) == {*_PATHS, "responses.retrieve"}
    http = HttpxTransport("http://h/v1/", headers={"authorization": "Bearer k"})
    assert http.request(Call("chat.completions", {"a": 1}))[:2] == ("POST", "http://h/v1/chat/completions")
    assert http.request(Call("responses.retrieve", {}, ("resp_1", 7))) == (
        "GET",
        "http://h/v1/responses/resp_1?stream=true&starting_after=7",
        None,
    )
    with pytest.raises(ValueError, match="response_id"):
        http.request(Call("responses.retrieve", {}))


async def test_the_protocol_owns_normalization_and_completion_whatever_the_transport() -> None:
    done = [
        '{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"}}]}',
        '{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo"}}]}',
        '{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
        "[DONE]",
    ]
    transport = Canned(done, done[:2])
    source = OpenAIChatSource(transport=transport, model="m", messages=HI)
    pipe = schwarm_stream.Pipeline(plugins=[], config={"retry": {"attempts": 1}})
    async with pipe.open(source) as s:
        message = await s.collect()
    assert message.text == "Hello" and message.complete and message.finish_reason == "stop"
    assert transport.calls[0].endpoint == "chat.completions"
    assert transport.calls[0].body["stream"] is True and transport.calls[0].body["messages"] == HI
    with pytest.raises(StreamIncomplete):  # a body that just stops: truncated, on any transport
        async with pipe.open(source) as s:
            await s.collect()


async def test_native_and_sdk_send_the_same_request(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["a"])), SSEReply(openai_chat_events(["a"])))
    pipe = schwarm_stream.Pipeline(plugins=[])
    for source in (
        openai_chat(oai, model="m", messages=HI, temperature=0.5),
        native_openai_chat(server.openai_base_url, "sk-test", model="m", messages=HI, temperature=0.5),
    ):
        async with pipe.open(source) as s:
            assert (await s.collect()).text == "a"
    sdk, native = server.requests
    assert (sdk.method, sdk.path, sdk.json) == (native.method, native.path, native.json)
    assert sdk.headers["authorization"] == native.headers["authorization"] == "Bearer sk-test"


def test_continuation_and_resume_are_the_protocols_on_both_transports() -> None:
    partial = schwarm_stream.Message(text="Once upon", complete=False)
    sdk = openai_chat(
        openai.AsyncOpenAI(api_key="sk-test", base_url="http://127.0.0.1:1/v1"), model="m", messages=HI
    )
    native = native_openai_chat("http://127.0.0.1:1/v1", "k", model="m", messages=HI)
    a, b = sdk.continuation(partial), native.continuation(partial)
    assert a is not None and b is not None
    assert a.kwargs["messages"] == b.kwargs["messages"] and a.transport is sdk.transport
    assert type(b) is type(native) and b.transport is native.transport
    assert native.kwargs["messages"] == HI  # the original request is untouched
