"""The OpenAI Chat Completions source, through the real ``openai`` client over a loopback socket.

Bodies are built with the server's event builders or, for the quirks of OpenAI-compatible servers
(Gemini, DeepSeek, Azure), chunk by chunk as those servers send them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from schwarm_stream import Chunk, Pipeline, ProviderError, ToolCallDelta, Usage
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing.server import (
    JSONReply,
    ProviderServer,
    SSEReply,
    openai_chat_events,
    openai_error_chunk,
    sse,
)

HI: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture
def pipe(core_pipeline: Callable[..., Pipeline]) -> Pipeline:
    return core_pipeline()


def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m-1"}
    return sse({**body, "choices": choices, **extra})


def delta(d: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
    return chunk([{"index": index, "delta": d, "finish_reason": finish}])


DONE = b"data: [DONE]\n\n"


async def run(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI, parts: list[Any], **kw: Any
) -> Any:
    server.script("openai-chat", SSEReply(parts))
    async with pipe.open(openai_chat(oai, model="gpt-x", messages=HI, **kw)) as s:
        events = [ev async for ev in s]
    return s, events


async def test_text_usage_finish_and_identity(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 4,
        "total_tokens": 13,
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    s, events = await run(
        pipe, server, oai, openai_chat_events(["Hel", "lo ", "wörld"], usage=usage, model="m-7")
    )
    m = s.message
    assert (m.text, m.finish_reason, m.complete, m.id, m.model) == (
        "Hello wörld",
        "stop",
        True,
        "chatcmpl-test",
        "m-7",
    )
    assert m.usage is not None and (m.usage.input_tokens, m.usage.output_tokens) == (9, 4)
    assert m.usage.extras["prompt_tokens_details"] == {"cached_tokens": 2}
    assert [e.text for e in events if isinstance(e, Chunk)] == ["Hel", "lo ", "wörld"]
    req = server.requests[0].json
    assert req["stream"] is True and req["stream_options"] == {"include_usage": True}


async def test_include_usage_false_and_no_usage_gives_none(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    s, _ = await run(pipe, server, oai, openai_chat_events(["x"], usage=None), include_usage=False)
    assert s.message.usage is None  # never zeros
    assert "stream_options" not in server.requests[0].json


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_deltas(
    pipe: Pipeline, field: str, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    body = openai_chat_events(["The answer."], reasoning_chunks=["Let me ", "think."], reasoning_field=field)
    s, events = await run(pipe, server, oai, body)
    assert s.message.reasoning == "Let me think." and s.message.text == "The answer."
    kinds = [e.kind for e in events if isinstance(e, Chunk)]
    assert kinds == ["reasoning", "reasoning", "text"]
    assert [b.type for b in s.message.content] == ["reasoning", "text"]


async def test_refusal(pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    s, events = await run(pipe, server, oai, openai_chat_events(refusal_chunks=["I can't ", "help."]))
    assert s.message.refusal == "I can't help." and s.message.text == ""
    assert {e.kind for e in events if isinstance(e, Chunk)} == {"refusal"}
    assert s.message.to_openai()["refusal"] == "I can't help."


async def test_parallel_tool_calls_interleaved(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    parts = [
        delta({"role": "assistant", "content": None}),
        delta(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    },
                    {
                        "index": 1,
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "g", "arguments": '{"y"'},
                    },
                ]
            }
        ),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"x": '}}]}),
        delta({"tool_calls": [{"index": 1, "function": {"arguments": ": 2}"}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        delta({}, "tool_calls"),
        DONE,
    ]
    s, events = await run(pipe, server, oai, parts)
    calls = s.message.tool_calls
    assert [(c.id, c.name, c.arguments, c.parsed) for c in calls] == [
        ("call_a", "f", '{"x": 1}', {"x": 1}),
        ("call_b", "g", '{"y": 2}', {"y": 2}),
    ]
    assert s.message.finish_reason == "tool_calls"
    assert [d.index for d in events if isinstance(d, ToolCallDelta)] == [0, 1, 0, 1, 0]
    assert s.message.to_openai()["tool_calls"][1] == {
        "id": "call_b",
        "type": "function",
        "function": {"name": "g", "arguments": '{"y": 2}'},
    }


async def test_tool_calls_without_index_gemini_style(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    parts = [
        delta(
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
                    {"id": "c2", "type": "function", "function": {"name": "g", "arguments": '{"b":2}'}},
                ],
            }
        ),
        delta(
            {"tool_calls": [{"id": "c3", "type": "function", "function": {"name": "h", "arguments": "{}"}}]}
        ),
        delta({}, "tool_calls"),
        DONE,
    ]
    s, _ = await run(pipe, server, oai, parts)
    assert [(c.id, c.name, c.parsed, c.index) for c in s.message.tool_calls] == [
        ("c1", "f", {"a": 1}, 0),
        ("c2", "g", {"b": 2}, 1),
        ("c3", "h", {}, 2),
    ]


async def test_index_less_fragments_without_id_continue_the_last_call(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    parts = [
        delta({"tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"a"'}}]}),
        delta({"tool_calls": [{"function": {"arguments": ": 1}"}}]}),
        delta({}, "tool_calls"),
        DONE,
    ]
    s, _ = await run(pipe, server, oai, parts)
    assert [(c.id, c.arguments) for c in s.message.tool_calls] == [("c1", '{"a": 1}')]


async def test_repeated_id_and_name_per_delta_deepseek_style(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    def frag(args: str) -> bytes:
        call = {
            "index": 0,
            "id": "call_0",
            "type": "function",
            "function": {"name": "lookup", "arguments": args},
        }
        return delta({"tool_calls": [call]})

    parts = [frag(""), frag('{"q": '), frag('"paris"'), frag("}"), delta({}, "tool_calls"), DONE]
    s, _ = await run(pipe, server, oai, parts)
    [call] = s.message.tool_calls
    assert (call.id, call.name, call.parsed) == ("call_0", "lookup", {"q": "paris"})


async def test_index_gaps_and_first_index_one(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    def first(i: int, cid: str, args: str) -> bytes:
        return delta(
            {"tool_calls": [{"index": i, "id": cid, "function": {"name": f"t{i}", "arguments": args}}]}
        )

    parts = [first(3, "c3", '{"z":3}'), first(1, "c1", '{"z":1}'), delta({}, "tool_calls"), DONE]
    s, _ = await run(pipe, server, oai, parts)
    # ordered by index, no phantom calls for the missing indices
    assert [(c.index, c.id, c.name, c.parsed) for c in s.message.tool_calls] == [
        (1, "c1", "t1", {"z": 1}),
        (3, "c3", "t3", {"z": 3}),
    ]


async def test_same_index_with_a_new_id_starts_a_new_call(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    def call(cid: str, name: str, args: str) -> bytes:
        return delta({"tool_calls": [{"index": 0, "id": cid, "function": {"name": name, "arguments": args}}]})

    parts = [call("c1", "f", "{}"), call("c2", "g", '{"k":1}'), delta({}, "tool_calls"), DONE]
    s, _ = await run(pipe, server, oai, parts)
    assert [(c.id, c.name, c.parsed) for c in s.message.tool_calls] == [
        ("c1", "f", {}),
        ("c2", "g", {"k": 1}),
    ]


async def test_usage_chunk_with_empty_choices(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    parts = [
        delta({"role": "assistant", "content": "hi"}),
        delta({}, "stop"),
        chunk([], usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}),
        DONE,
    ]
    s, events = await run(pipe, server, oai, parts)
    [usage] = [e for e in events if isinstance(e, Usage)]
    assert (usage.input_tokens, usage.output_tokens) == (3, 1)
    assert s.message.usage is not None and s.message.usage.total_tokens == 4


async def test_azure_prompt_filter_chunk_is_ignored(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    azure_first = sse(
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
        }
    )
    s, _events = await run(pipe, server, oai, [azure_first, *openai_chat_events(["ok"])])
    assert s.message.text == "ok" and s.message.id == "chatcmpl-test" and s.message.model == "gpt-4o-mini"
    assert s.message.complete


async def test_in_band_error_chunk_is_a_provider_error_with_the_partial(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    parts = [*openai_chat_events(["par", "tial"])[:3], openai_error_chunk("upstream died", "server_error")]
    server.script("openai-chat", SSEReply(parts))
    with pytest.raises(ProviderError) as info:
        async with pipe.open(openai_chat(oai, model="gpt-x", messages=HI)) as s:
            await s.collect()
    err = info.value
    assert err.in_band is True and err.status_code == 500 and err.error_type == "server_error"
    assert "upstream died" in str(err) and err.retryable
    assert err.partial is not None and err.partial.text == "partial" and not err.partial.complete
    assert s.outcome == "error"


async def test_http_429_is_a_provider_error_with_retry_after(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    body = {"error": {"message": "slow down", "type": "rate_limit_error", "code": None}}
    server.script("openai-chat", JSONReply(429, body, headers={"retry-after-ms": "1500"}))
    with pytest.raises(ProviderError) as info:
        async with pipe.open(openai_chat(oai, model="gpt-x", messages=HI)) as s:
            await s.collect()
    err = info.value
    assert (err.status_code, err.retry_after, err.in_band, err.retryable) == (429, 1.5, False, True)
    assert isinstance(err.__cause__, openai.RateLimitError)
    assert len(server.requests) == 1  # the SDK's own retries are off


async def test_finish_reason_without_done_is_complete(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    s, _ = await run(pipe, server, oai, openai_chat_events(["a"], usage=None, done=False))
    assert s.message.complete and s.outcome == "complete" and s.message.finish_reason == "stop"


async def test_default_open_and_plain_client_options(pipe: Pipeline, server: ProviderServer) -> None:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)  # max_retries default
    server.script("openai-chat", JSONReply(503, {"error": {"message": "busy", "type": "server_error"}}))
    with pytest.raises(ProviderError):
        async with pipe.open(openai_chat(client, model="m", messages=HI)) as s:
            await s.collect()
    assert len(server.requests) == 1  # the source switched the SDK's retries off
    await client.close()


def test_openai_chat_needs_model_and_messages(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(TypeError, match="model"):
        openai_chat(oai, messages=HI)
