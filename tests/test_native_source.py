"""The native fast path (httpx, no SDK) against the loopback provider server: faults and recovery."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

import schwarm_stream
from schwarm_stream import (
    Chunk,
    ProtocolError,
    ProviderError,
    Recovery,
    Reset,
    StreamCancelled,
    StreamIncomplete,
    TransportError,
    hookimpl,
)
from schwarm_stream.sources import (
    NativeOpenAIChatSource,
    native_anthropic,
    native_openai_chat,
    native_openai_responses,
)
from schwarm_stream.sources.native import status_error
from schwarm_stream.testing.server import (
    JSONReply,
    ProviderServer,
    SSEReply,
    Stall,
    anthropic_events,
    events_after,
    openai_chat_events,
    responses_events,
)

MESSAGES = [{"role": "user", "content": "hi"}]
# The source's own behaviour, one attempt per stream unless a test's plugin decides otherwise.
NO_RETRY = {"plugins": {"autoload": False, "disable": ["retry", "recovery"]}}


def open_(source: Any, plugins: Any = ()) -> Any:
    return schwarm_stream.open(source, plugins=list(plugins), config=NO_RETRY)


def chat(server: ProviderServer, **kw: Any) -> NativeOpenAIChatSource:
    return native_openai_chat(server.openai_base_url, "sk-test", model="m", messages=MESSAGES, **kw)


class Decide:
    """A stream_error plugin answering each failure with the next scripted decision."""

    def __init__(self, *decisions: Recovery) -> None:
        self.decisions = list(decisions)
        self.errors: list[BaseException] = []

    @hookimpl
    def stream_error(self, stream: Any, error: BaseException) -> Recovery | None:
        self.errors.append(error)
        return self.decisions.pop(0) if self.decisions else None


@pytest.fixture
async def server() -> Any:
    async with ProviderServer() as s:
        yield s


# -- requests ---------------------------------------------------------------------


async def test_chat_request_is_the_protocols(server: ProviderServer) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["Hel", "lo"])))
    source = chat(server, temperature=0.5, headers={"x-team": "a"}, extra_body={"provider": {"order": ["x"]}})
    message = await open_(source).collect()
    assert message.text == "Hello" and message.complete
    req = server.requests[0]
    assert req.path == "/v1/chat/completions" and req.method == "POST"
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.headers["accept"] == "text/event-stream"
    assert req.headers["x-team"] == "a"
    assert req.json == {
        "model": "m",
        "messages": MESSAGES,
        "temperature": 0.5,
        "provider": {"order": ["x"]},
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_anthropic_request_and_message(server: ProviderServer) -> None:
    server.script("anthropic-messages", SSEReply(anthropic_events(["Hi", " there"])))
    source = native_anthropic(
        server.anthropic_base_url, "ak", model="claude-x", max_tokens=9, messages=MESSAGES
    )
    message = await open_(source).collect()
    assert message.text == "Hi there" and message.finish_reason == "end_turn"
    req = server.requests[0]
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == "ak" and req.headers["anthropic-version"] == "2023-06-01"
    assert req.json["stream"] is True and req.json["max_tokens"] == 9


def test_constructors_reject_bad_arguments() -> None:
    with pytest.raises(TypeError, match="model"):
        native_openai_chat("http://127.0.0.1:1/v1", "k", messages=MESSAGES)
    with pytest.raises(TypeError, match="max_tokens"):
        native_anthropic("http://127.0.0.1:1", "k", model="m", messages=MESSAGES)
    with pytest.raises(ValueError, match="base_url"):
        native_openai_chat("127.0.0.1:1/v1", "k", model="m", messages=MESSAGES)


async def test_a_shared_client_reuses_its_connection(server: ProviderServer) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["a"])), SSEReply(openai_chat_events(["b"])))
    async with httpx.AsyncClient() as client:
        for expected in ("a", "b"):
            message = await open_(chat(server, client=client)).collect()
            assert message.text == expected
        assert not client.is_closed  # the caller's client is never closed by the source
    assert server.requests[0].connection_id == server.requests[1].connection_id


# -- status errors and retry headers ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "retry_after", "should_retry", "retryable"),
    [
        (
            429,
            {"retry-after-ms": "1500"},
            {"error": {"type": "rate_limit_error", "message": "slow"}},
            1.5,
            None,
            True,
        ),
        (
            429,
            {"retry-after": "3"},
            {"error": {"type": "insufficient_quota", "message": "pay"}},
            3.0,
            False,
            False,
        ),
        (
            503,
            {"x-should-retry": "false"},
            {"error": {"type": "api_error", "message": "down"}},
            None,
            False,
            False,
        ),
        (
            400,
            {"x-should-retry": "true"},
            {"error": {"type": "invalid_request_error", "message": "bad"}},
            None,
            True,
            True,
        ),
        (401, {}, {"error": {"type": "authentication_error", "message": "who"}}, None, None, False),
    ],
)
async def test_status_errors_are_typed_with_retry_hints(
    server: ProviderServer,
    status: int,
    headers: dict[str, str],
    body: dict[str, Any],
    retry_after: float | None,
    should_retry: bool | None,
    retryable: bool,
) -> None:
    server.script("openai-chat", JSONReply(status, body, headers=headers))
    with pytest.raises(ProviderError) as info:
        await open_(chat(server)).collect()
    err = info.value
    assert err.status_code == status
    assert err.error_type == body["error"]["type"]
    assert err.retry_after == retry_after
    assert err.should_retry is should_retry
    assert err.retryable is retryable
    assert body["error"]["message"] in str(err)
    assert not err.in_band


def test_status_error_redacts_keys_and_keeps_non_json_bodies() -> None:
    err = status_error(502, {}, b"<html>bad gateway sk-abcdefghijkl</html>", provider="openai")
    assert err.status_code == 502 and err.retryable
    assert "sk-abcdefghijkl" not in str(err) and "[redacted]" in str(err)
    assert isinstance(err.body, str)


async def test_an_html_page_with_status_200_is_a_protocol_error(server: ProviderServer) -> None:
    server.script("openai-chat", JSONReply(200, b"<html>proxy</html>", headers={"content-type": "text/html"}))
    with pytest.raises(ProtocolError, match="text/event-stream"):
        await open_(chat(server)).collect()


async def test_a_retry_decision_reopens_the_native_source(server: ProviderServer) -> None:
    server.script(
        "openai-chat",
        JSONReply(
            529, {"error": {"type": "overloaded_error", "message": "busy"}}, headers={"retry-after": "0"}
        ),
        SSEReply(openai_chat_events(["ok"])),
    )
    plugin = Decide(Recovery("retry"))
    message = await open_(chat(server), [plugin]).collect()
    assert message.text == "ok" and message.complete
    assert isinstance(plugin.errors[0], ProviderError) and plugin.errors[0].status_code == 529
    assert len(server.requests) == 2


async def test_the_builtin_retry_plugin_honours_retry_after_on_the_native_path(
    server: ProviderServer,
) -> None:
    server.script(
        "openai-chat",
        JSONReply(
            429, {"error": {"type": "rate_limit_error", "message": "slow"}}, headers={"retry-after-ms": "10"}
        ),
        SSEReply(openai_chat_events(["after the wait"])),
    )
    config = {"plugins": {"autoload": False}, "retry": {"initial_wait": 0.0, "jitter": 0.0}}
    async with schwarm_stream.open(chat(server), config=config) as s:
        message = await s.collect()
    assert message.text == "after the wait" and message.complete
    assert s.attempt == 2 and len(server.requests) == 2


# -- truncation ------------------------------------------------------------------------


async def test_clean_eof_without_terminator_is_incomplete(server: ProviderServer) -> None:
    events = openai_chat_events(["Hel", "lo"], finish_reason=None, done=False)
    server.script("openai-chat", SSEReply(events))
    with pytest.raises(StreamIncomplete) as info:
        await open_(chat(server)).collect()
    assert info.value.partial is not None and info.value.partial.text == "Hello"
    assert not info.value.partial.complete


@pytest.mark.parametrize("end", ["truncate", "rst"])
async def test_a_broken_connection_is_a_transport_error_with_the_partial(
    server: ProviderServer, end: str
) -> None:
    events = openai_chat_events(["Hel", "lo", " world"], finish_reason=None, done=False)
    server.script("openai-chat", SSEReply(events, end=end))  # type: ignore[arg-type]
    with pytest.raises(TransportError) as info:
        await open_(chat(server)).collect()
    assert info.value.partial is not None and info.value.partial.text == "Hello world"


async def test_a_restart_after_a_break_resets_and_completes(server: ProviderServer) -> None:
    broken = openai_chat_events(["par", "tial"], finish_reason=None, done=False)
    server.script("openai-chat", SSEReply(broken, end="truncate"), SSEReply(openai_chat_events(["whole"])))
    got: list[Any] = []
    async with open_(chat(server), [Decide(Recovery("restart"))]) as s:
        async for ev in s:
            got.append(ev)
    assert any(isinstance(e, Reset) for e in got)
    assert s.message.text == "whole" and s.message.recovery == "restarted"


async def test_continuation_asks_for_the_rest(server: ProviderServer) -> None:
    broken = openai_chat_events(["Once upon"], finish_reason=None, done=False)
    server.script("openai-chat", SSEReply(broken, end="truncate"), SSEReply(openai_chat_events([" a time"])))
    message = await open_(chat(server), [Decide(Recovery("continue"))]).collect()
    assert message.text == "Once upon a time" and message.recovery == "continued"
    sent = server.requests[1].json["messages"]
    assert sent[-2] == {"role": "assistant", "content": "Once upon"} and sent[-1]["role"] == "user"


async def test_anthropic_continuation_prefills_where_allowed(server: ProviderServer) -> None:
    source = native_anthropic(
        server.anthropic_base_url, "k", model="claude-3-5-sonnet", max_tokens=9, messages=MESSAGES
    )
    partial = schwarm_stream.Message(text="Once upon ", complete=False)
    cont = source.continuation(partial)
    assert cont is not None and cont.body["messages"][-1] == {"role": "assistant", "content": "Once upon"}
    assert source.body["messages"] == MESSAGES  # the original request is untouched


async def test_responses_resume_after_the_last_sequence_number(server: ProviderServer) -> None:
    events = responses_events(["one ", "two ", "three"])
    server.script("openai-responses", SSEReply(events[:5], end="truncate"))
    server.script("openai-responses-retrieve", SSEReply(events_after(events, 4)))
    source = native_openai_responses(server.openai_base_url, "k", model="m", input="hi", background=True)
    message = await open_(source, [Decide(Recovery("resume"))]).collect()
    assert message.text == "one two three" and message.recovery == "resumed"
    retrieve = server.requests[1]
    assert retrieve.method == "GET" and retrieve.path == "/v1/responses/resp_test"
    assert retrieve.query == {"stream": "true", "starting_after": "4"}


# -- cancellation ---------------------------------------------------------------------


async def test_cancel_closes_the_connection(server: ProviderServer) -> None:
    server.script(
        "openai-chat", SSEReply([*openai_chat_events(["Hel"], done=False)[:2], Stall()], end="stall")
    )
    async with open_(chat(server)) as s:
        with pytest.raises(StreamCancelled):
            async for ev in s:
                if isinstance(ev, Chunk):
                    s.cancel("user left")
    await server.wait_disconnect(timeout=5)
    await server.wait_connections(0, timeout=5)


async def test_cancelling_the_consumer_task_closes_the_connection(server: ProviderServer) -> None:
    server.script(
        "openai-chat", SSEReply([*openai_chat_events(["Hel"], done=False)[:2], Stall()], end="stall")
    )
    first = asyncio.Event()

    async def consume() -> None:
        async with open_(chat(server)) as s:
            async for ev in s:
                if isinstance(ev, Chunk):
                    first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await server.wait_disconnect(timeout=5)


@pytest.mark.parametrize("path", ["sdk", "native"])
async def test_connections_are_reused_after_the_terminator(server: ProviderServer, path: str) -> None:
    # The body's end after [DONE] is read, so the pooled connection serves the next stream
    # (no new TCP/TLS handshake per request).
    import openai

    from schwarm_stream.sources import openai_chat

    for text in ("a", "b", "c"):
        server.script("openai-chat", SSEReply(openai_chat_events([text])))
    async with httpx.AsyncClient() as client:
        sdk = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
        for text in ("a", "b", "c"):
            source = (
                openai_chat(sdk, model="m", messages=MESSAGES)
                if path == "sdk"
                else chat(server, client=client)
            )
            assert (await open_(source).collect()).text == text
        await sdk.close()
    assert [r.connection_id for r in server.requests] == [server.requests[0].connection_id] * 3
