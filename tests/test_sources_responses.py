"""The OpenAI Responses source, through the real ``openai`` client over a loopback socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from schwarm_stream import Chunk, Pipeline, ProviderError, ResponseInfo
from schwarm_stream.sources import openai_responses
from schwarm_stream.testing.server import ProviderServer, SSEReply, responses_error_events, responses_events


@pytest.fixture
def pipe(core_pipeline: Callable[..., Pipeline]) -> Pipeline:
    return core_pipeline()


async def run(pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI, parts: list[Any]) -> Any:
    server.script("openai-responses", SSEReply(parts))
    async with pipe.open(openai_responses(oai, model="gpt-x", input="hi")) as s:
        events = [e async for e in s]
    return s, events


async def test_text_usage_and_status(pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    body = responses_events(["It is ", "sunny."], usage={"input_tokens": 3, "output_tokens": 4}, id="resp_9")
    s, events = await run(pipe, server, oai, body)
    m = s.message
    assert (m.text, m.finish_reason, m.id, m.complete) == ("It is sunny.", "completed", "resp_9", True)
    assert m.usage is not None and (m.usage.input_tokens, m.usage.output_tokens) == (3, 4)
    assert m.usage.extras["output_tokens_details"] == {"reasoning_tokens": 0}
    assert [type(e) for e in events].count(ResponseInfo) == 1  # created + in_progress: one info
    assert server.requests[0].json["stream"] is True


async def test_function_calls_use_call_id(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    calls: list[dict[str, Any]] = [
        {"id": "fc_1", "call_id": "call_A", "name": "get_weather", "arguments": {"city": "Oslo"}},
        {"id": "fc_2", "call_id": "call_B", "name": "get_time", "arguments": "{}", "chunks": ["{", "}"]},
    ]
    s, _ = await run(pipe, server, oai, responses_events(["Checking."], function_calls=calls))
    assert [(c.id, c.name, c.parsed) for c in s.message.tool_calls] == [
        ("call_A", "get_weather", {"city": "Oslo"}),
        ("call_B", "get_time", {}),
    ]
    assert s.message.text == "Checking."


async def test_reasoning_summary(pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    body = responses_events(["Done."], reasoning_summary_chunks=["Checked ", "the sky."])
    s, events = await run(pipe, server, oai, body)
    assert s.message.reasoning == "Checked the sky." and s.message.text == "Done."
    assert [e.kind for e in events if isinstance(e, Chunk)] == ["reasoning", "reasoning", "text"]


async def test_response_incomplete_is_terminal_with_its_reason(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    s, _ = await run(pipe, server, oai, responses_events(["cut "], status="incomplete"))
    assert s.message.complete and s.outcome == "complete"
    assert s.message.finish_reason == "max_output_tokens" and s.message.text == "cut "


@pytest.mark.parametrize("nested", [False, True], ids=["documented-shape", "recorded-shape"])
@pytest.mark.parametrize("failed", [True, False], ids=["with-failed", "error-only"])
async def test_error_events_are_in_band_provider_errors(
    pipe: Pipeline, nested: bool, failed: bool, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    head = responses_events(["par", "tial"], status=None)
    tail = responses_error_events(
        "model crashed", "server_error", sequence_number=len(head), nested=nested, failed=failed
    )
    server.script("openai-responses", SSEReply([*head, *tail]))
    with pytest.raises(ProviderError) as info:
        async with pipe.open(openai_responses(oai, model="gpt-x", input="hi")) as s:
            await s.collect()
    err = info.value
    assert (err.in_band, err.status_code, err.error_type) == (True, 500, "server_error")
    assert "model crashed" in str(err)
    assert err.partial is not None and err.partial.text == "partial" and not err.partial.complete


async def test_response_failed_alone_is_a_provider_error(
    pipe: Pipeline, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    server.script("openai-responses", SSEReply(responses_events(["x"], status="failed")))
    with pytest.raises(ProviderError) as info:
        async with pipe.open(openai_responses(oai, model="gpt-x", input="hi")) as s:
            await s.collect()
    assert info.value.in_band and info.value.status_code == 500
    assert "failed to generate" in str(info.value)
