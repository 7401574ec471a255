"""The SDK-shaped helpers on the stream handle (issue 16 item 2), async and sync: ``text_stream``,
``until_done()``, ``get_final_message()``, ``final_text()`` / ``get_final_text()``; and that they
mean what the official SDKs' helpers of the same names mean, on the same server answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest

import schwarm_stream
from schwarm_stream import Chunk, StreamCancelled, StreamIncomplete, ToolCallDelta
from schwarm_stream.sources import anthropic_messages, openai_chat
from schwarm_stream.testing import ScriptedSource, Truncate
from schwarm_stream.testing.server import OfflineProvider, ProviderServer, ThreadedProviderServer

OFF: Any = {"plugins": {"autoload": False}}
ASK = [{"role": "user", "content": "Tell me about Berlin."}]


@pytest.fixture
async def server() -> AsyncIterator[ProviderServer]:
    async with ProviderServer(OfflineProvider()) as srv:
        yield srv


def _script() -> ScriptedSource:
    return ScriptedSource(
        [Chunk("thinking", "reasoning"), "Hel", "lo", ToolCallDelta(0, "c1", "f", "{}"), Chunk("!", choice=1)]
    )


async def test_text_stream_yields_only_the_text_of_choice_0() -> None:
    async with schwarm_stream.open(_script(), config=OFF) as stream:
        assert [t async for t in stream.text_stream] == ["Hel", "lo"]
        message = await stream.get_final_message()
    assert message.text == "Hello" and message.complete


async def test_until_done_final_text_and_repeated_calls() -> None:
    async with schwarm_stream.open(ScriptedSource(["a", "b"]), config=OFF) as stream:
        assert await stream.until_done() is stream
        assert stream.outcome == "complete"
        assert await stream.final_text() == "ab"
        assert await stream.get_final_text() == "ab"  # the Anthropic SDK's name
        assert (await stream.get_final_message()).text == "ab"  # again, after the end: the same


async def test_helpers_raise_the_streams_error_every_time() -> None:
    async with schwarm_stream.open(ScriptedSource(["a", Truncate()]), config=OFF) as stream:
        with pytest.raises(StreamIncomplete):
            await stream.get_final_message()
        with pytest.raises(StreamIncomplete):  # not a partial message passed off as final
            await stream.final_text()


async def test_after_break_the_final_message_is_refused() -> None:
    async with schwarm_stream.open(ScriptedSource(["a", "b", "c"]), config=OFF) as stream:
        async for _ in stream:
            break
        await stream.aclose()
        with pytest.raises(StreamCancelled) as info:
            await stream.get_final_message()
    assert info.value.partial is not None and info.value.partial.text == "a"


async def test_helpers_continue_after_partial_iteration() -> None:
    async with schwarm_stream.open(ScriptedSource(["a", "b", "c"]), config=OFF) as stream:
        it = aiter(stream)
        first = await anext(it)
        assert isinstance(first, Chunk) and first.text == "a"
        assert await stream.final_text() == "abc"


def test_sync_helpers() -> None:
    with schwarm_stream.open_sync(_script(), config=OFF) as stream:
        assert list(stream.text_stream) == ["Hel", "lo"]
        assert stream.get_final_message().text == "Hello"
        assert stream.until_done() is stream  # after the end: returns at once, no hang
        assert stream.final_text() == "Hello" and stream.get_final_text() == "Hello"
    with schwarm_stream.open_sync(ScriptedSource(["a", Truncate()]), config=OFF) as stream:
        with pytest.raises(StreamIncomplete):
            stream.final_text()
        with pytest.raises(StreamIncomplete):
            stream.until_done()


def test_sync_untyped_stream_has_no_typed_helpers() -> None:
    with schwarm_stream.open_sync(ScriptedSource(["a"]), config=OFF) as stream:
        with pytest.raises(TypeError, match="typed stream"):
            stream.get_final_output()
        assert stream.final_text() == "a"


# -- the same meaning as the SDKs' helpers, on the same answer --------------------------------------


async def test_text_stream_and_final_text_match_the_anthropic_sdk(server: ProviderServer) -> None:
    client = anthropic.AsyncAnthropic(api_key="x", base_url=server.anthropic_base_url, max_retries=0)
    async with client.messages.stream(model="m", max_tokens=256, messages=ASK) as sdk:  # type: ignore[arg-type]
        sdk_deltas = [t async for t in sdk.text_stream]
        sdk_text = await sdk.get_final_text()
    source = anthropic_messages(client, model="m", max_tokens=256, messages=ASK)
    async with schwarm_stream.open(source, config=OFF) as stream:
        deltas = [t async for t in stream.text_stream]
        text = await stream.get_final_text()
    assert deltas == sdk_deltas and len(deltas) > 1
    assert text == sdk_text


async def test_get_final_message_matches_the_openai_sdk(server: ProviderServer) -> None:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
    async with client.chat.completions.stream(model="m", messages=ASK) as sdk:  # type: ignore[arg-type]
        await sdk.until_done()
        completion = await sdk.get_final_completion()
    async with schwarm_stream.open(openai_chat(client, model="m", messages=ASK), config=OFF) as stream:
        await stream.until_done()
        message = await stream.get_final_message()
    assert message.text == completion.choices[0].message.content
    assert message.finish_reason == completion.choices[0].finish_reason


def test_sync_text_stream_matches_the_anthropic_sdk() -> None:
    with ThreadedProviderServer(OfflineProvider()) as srv:
        sdk_client = anthropic.Anthropic(api_key="x", base_url=srv.anthropic_base_url, max_retries=0)
        with sdk_client.messages.stream(model="m", max_tokens=256, messages=ASK) as sdk:  # type: ignore[arg-type]
            sdk_deltas = list(sdk.text_stream)
        client = anthropic.AsyncAnthropic(api_key="x", base_url=srv.anthropic_base_url, max_retries=0)
        source = anthropic_messages(client, model="m", max_tokens=256, messages=ASK)
        with schwarm_stream.open_sync(source, config=OFF) as stream:
            deltas = list(stream.text_stream)
            assert stream.get_final_text() == "".join(sdk_deltas)
    assert deltas == sdk_deltas
