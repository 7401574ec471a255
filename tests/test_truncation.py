"""Streams that break: every way a body can end badly, for all three protocols, through the real SDKs.

A truncated stream never reports complete: it ends in a typed error carrying exactly the partial
message delivered so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import anthropic
import openai
import pytest

from schwarm_stream import (
    Chunk,
    InvalidToolArguments,
    LimitExceeded,
    Pipeline,
    ProtocolError,
    StreamError,
    StreamIncomplete,
    TransportError,
)
from schwarm_stream.sources import anthropic_messages, openai_chat, openai_responses
from schwarm_stream.testing.server import (
    JSONReply,
    ProviderServer,
    Split,
    SSEReply,
    anthropic_events,
    openai_chat_events,
    responses_events,
    sse,
)

HI: Any = [{"role": "user", "content": "hi"}]


@dataclass(frozen=True)
class Protocol:
    name: str
    route: str
    body: Callable[..., list[bytes]]  # body(texts, terminated=True, tools=()) -> events
    source: Callable[[ProviderServer], Any]
    tool_finish: str  # the finish reason of a tool-call turn
    length_finish: str  # the finish reason of a turn cut by the token limit


def _chat_body(
    texts: list[str], terminated: bool = True, tools: Any = (), finish: Any = "auto"
) -> list[bytes]:
    calls = [{"id": t["id"], "name": t["name"], "arguments": t["args"], "chunks": t["chunks"]} for t in tools]
    if not terminated:
        return openai_chat_events(texts, tool_calls=calls, finish_reason=None, usage=None, done=False)
    return openai_chat_events(texts, tool_calls=calls, finish_reason=finish)


def _anthropic_body(
    texts: list[str], terminated: bool = True, tools: Any = (), finish: Any = "auto"
) -> list[bytes]:
    uses = [{"id": t["id"], "name": t["name"], "input": t["args"], "chunks": t["chunks"]} for t in tools]
    if not terminated:
        return anthropic_events(texts, tool_uses=uses, stop_reason=None, stop=False)
    return anthropic_events(texts, tool_uses=uses, stop_reason=finish)


def _responses_body(
    texts: list[str], terminated: bool = True, tools: Any = (), finish: Any = "auto"
) -> list[bytes]:
    calls = [
        {"call_id": t["id"], "name": t["name"], "arguments": t["args"], "chunks": t["chunks"]} for t in tools
    ]
    status: Literal["completed", "incomplete"] | None = None
    if terminated:
        status = "incomplete" if finish not in ("auto", None) else "completed"
    return responses_events(texts, function_calls=calls, status=status)


def _oai(server: ProviderServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)


def _ant(server: ProviderServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="x", base_url=server.anthropic_base_url)


PROTOCOLS = [
    Protocol(
        "chat",
        "openai-chat",
        _chat_body,
        lambda srv: openai_chat(_oai(srv), model="m", messages=HI),
        "tool_calls",
        "length",
    ),
    Protocol(
        "anthropic",
        "anthropic-messages",
        _anthropic_body,
        lambda srv: anthropic_messages(_ant(srv), model="claude-test", max_tokens=9, messages=HI),
        "tool_use",
        "max_tokens",
    ),
    Protocol(
        "responses",
        "openai-responses",
        _responses_body,
        lambda srv: openai_responses(_oai(srv), model="m", input="hi"),
        "completed",
        "max_output_tokens",
    ),
]
P = pytest.mark.parametrize("proto", PROTOCOLS, ids=lambda p: p.name)


@pytest.fixture
def pipe(core_pipeline: Callable[..., Pipeline]) -> Pipeline:
    return core_pipeline()


async def fail(
    pipe: Pipeline, server: ProviderServer, proto: Protocol, reply: Any, *, read_to_the_end: bool = False
) -> tuple[StreamError, Any]:
    server.script(proto.route, reply)
    with pytest.raises(StreamError) as info:
        async with pipe.open(proto.source(server)) as s:
            async for _ in s:
                pass
    assert s.outcome == "error"
    assert info.value.partial is not None and info.value.partial.complete is False
    if not read_to_the_end:  # a body we stopped reading cannot go back to the keep-alive pool
        await server.wait_connections(0)
    source: Any = s.current_source  # an SDK source: close the client it was given
    await source.client.close()
    return info.value, s


async def sdk_accepts(proto: Protocol, server: ProviderServer, body: list[bytes]) -> None:
    """Iterate the same body with the SDK's own stream: it reports success (no exception)."""
    server.script(proto.route, SSEReply(body))
    if proto.name == "anthropic":
        async with _ant(server) as ant:
            async for _ in await ant.messages.create(model="m", max_tokens=9, messages=HI, stream=True):
                pass
        return
    async with _oai(server) as oai:
        if proto.name == "chat":
            async for _ in await oai.chat.completions.create(model="m", messages=HI, stream=True):
                pass
        else:
            async for _ in await oai.responses.create(model="m", input="hi", stream=True):
                pass


