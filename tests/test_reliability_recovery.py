"""Recovery strategies after the commit point: restart, continue, fallback, resume, partial, raise.

Each with its exact guarantee (research/reliability.md §1.8): restart equals the last attempt after a
Reset; resume is byte-exact; continue and fallback are flagged; partial and raise carry exactly what
was delivered. A tool call delivered whole is never replayed silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from schwarm_stream import ProviderError, Reset, StreamIncomplete, TransportError
from schwarm_stream.builtins.recovery import final_tool_calls, with_fallbacks
from schwarm_stream.testing.server import (
    JSONReply,
    ProviderServer,
    SSEReply,
    anthropic_events,
    events_after,
    openai_chat_events,
    responses_events,
)
from tests.support.faults import (
    consume,
    content_indices,
    fault_pipeline,
    golden,
    golden_events,
    view,
)

TOOL = {"name": "get_weather", "arguments": {"city": "Paris"}}


pytestmark = pytest.mark.usefixtures("no_waits")


@pytest.fixture
def source(sdk_sources: Callable[..., Any]) -> Callable[..., Any]:
    return sdk_sources


# -- restart ---------------------------------------------------------------------------------------


async def test_restart_emits_a_reset_before_the_new_attempt_and_equals_the_last_attempt(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    first = openai_chat_events(["An", "swer ", "one"])
    second = openai_chat_events(["A different", " answer"])
    server.script("openai-chat", SSEReply(first[:3], end="rst"), SSEReply(second))
    pipe = fault_pipeline(recovery={"mid_stream": "restart"})
    seen, error = await consume(pipe.open(source("openai-chat")))
    assert error is None
    kinds = [type(e).__name__ for e in seen.events]
    reset_at = kinds.index("Reset")
    assert "Chunk" in kinds[:reset_at] and "Chunk" in kinds[reset_at:]
    reset = seen.events[reset_at]
    assert isinstance(reset, Reset) and reset.strategy == "restart" and reset.attempt == 2
    assert seen.text() == "A different answer"  # only what came after the reset counts
    assert seen.seqs_contiguous()


async def test_max_recoveries_bounds_restarts(server: ProviderServer, source: Callable[..., Any]) -> None:
    events = golden_events("openai-chat")
    cut = content_indices("openai-chat", events)[2]
    server.script("openai-chat", *[SSEReply(events[:cut], end="rst")] * 3)
    pipe = fault_pipeline(recovery={"mid_stream": "restart", "max_recoveries": 2})
    seen, error = await consume(pipe.open(source("openai-chat")))
    assert isinstance(error, TransportError) and error.attempts == 3
    assert seen.resets == 2 and seen.mismatch(error.partial) is None


async def test_a_failure_before_content_after_a_restart_is_a_plain_retry(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("anthropic-messages", tool=TOOL)
    cut = content_indices("anthropic-messages", events)[2]
    overloaded = JSONReply(529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    server.script("anthropic-messages", SSEReply(events[:cut], end="rst"), overloaded, SSEReply(events))
    pipe = fault_pipeline(recovery={"mid_stream": "restart", "max_recoveries": 1})
    async with pipe.open(source("anthropic-messages")) as stream:
        message = await stream.collect()
    assert stream.resets == 1  # the reset put the stream back before the commit point: no second reset
    assert view(message, "anthropic-messages") == golden("anthropic-messages", events)


async def test_a_tool_call_delivered_whole_is_never_replayed_by_restart(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("anthropic-messages", tool=TOOL)
    stop = next(i for i, e in enumerate(events) if b"message_delta" in e)  # tool block done, no stop
    server.script("anthropic-messages", SSEReply(events[:stop], end="rst"))
    pipe = fault_pipeline(recovery={"mid_stream": ["restart", "continue", "fallback"]})
    seen, error = await consume(pipe.open(source("anthropic-messages")))
    assert isinstance(error, TransportError) and len(server.requests) == 1
    assert error.partial is not None and [t.name for t in final_tool_calls(error.partial)] == ["get_weather"]
    assert seen.mismatch(error.partial) is None and seen.resets == 0
    # opting in replays it, after an explicit reset
    server.script("anthropic-messages", SSEReply(events[:stop], end="rst"), SSEReply(events))
    pipe = fault_pipeline(recovery={"mid_stream": "restart", "replay_tool_calls": True})
    seen, error = await consume(pipe.open(source("anthropic-messages")))
    assert error is None and seen.resets == 1


def test_final_tool_calls_rule() -> None:
    from schwarm_stream import ContentBlock, Message, ToolCall

    def msg(args: str, *, finish: str | None = None, after: bool = False) -> Message:
        call = ToolCall(id="c", name="f", arguments=args, index=0, error=None if args.endswith("}") else "x")
        blocks = [ContentBlock(type="tool_call", index=0, tool_call=call)]
        if after:
            blocks.append(ContentBlock(type="text", index=1, text="more"))
        return Message(tool_calls=[call], content=blocks, finish_reason=finish)

    assert final_tool_calls(msg('{"a": 1}')) != []  # complete JSON
    assert final_tool_calls(msg('{"a": ')) == []  # still streaming
    assert final_tool_calls(msg('{"a": ', after=True)) != []  # followed by another block
    assert final_tool_calls(msg('{"a": ', finish="tool_use")) != []


# -- continue --------------------------------------------------------------------------------------


async def test_continue_asks_the_model_to_go_on_and_is_flagged(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    first = openai_chat_events(["The quick ", "brown fox ", "jumps"])
    rest = openai_chat_events([" over the lazy dog."])
    server.script("openai-chat", SSEReply(first[:3], end="truncate"), SSEReply(rest))
    pipe = fault_pipeline(recovery={"mid_stream": "continue"})
    async with pipe.open(source("openai-chat")) as stream:
        message = await stream.collect()
    assert message.complete and message.recovery == "continued"
    assert message.text == "The quick brown fox  over the lazy dog."
    assert stream.resets == 0
    sent = server.requests[1].json["messages"]
    assert sent[-2] == {"role": "assistant", "content": "The quick brown fox "}
    assert sent[-1]["role"] == "user" and "cut off" in sent[-1]["content"]


async def test_continue_uses_assistant_prefill_where_the_model_allows_it(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    first = anthropic_events(["Once upon ", "a time"])
    cut = content_indices("anthropic-messages", first)[1]
    server.script(
        "anthropic-messages", SSEReply(first[:cut], end="rst"), SSEReply(anthropic_events([" there"]))
    )
    pipe = fault_pipeline(recovery={"mid_stream": "continue"})
    src = source("anthropic-messages", model="claude-3-5-haiku-20241022")
    async with pipe.open(src) as stream:
        message = await stream.collect()
    assert message.recovery == "continued" and message.text == "Once upon  there"
    assert server.requests[1].json["messages"][-1] == {"role": "assistant", "content": "Once upon"}


async def test_continue_is_refused_with_a_tool_call_in_flight_and_the_next_strategy_applies(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("openai-chat", tool=TOOL)
    cut = content_indices("openai-chat", events)[-2]  # inside the arguments
    server.script("openai-chat", SSEReply(events[:cut], end="rst"), SSEReply(events))
    pipe = fault_pipeline(recovery={"mid_stream": ["continue", "restart"]})
    async with pipe.open(source("openai-chat")) as stream:
        message = await stream.collect()
    assert message.recovery == "restarted"
    assert view(message, "openai-chat") == golden("openai-chat", events)
    assert len(server.requests[1].json["messages"]) == 1  # the original request, not a continuation


# -- fallback --------------------------------------------------------------------------------------


def _openai_cut_after_commit_then_anthropic(
    server: ProviderServer, source: Callable[..., Any]
) -> tuple[Any, Any]:
    """A fallback chain whose OpenAI stream resets after content, and the pipeline that falls back."""
    chat = golden_events("openai-chat")
    ant = golden_events("anthropic-messages", "Another model's answer.")
    server.script("openai-chat", SSEReply(chat[: content_indices("openai-chat", chat)[2]], end="rst"))
    server.script("anthropic-messages", SSEReply(ant))
    chain = with_fallbacks(source("openai-chat"), source("anthropic-messages"))
    return chain, fault_pipeline(recovery={"mid_stream": "fallback"})


async def test_fallback_chain_after_the_commit_point_resets_and_is_flagged(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    chain, pipe = _openai_cut_after_commit_then_anthropic(server, source)
    seen, error = await consume(pipe.open(chain))
    assert error is None and seen.resets == 1
    assert seen.events[-1].seq == len(seen.events)
    assert seen.text() == "Another model's answer."
    with pytest.raises(TypeError):
        with_fallbacks(source("openai-chat"))


async def test_after_a_fallback_the_message_names_the_provider_that_answered(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    chain, pipe = _openai_cut_after_commit_then_anthropic(server, source)
    async with pipe.open(chain) as stream:
        message = await stream.collect()
    assert message.text == "Another model's answer."
    # the answer came from Anthropic: provider and model must agree (they used to say openai + claude)
    assert (message.provider, stream.current_source.provider) == ("anthropic", "anthropic")


async def test_fallback_without_a_fallback_left_raises_with_the_partial(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    chat = golden_events("openai-chat")
    server.script("openai-chat", SSEReply(chat[:4], end="rst"))
    seen, error = await consume(
        fault_pipeline(recovery={"mid_stream": "fallback"}).open(source("openai-chat"))
    )
    assert isinstance(error, TransportError) and seen.mismatch(error.partial) is None


# -- resume ----------------------------------------------------------------------------------------


async def test_resume_is_byte_exact_with_starting_after(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = responses_events(
        ["Resu", "med ", "exactly", "."], function_calls=[{**TOOL, "call_id": "call_0"}]
    )
    cut = content_indices("openai-responses", events)[2]
    server.script("openai-responses", SSEReply(events[:cut], end="rst"))
    last_seq = cut - 1
    # the provider replays from the cursor; one duplicate before it is dropped (row 20)
    server.script(
        "openai-responses-retrieve", SSEReply(events[cut - 1 : cut] + events_after(events, last_seq))
    )
    pipe = fault_pipeline(recovery={"mid_stream": ["resume", "restart"]})
    src = source("openai-responses", background=True, store=True)
    seen, error = await consume(pipe.open(src))
    assert error is None and seen.resets == 0
    assert server.requests[1].query == {"stream": "true", "starting_after": str(last_seq)}
    async_view = seen.text()
    assert async_view == "Resumed exactly."
    assert seen.seqs_contiguous()


async def test_resume_message_equals_golden(server: ProviderServer, source: Callable[..., Any]) -> None:
    events = golden_events("openai-responses", tool=TOOL)
    cut = content_indices("openai-responses", events)[-1]
    server.script("openai-responses", SSEReply(events[:cut], end="truncate"))
    server.script("openai-responses-retrieve", SSEReply(events_after(events, cut - 1)))
    pipe = fault_pipeline(recovery={"mid_stream": "resume"})
    async with pipe.open(source("openai-responses", background=True, store=True)) as stream:
        message = await stream.collect()
    assert message.recovery == "resumed"
    assert view(message, "openai-responses") == golden("openai-responses", events)


async def test_resume_without_background_mode_falls_through_to_the_next_strategy(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("openai-responses")
    cut = content_indices("openai-responses", events)[2]
    server.script("openai-responses", SSEReply(events[:cut], end="rst"))
    _, error = await consume(
        fault_pipeline(recovery={"mid_stream": ["resume", "partial"]}).open(source("openai-responses"))
    )
    assert error is None  # partial: no exception
    assert len(server.requests) == 1


async def test_row22_resume_of_an_unknown_response_is_a_typed_error_not_a_partial_replay(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("openai-responses")
    cut = content_indices("openai-responses", events)[2]
    server.script("openai-responses", SSEReply(events[:cut], end="rst"))
    gone = JSONReply(404, {"error": {"type": "invalid_request_error", "message": "Response not found"}})
    server.script("openai-responses-retrieve", gone)
    seen, error = await consume(
        fault_pipeline(recovery={"mid_stream": "resume"}).open(
            source("openai-responses", background=True, store=True)
        )
    )
    assert isinstance(error, ProviderError) and error.status_code == 404
    assert seen.mismatch(error.partial) is None and not error.partial.complete  # type: ignore[union-attr]
    assert [r.route for r in server.requests] == ["openai-responses", "openai-responses-retrieve"]


# -- partial / raise -------------------------------------------------------------------------------


async def test_partial_ends_without_an_exception_and_complete_false(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("anthropic-messages")
    cut = content_indices("anthropic-messages", events)[3]
    server.script("anthropic-messages", SSEReply(events[:cut], end="eof"))
    pipe = fault_pipeline(recovery={"mid_stream": "partial"})
    seen, error = await consume(pipe.open(source("anthropic-messages")))
    assert error is None
    stream = pipe.open(source("anthropic-messages"))
    server.script("anthropic-messages", SSEReply(events[:cut], end="eof"))
    async with stream:
        message = await stream.collect()
    assert not message.complete and stream.outcome == "partial"
    assert isinstance(stream.error, StreamIncomplete)
    assert message.text == seen.text()


async def test_on_error_recovers_a_class_that_is_not_retryable(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("openai-chat", tool={"name": "f", "arguments": '{"a": '})
    server.script("openai-chat", SSEReply(events))
    pipe = fault_pipeline(recovery={"on_error": {"invalid_tool_arguments": "partial"}})
    async with pipe.open(source("openai-chat")) as stream:
        message = await stream.collect()
    assert stream.outcome == "partial" and not message.tool_calls[0].valid
