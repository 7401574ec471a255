"""Property: any re-cutting of the same content gives the identical message.

Content (text, reasoning, tool-call arguments) is cut differently by each protocol's event builder,
and the whole SSE body is cut at arbitrary bytes (inside multibyte characters, between CR and LF,
inside ``data:``) with :class:`Split`; every variant goes through the real SDK client over a socket.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import anthropic
import openai
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schwarm_stream import Message, Pipeline
from schwarm_stream._manager import BUILTIN_PLUGINS, ESSENTIAL_PLUGINS
from schwarm_stream.sources import Source, anthropic_messages, openai_chat, openai_responses
from schwarm_stream.testing.server import (
    ProviderServer,
    Split,
    SSEReply,
    anthropic_events,
    openai_chat_events,
    responses_events,
)

HI: Any = [{"role": "user", "content": "hi"}]
PIPE = Pipeline(
    config={"plugins": {"autoload": False, "disable": sorted(set(BUILTIN_PLUGINS) - ESSENTIAL_PLUGINS)}}
)
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=24)
ARGS = st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=6), max_size=3).map(
    lambda d: json.dumps(d, ensure_ascii=False)
)


@st.composite
def cuts(draw: Any, s: str) -> list[str]:
    """``s`` cut into non-empty pieces at arbitrary positions (``[]`` for an empty string)."""
    if not s:
        return []
    points = sorted(draw(st.sets(st.integers(1, max(1, len(s) - 1)), max_size=6))) if len(s) > 1 else []
    bounds = [0, *points, len(s)]
    return [s[a:b] for a, b in itertools.pairwise(bounds) if b > a]


# Each protocol: how to build a body from pieces, and how to open it.
def chat_body(text: list[str], reasoning: list[str], args: list[str], joined_args: str) -> list[bytes]:
    calls = [{"id": "call_1", "name": "f", "arguments": joined_args, "chunks": args}]
    return openai_chat_events(text, reasoning_chunks=reasoning, tool_calls=calls)


def anthropic_body(text: list[str], reasoning: list[str], args: list[str], joined_args: str) -> list[bytes]:
    uses = [{"id": "toolu_1", "name": "f", "input": joined_args, "chunks": args}]
    return anthropic_events(text, thinking_chunks=reasoning, tool_uses=uses)


def responses_body(text: list[str], reasoning: list[str], args: list[str], joined_args: str) -> list[bytes]:
    calls = [{"call_id": "call_1", "name": "f", "arguments": joined_args, "chunks": args}]
    return responses_events(text, reasoning_summary_chunks=reasoning, function_calls=calls)


PROTOCOLS: dict[str, tuple[str, Callable[..., list[bytes]]]] = {
    "chat": ("openai-chat", chat_body),
    "anthropic": ("anthropic-messages", anthropic_body),
    "responses": ("openai-responses", responses_body),
}


def run(protocol: str, parts: list[Any]) -> Message:
    """One request through the real SDK client to a fresh loopback server; the message."""

    async def go() -> Message:
        async with ProviderServer() as server:
            server.script(PROTOCOLS[protocol][0], SSEReply(parts))
            if protocol == "anthropic":
                client: Any = anthropic.AsyncAnthropic(api_key="x", base_url=server.anthropic_base_url)
                source: Source = anthropic_messages(client, model="claude-test", max_tokens=9, messages=HI)
            else:
                client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
                source = (
                    openai_chat(client, model="m", messages=HI)
                    if protocol == "chat"
                    else openai_responses(client, model="m", input="hi")
                )
            async with client, PIPE.open(source) as s:
                return await s.collect()

    return asyncio.run(go())


def view(m: Message) -> dict[str, Any]:
    return m.model_dump()


def check_recut(protocol: str, data: Any, text: str, reasoning: str, args: str) -> None:
    build = PROTOCOLS[protocol][1]
    whole = run(protocol, build([text] if text else [], [reasoning] if reasoning else [], [args], args))
    recut = run(
        protocol,
        build(data.draw(cuts(text)), data.draw(cuts(reasoning)), data.draw(cuts(args)) or [args], args),
    )
    assert view(recut) == view(whole)
    assert whole.complete and whole.text == text and whole.reasoning == reasoning
    assert [c.arguments for c in whole.tool_calls] == [args] and whole.tool_calls[0].parsed == json.loads(
        args
    )


@SETTINGS
@given(data=st.data(), text=TEXT, reasoning=TEXT, args=ARGS)
def test_chat_recut_gives_the_identical_message(data: Any, text: str, reasoning: str, args: str) -> None:
    check_recut("chat", data, text, reasoning, args)


@SETTINGS
@given(data=st.data(), text=TEXT, reasoning=TEXT, args=ARGS)
def test_anthropic_recut_gives_the_identical_message(data: Any, text: str, reasoning: str, args: str) -> None:
    check_recut("anthropic", data, text, reasoning, args)


@SETTINGS
@given(data=st.data(), text=TEXT, reasoning=TEXT, args=ARGS)
def test_responses_recut_gives_the_identical_message(data: Any, text: str, reasoning: str, args: str) -> None:
    check_recut("responses", data, text, reasoning, args)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    protocol=st.sampled_from(sorted(PROTOCOLS)),
    text=TEXT.filter(bool),
    crlf=st.booleans(),
)
def test_byte_splits_of_the_body_give_the_identical_message(
    data: Any, protocol: str, text: str, crlf: bool
) -> None:
    build = PROTOCOLS[protocol][1]
    body = b"".join(build([text], [], ['{"k": 1}'], '{"k": 1}'))
    if crlf:  # CRLF line ends, so a cut can fall between CR and LF
        body = body.replace(b"\n", b"\r\n")
    points = sorted(data.draw(st.sets(st.integers(1, len(body) - 1), max_size=12)))
    whole = run(protocol, [body])
    split = run(protocol, [Split(body, points)])
    assert view(split) == view(whole)
    assert whole.complete and whole.text == text