# --------------------------------------------------------------------------------------------------------


@P
async def test_clean_eof_without_terminator_is_incomplete_with_the_exact_partial(
    proto: Protocol, pipe: Pipeline, server: ProviderServer
) -> None:
    body = proto.body(["Hel", "lo, wö", "rld"], terminated=False)
    await sdk_accepts(proto, server, body)  # the SDK calls this a success
    err, s = await fail(pipe, server, proto, SSEReply(body), read_to_the_end=True)
    assert type(err) is StreamIncomplete and err.retryable
    assert err.partial is not None and err.partial.text == "Hello, wörld"
    assert s.message == err.partial and s.message.complete is False


@P
@pytest.mark.parametrize("end", ["truncate", "rst"])
async def test_a_broken_connection_is_a_transport_error_with_the_partial(
    proto: Protocol, end: str, pipe: Pipeline, server: ProviderServer
) -> None:
    body = proto.body(["one ", "two ", "three"])
    cut = next(e for e in body if b"two" in e)
    parts = body[: body.index(cut) + 1]
    err, _ = await fail(pipe, server, proto, SSEReply(parts, end=end))  # type: ignore[arg-type]
    assert isinstance(err, TransportError), repr(err)
    assert err.partial is not None and err.partial.text == "one two "
    assert err.__cause__ is not None


@P
async def test_malformed_json_is_a_protocol_error_with_its_byte_offset(
    proto: Protocol, pipe: Pipeline, server: ProviderServer
) -> None:
    body = proto.body(["good"])
    bad = b'data: {"type": "oops", \n\n'
    at = 3
    parts = [*body[:at], bad, *body[at:]]
    err, _ = await fail(pipe, server, proto, SSEReply(parts))
    assert type(err) is ProtocolError
    start = sum(len(p) for p in parts[:at])
    assert err.offset is not None and start < err.offset <= start + len(bad)
    assert f"byte {err.offset}" in str(err) and "invalid JSON" in str(err)


@P
async def test_data_that_is_not_an_object_is_a_protocol_error(
    proto: Protocol, pipe: Pipeline, server: ProviderServer
) -> None:
    body = proto.body(["good"])
    err, _ = await fail(pipe, server, proto, SSEReply([*body[:2], b"data: [1, 2]\n\n", *body[2:]]))
    assert type(err) is ProtocolError and "not a JSON object" in str(err)


@P
@pytest.mark.parametrize("held_back", [False, True], ids=["alone", "after-a-cut-character"])
async def test_invalid_utf8_is_a_protocol_error_at_the_exact_byte(
    proto: Protocol, held_back: bool, pipe: Pipeline, server: ProviderServer
) -> None:
    body = proto.body(["ok"])
    head = b"".join(body[:2])
    # "\xc3" starts a two-byte character; "\xff" can never appear in UTF-8.
    bad = b": comment \xc3" if held_back else b": comment "
    data = head + bad + b"\xff\n\n" + b"".join(body[2:])
    cut = len(head) + len(bad)  # the invalid byte arrives in its own read
    err, _ = await fail(pipe, server, proto, SSEReply([Split(data, [cut])]))
    assert type(err) is ProtocolError and "invalid UTF-8" in str(err)
    expected = len(head) + len(bad) - (1 if held_back else 0)
    assert err.offset == expected


@P
async def test_multibyte_characters_split_across_reads_are_reassembled(
    proto: Protocol, pipe: Pipeline, server: ProviderServer
) -> None:
    texts = ["Grüße ", "aus ", "東京 ", "🎉!"]
    data = b"".join(proto.body(texts))
    # cut inside every multibyte character
    cuts = [i for i in range(1, len(data)) if 0x80 <= data[i] < 0xC0]
    server.script(proto.route, SSEReply([Split(data, cuts)]))
    async with pipe.open(proto.source(server)) as s:
        message = await s.collect()
    assert message.text == "".join(texts) and message.complete


@P
async def test_an_html_page_instead_of_sse_is_a_protocol_error(
    proto: Protocol, pipe: Pipeline, server: ProviderServer
) -> None:
    page = b"<html><body>502 Bad Gateway</body></html>"
    err, _ = await fail(pipe, server, proto, JSONReply(200, page, headers={"content-type": "text/html"}))
    assert type(err) is ProtocolError and "text/html" in str(err) and "text/event-stream" in str(err)


@P
async def test_a_body_ending_inside_a_character_is_a_protocol_error(
    proto: Protocol, pipe: Pipeline, server: ProviderServer
) -> None:
    head = b"".join(proto.body(["ok"])[:2])
    err, _ = await fail(pipe, server, proto, SSEReply([head + b": x\xe6\x9d"]), read_to_the_end=True)
    assert type(err) is ProtocolError and err.offset == len(head) + 3


