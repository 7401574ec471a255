"""A Chat Completions stream whose connection drops after every choice finished: the content is whole."""

from __future__ import annotations

import openai
import pytest

from schwarm_stream import Pipeline, TransportError
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing.server import ProviderServer, SSEReply, openai_chat_events

PIPELINE = Pipeline(config={"plugins": {"autoload": False, "disable": ["retry", "recovery", "timeouts"]}})


def source(server: ProviderServer) -> object:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
    return openai_chat(client, model="m", messages=[{"role": "user", "content": "hi"}])


async def test_drop_after_the_finish_chunk_completes_without_usage() -> None:
    events = openai_chat_events(["Hel", "lo"])  # role, deltas, finish, usage, [DONE]
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(events[:-2], end="truncate"))  # usage and [DONE] lost
        async with PIPELINE.open(source(server)) as stream:
            message = await stream.collect()
    assert message.complete and message.text == "Hello" and message.finish_reason == "stop"
    assert message.usage is None  # lost with the connection: None, never 0


async def test_drop_before_the_finish_chunk_is_a_transport_error_with_the_partial() -> None:
    events = openai_chat_events(["Hel", "lo"])
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(events[:3], end="truncate"))  # role + two deltas
        async with PIPELINE.open(source(server)) as stream:
            with pytest.raises(TransportError) as info:
                await stream.collect()
    assert info.value.partial is not None and info.value.partial.text == "Hello"
    assert not info.value.partial.complete
