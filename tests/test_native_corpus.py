"""Every recorded stream of the corpus through the native fast path gives the SDK path's exact result.

The SDK sources are checked against the SDKs' own accumulators in
``test_corpus_equivalence.py``; here each corpus body is served twice by the
loopback :class:`ProviderServer` and read once by the official client (through
our SDK source) and once by the native source (httpx, no SDK): the final
messages, the event sequences and any typed error must be identical.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

import schwarm_stream
from schwarm_stream import StreamError
from schwarm_stream.sources import (
    anthropic_messages,
    native_anthropic,
    native_openai_chat,
    native_openai_responses,
    openai_chat,
    openai_responses,
)
from schwarm_stream.testing.server import ProviderServer, SSEReply
from tests.support.corpus import CorpusStream, corpus_root, is_subset, load_corpus

ROOT = corpus_root()
STREAMS: list[CorpusStream] = load_corpus(ROOT) if ROOT is not None else []
# The full corpus where present, else the subset shipped in tests/data/corpus: never skipped.

MESSAGES = [{"role": "user", "content": "hi"}]
# One attempt per source: the comparison is between the two transports, not of retry decisions.
PIPELINE = schwarm_stream.Pipeline(config={"plugins": {"autoload": False, "disable": ["retry", "recovery"]}})


def sdk_source(protocol: str, server: ProviderServer) -> Any:
    if protocol == "anthropic-messages":
        ant = anthropic.AsyncAnthropic(api_key="x", base_url=server.anthropic_base_url)
        return anthropic_messages(ant, model="m", max_tokens=10, messages=MESSAGES)
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
    if protocol == "openai-responses":
        return openai_responses(client, model="m", input="hi")
    return openai_chat(client, model="m", messages=MESSAGES)


def native_source(protocol: str, server: ProviderServer) -> Any:
    if protocol == "anthropic-messages":
        return native_anthropic(server.anthropic_base_url, "x", model="m", max_tokens=10, messages=MESSAGES)
    if protocol == "openai-responses":
        return native_openai_responses(server.openai_base_url, "sk-test", model="m", input="hi")
    return native_openai_chat(server.openai_base_url, "sk-test", model="m", messages=MESSAGES)


async def run(source: Any) -> tuple[dict[str, Any], list[Any], tuple[str, str] | None]:
    events: list[Any] = []
    error = None
    async with PIPELINE.open(source) as s:
        try:
            async for ev in s:
                events.append(ev)
        except StreamError as exc:
            error = (type(exc).__name__, str(exc))
    return s.message.to_dict(), events, error


@pytest.mark.parametrize("stream", STREAMS, ids=[s.id for s in STREAMS])
async def test_native_matches_sdk_path(stream: CorpusStream) -> None:
    async with ProviderServer() as server:
        server.script(stream.protocol, SSEReply([stream.body]), SSEReply([stream.body]))
        via_sdk = await run(sdk_source(stream.protocol, server))
        via_native = await run(native_source(stream.protocol, server))
        # Both requests really went over the socket, the native one without an SDK's headers.
        assert len(server.requests) == 2
        assert not any(k.startswith("x-stainless") for k in server.requests[1].headers)
    assert via_native[0] == via_sdk[0]  # the message (text, tool calls, usage, content blocks, ...)
    assert via_native[1] == via_sdk[1]  # every normalized event, in order, with its seq
    assert via_native[2] == via_sdk[2]  # the same typed error with the same message, or none


def test_corpus_is_not_empty() -> None:
    assert ROOT is not None, "$SCHWARM_STREAM_CORPUS names no corpus"
    assert len(STREAMS) > (30 if is_subset(ROOT) else 250)