# -- tool calls -------------------------------------------------------------------------------------------

BROKEN = {"id": "call_1", "name": "get_weather", "args": '{"city": "Par', "chunks": ['{"city"', ': "Par']}


@P
async def test_completed_tool_call_with_broken_json_is_invalid_tool_arguments(
    proto: Protocol, pipe: Pipeline, server: ProviderServer
) -> None:
    if proto.name == "responses":
        body = proto.body([], tools=[BROKEN])  # response.completed with broken arguments
    else:
        body = proto.body([], tools=[BROKEN], finish=proto.tool_finish)
    err, _ = await fail(pipe, server, proto, SSEReply(body), read_to_the_end=True)
    assert type(err) is InvalidToolArguments and not err.retryable
    assert "call_1" in str(err) and "get_weather" in str(err)
    assert err.partial is not None
    [call] = err.partial.tool_calls
    assert (call.id, call.arguments, call.valid, call.parsed) == ("call_1", '{"city": "Par', False, None)
    assert call.error is not None and "character 9" in call.error


@P
async def test_tool_call_cut_by_the_token_limit_is_kept_invalid(
    proto: Protocol, pipe: Pipeline, server: ProviderServer
) -> None:
    server.script(proto.route, SSEReply(proto.body(["Let me"], tools=[BROKEN], finish=proto.length_finish)))
    async with pipe.open(proto.source(server)) as s:
        m = await s.collect()
    assert m.complete and m.finish_reason == proto.length_finish
    [call] = m.tool_calls
    assert (call.arguments, call.valid, call.parsed) == ('{"city": "Par', False, None)


# -- usage -----------------------------------------------------------------------------------------------


async def test_usage_missing_is_none_for_every_protocol(pipe: Pipeline, server: ProviderServer) -> None:
    chat, anth, resp = PROTOCOLS
    server.script(chat.route, SSEReply(openai_chat_events(["a"], usage=None)))
    start = {
        "type": "message_start",
        "message": {"id": "m", "type": "message", "role": "assistant", "model": "c", "content": []},
    }
    anth_body = [
        sse(start, "message_start"),
        sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "a"}}),
        sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
        sse({"type": "message_stop"}),
    ]
    server.script(anth.route, SSEReply(anth_body))
    resp_body = [
        sse({"type": "response.completed", "response": {"id": "r", "status": "completed", "usage": None}})
    ]
    server.script(resp.route, SSEReply(resp_body))
    for proto in (chat, anth, resp):
        async with pipe.open(proto.source(server)) as s:
            m = await s.collect()
        assert m.complete and m.usage is None, proto.name


# -- limits ----------------------------------------------------------------------------------------------


@P
async def test_limits_fail_the_stream_with_limit_exceeded(
    proto: Protocol, core_pipeline: Any, server: ProviderServer
) -> None:
    cases: list[tuple[dict[str, int], list[str], Any, str]] = [
        ({"max_event_bytes": 400}, ["ok ", "x" * 500], (), "max_event_bytes"),
        ({"max_message_bytes": 25}, ["0123456789"] * 4, (), "max_message_bytes"),
        (
            {"max_tool_arguments_bytes": 20},
            [],
            [{"id": "c", "name": "f", "args": '{"k": "' + "v" * 40 + '"}', "chunks": None}],
            "max_tool_arguments_bytes",
        ),
    ]
    for limits, texts, tools, which in cases:
        tools = [{**t, "chunks": [t["args"][i : i + 8] for i in range(0, len(t["args"]), 8)]} for t in tools]
        server.script(proto.route, SSEReply(proto.body(texts, tools=tools)))
        with pytest.raises(LimitExceeded) as info:
            async with core_pipeline(limits=limits).open(proto.source(server)) as s:
                await s.collect()
        assert info.value.limit == which and which in str(info.value)
        assert info.value.partial is not None and not info.value.partial.complete
        await server.wait_connections(0)


async def test_stream_that_reaches_the_consumer_before_truncation_is_exact(
    pipe: Pipeline, server: ProviderServer
) -> None:
    """What the consumer saw and the error's partial agree, chunk for chunk."""
    proto = PROTOCOLS[0]
    server.script(proto.route, SSEReply(proto.body(["a", "b", "c"], terminated=False)))
    seen: list[str] = []
    with pytest.raises(StreamIncomplete) as info:
        async with pipe.open(proto.source(server)) as s:
            async for ev in s:
                if isinstance(ev, Chunk):
                    seen.append(ev.text)
    assert info.value.partial is not None and info.value.partial.text == "".join(seen) == "abc"
