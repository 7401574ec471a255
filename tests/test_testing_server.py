"""The provider server, driven by the real OpenAI and Anthropic SDK clients over loopback sockets.

These tests pin two things: that the server speaks each protocol well enough for the SDKs' own
accumulators to rebuild exactly what was scripted, and how the SDKs react to each fault the server
injects (which is what the rest of schwarm_stream has to handle).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

import schwarm_stream.testing
from schwarm_stream.testing.server import (
    Drip,
    JSONReply,
    OfflineProvider,
    ProviderServer,
    RawReply,
    RecordedRequest,
    Sleep,
    SlowHeaders,
    Split,
    SSEReply,
    Stall,
    ThreadedProviderServer,
    anthropic_error_event,
    anthropic_events,
    events_after,
    openai_chat_events,
    openai_error_chunk,
    responses_error_events,
    responses_events,
    sse,
)

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CHAT_TOOLS: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
ANTHROPIC_TOOLS: Any = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}]
RESPONSES_TOOLS: Any = [
    {"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA, "strict": False}
]
HI: Any = [{"role": "user", "content": "hi"}]


def _server_tasks() -> list[str]:
    """Tasks still running code of the testing package (the SDKs may finalize their own generators)."""
    package = str(Path(schwarm_stream.testing.__file__).parent)
    code = (getattr(t.get_coro(), "cr_code", None) for t in asyncio.all_tasks())
    return [c.co_name for c in code if c is not None and c.co_filename.startswith(package)]


@pytest.fixture(autouse=True)
async def _leaves_no_server_tasks() -> AsyncIterator[None]:
    yield
    assert _server_tasks() == []  # close() leaves nothing running behind


@pytest.fixture
async def server() -> AsyncIterator[ProviderServer]:
    async with ProviderServer() as srv:
        yield srv
    assert srv.connections_open() == 0  # close() killed every connection


@pytest.fixture
async def oai(server: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def ant(server: ProviderServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(api_key="x", base_url=server.anthropic_base_url, max_retries=0)
    yield client
    await client.close()


async def _chat_chunks(client: openai.AsyncOpenAI) -> list[Any]:
    stream = await client.chat.completions.create(model="m", messages=HI, stream=True)
    async with stream:
        return [chunk async for chunk in stream]


# --------------------------------------------------------------------------------------------------------
# Protocols: the SDK accumulators rebuild exactly what was scripted


async def test_chat_stream_text_and_tool_calls_match_the_script(
    server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    calls: list[dict[str, Any]] = [
        {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris"}},
        {
            "id": "call_b",
            "name": "get_time",
            "arguments": '{"tz": "CET"}',
            "chunks": ['{"tz"', ': "C', 'ET"}'],
        },
    ]
    usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    server.script(
        "openai-chat", SSEReply(openai_chat_events(["Hel", "lo ", "wörld"], tool_calls=calls, usage=usage))
    )

    async with oai.chat.completions.stream(
        model="gpt-x", messages=HI, tools=CHAT_TOOLS, stream_options={"include_usage": True}
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()

    message = final.choices[0].message
    assert message.content == "Hello wörld"
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []] == [
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_time", '{"tz": "CET"}'),
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.model_dump(include=set(usage)) == usage

    (request,) = server.requests
    assert (request.method, request.path, request.route) == ("POST", "/v1/chat/completions", "openai-chat")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["x-stainless-helper-method"] == "chat.completions.stream"
    assert request.json["model"] == "gpt-x" and request.json["stream"] is True
    assert request.json["stream_options"] == {"include_usage": True}
    assert json.loads(request.body) == request.json


async def test_anthropic_stream_final_message_matches_the_script(
    server: ProviderServer, ant: anthropic.AsyncAnthropic
) -> None:
    events = anthropic_events(
        ["Sun", "ny in ", "Paris"],
        thinking_chunks=["Let me ", "think."],
        tool_uses=[{"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris", "days": 2}}],
        usage={"input_tokens": 12, "output_tokens": 42},
        model="claude-x",
    )
    server.script("anthropic-messages", SSEReply(events))

    async with ant.messages.stream(
        model="claude-x", max_tokens=100, messages=HI, tools=ANTHROPIC_TOOLS
    ) as stream:
        seen = [event.type async for event in stream]
        final = await stream.get_final_message()

    assert "ping" not in seen and seen[0] == "message_start" and seen[-1] == "message_stop"
    thinking, text, tool = final.content
    assert thinking.type == "thinking" and thinking.thinking == "Let me think." and thinking.signature
    assert text.type == "text" and text.text == "Sunny in Paris"
    assert tool.type == "tool_use" and (tool.id, tool.name, tool.input) == (
        "toolu_1",
        "get_weather",
        {"city": "Paris", "days": 2},
    )
    assert (final.stop_reason, final.model, final.usage.input_tokens, final.usage.output_tokens) == (
        "tool_use",
        "claude-x",
        12,
        42,
    )
    (request,) = server.requests
    assert (request.path, request.route) == ("/v1/messages", "anthropic-messages")
    assert request.headers["x-stainless-helper-method"] == "stream"
    assert "anthropic-version" in request.headers
    assert request.json["max_tokens"] == 100 and request.json["tools"][0]["name"] == "get_weather"


async def test_responses_stream_final_response_matches_the_script(
    server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    events = responses_events(
        ["It is ", "sunny."],
        reasoning_summary_chunks=["Checked ", "the sky."],
        function_calls=[{"call_id": "call_9", "name": "get_weather", "arguments": {"city": "Oslo"}}],
        usage={"input_tokens": 3, "output_tokens": 4},
    )
    server.script("openai-responses", SSEReply(events))

    async with oai.responses.stream(model="m", input="weather?", tools=RESPONSES_TOOLS) as stream:
        numbers = [event.sequence_number async for event in stream]
        final = await stream.get_final_response()

    assert numbers == list(range(len(events)))  # every event numbered, none lost
    assert final.status == "completed" and final.output_text == "It is sunny."
    reasoning, _message, call = final.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Checked the sky."
    assert call.type == "function_call" and (call.call_id, call.name, call.arguments) == (
        "call_9",
        "get_weather",
        '{"city":"Oslo"}',
    )
    assert final.usage is not None and final.usage.total_tokens == 7
    assert server.requests[0].route == "openai-responses" and server.requests[0].json["input"] == "weather?"


async def test_responses_retrieve_resumes_after_a_sequence_number(
    server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    events = responses_events(["a", "b", "c"])
    server.script("openai-responses-retrieve", SSEReply(events_after(events, 4)))

    stream = await oai.responses.retrieve("resp_test", stream=True, starting_after=4)
    async with stream:
        numbers = [event.sequence_number async for event in stream]

    assert numbers == list(range(5, len(events)))
    (request,) = server.requests
    assert (request.method, request.path, request.route) == (
        "GET",
        "/v1/responses/resp_test",
        "openai-responses-retrieve",
    )
    assert request.query == {"stream": "true", "starting_after": "4"}


async def test_keep_alive_reuses_one_connection(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["one"])), SSEReply(openai_chat_events(["two"])))

    first, second = await _chat_chunks(oai), await _chat_chunks(oai)

    assert first[1].choices[0].delta.content == "one" and second[1].choices[0].delta.content == "two"
    assert [r.connection_id for r in server.requests] == [1, 1]
    assert server.connections_open() == 1
    await oai.close()  # the pool closes its idle connection; the server sees EOF
    await server.wait_connections(0)
    assert server.connections_open() == 0


# --------------------------------------------------------------------------------------------------------
# Errors before the body


async def test_429_with_retry_after_reaches_the_sdk(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    headers = {"retry-after": "7", "retry-after-ms": "7000", "x-should-retry": "true"}
    server.script(
        "openai-chat", JSONReply(429, {"error": {"message": "slow down", "type": "rate_limit"}}, headers)
    )

    with pytest.raises(openai.RateLimitError) as caught:
        await _chat_chunks(oai)

    assert caught.value.status_code == 429 and "slow down" in caught.value.message
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.headers["retry-after-ms"] == "7000"
    assert len(server.requests) == 1  # max_retries=0


async def test_sdk_retry_is_visible_in_recorded_requests(server: ProviderServer) -> None:
    server.script(
        "anthropic-messages",
        JSONReply(
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
            {"retry-after-ms": "5"},
        ),
        SSEReply(anthropic_events(["ok"])),
    )
    async with anthropic.AsyncAnthropic(
        api_key="x", base_url=server.anthropic_base_url, max_retries=1
    ) as client:
        async with client.messages.stream(model="c", max_tokens=5, messages=HI) as stream:
            text = await stream.get_final_text()

    assert text == "ok"
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1"]


async def test_unscripted_route_without_responder_is_a_500_naming_the_route(
    server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    with pytest.raises(openai.InternalServerError, match="openai-chat"):
        await _chat_chunks(oai)


async def test_unknown_path_is_404_and_still_recorded(server: ProviderServer) -> None:
    async with openai.AsyncOpenAI(api_key="k", base_url=server.url + "/nope", max_retries=0) as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="m", messages=HI)

    assert [(r.path, r.route) for r in server.requests] == [("/nope/chat/completions", None)]


async def test_api_key_is_checked_in_either_header_form() -> None:
    async with ProviderServer(OfflineProvider(), api_key="secret") as srv:
        async with anthropic.AsyncAnthropic(
            api_key="secret", base_url=srv.anthropic_base_url, max_retries=0
        ) as good:
            message = await good.messages.create(model="c", max_tokens=5, messages=HI)
        async with anthropic.AsyncAnthropic(
            api_key="wrong",
            base_url=srv.anthropic_base_url,
            max_retries=0,
            default_headers={"x-api-key": "secret"},
        ) as header_form:
            assert (
                await header_form.messages.create(model="c", max_tokens=5, messages=HI)
            ).stop_reason == "end_turn"
        async with anthropic.AsyncAnthropic(
            api_key="wrong", base_url=srv.anthropic_base_url, max_retries=0
        ) as bad:
            with pytest.raises(anthropic.AuthenticationError):
                await bad.messages.create(model="c", max_tokens=5, messages=HI)

    assert message.content[0].type == "text" and message.content[0].text == "You said: hi"


async def test_malformed_request_gets_400_and_connection_close_is_honoured(server: ProviderServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n")
    bad = await asyncio.wait_for(reader.read(), 5)  # the server answers, then closes (EOF)
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    server.script("anthropic-messages", JSONReply(200, {"ok": True}))
    writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
    good = await asyncio.wait_for(reader.read(), 5)
    writer.close()

    assert bad.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"malformed request" in bad
    assert good.startswith(b"HTTP/1.1 200 OK\r\n") and good.endswith(b'{"ok":true}')
    assert [(r.route, r.json) for r in server.requests] == [("anthropic-messages", {})]  # only the valid one
    await server.wait_connections(0)


async def test_slow_headers_time_out_and_the_sdk_retries() -> None:
    async with ProviderServer() as srv:
        srv.script(
            "openai-chat",
            SlowHeaders(5.0, SSEReply(openai_chat_events(["late"]))),
            SSEReply(openai_chat_events(["ok"])),
        )
        async with openai.AsyncOpenAI(
            api_key="k", base_url=srv.openai_base_url, max_retries=1, timeout=0.2
        ) as client:
            chunks = await _chat_chunks(client)

        assert chunks[1].choices[0].delta.content == "ok"
        assert len(srv.requests) == 2  # a timeout before the headers is retried by the SDK itself


async def test_malformed_http_response_is_a_connection_error(
    server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    server.script("openai-chat", RawReply(b"HTTP/1.1 200 OK\r\nno-colon-here\r\n\r\n"))

    with pytest.raises(openai.APIConnectionError) as caught:
        await _chat_chunks(oai)

    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)


# --------------------------------------------------------------------------------------------------------
# Faults after the headers: the SDKs do not retry any of these


async def test_truncate_gives_api_connection_error(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["par", "tial"])[:3], end="truncate"))
    received: list[str] = []

    with pytest.raises(openai.APIConnectionError) as caught:
        stream = await oai.chat.completions.create(model="m", messages=HI, stream=True)
        async with stream:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")

    assert received == ["", "par", "tial"]  # the prefix arrived before the break
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)
    await server.wait_connections(0)  # the server closed its side


def _transport_error(exc: BaseException) -> BaseException:
    """The httpx2 error itself, whether the SDK raised it raw or wrapped it (its ``__cause__``)."""
    return exc if isinstance(exc, httpx2.HTTPError) else exc.__cause__  # type: ignore[return-value]


async def test_truncate_surfaces_the_transport_error_from_anthropic(
    server: ProviderServer, ant: anthropic.AsyncAnthropic
) -> None:
    # Older anthropic releases let the transport error out raw while reading the body (sdk-streaming.md §2.3);
    # anthropic 2.17 wraps it in APIConnectionError. Either way the protocol error of the cut is in the chain.
    server.script("anthropic-messages", SSEReply(anthropic_events(["cut"])[:4], end="truncate"))

    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)) as caught:
        async with ant.messages.stream(model="c", max_tokens=5, messages=HI) as stream:
            await stream.get_final_message()

    assert isinstance(_transport_error(caught.value), httpx2.RemoteProtocolError)


async def test_eof_without_done_ends_silently(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    # A complete HTTP body that lacks [DONE] and the finish chunk: the SDK reports plain success. This is
    # why schwarm_stream must check for the protocol terminator itself and call this a truncation.
    server.script(
        "openai-chat", SSEReply(openai_chat_events(["half"], finish_reason=None, usage=None, done=False))
    )

    chunks = await _chat_chunks(oai)

    assert [c.choices[0].delta.content for c in chunks] == ["", "half"]
    assert all(c.choices[0].finish_reason is None for c in chunks)
    assert server.connections_open() == 1  # "eof" is a clean HTTP end: the connection stays reusable


async def test_rst_gives_api_connection_error(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["x"])[:2], end="rst"))
    received: list[str | None] = []

    with pytest.raises(openai.APIConnectionError) as caught:
        stream = await oai.chat.completions.create(model="m", messages=HI, stream=True)
        async with stream:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content)

    assert received == ["", "x"]
    # ECONNRESET surfaces as a read error, unlike the protocol error of a FIN-truncated body.
    assert isinstance(caught.value.__cause__, httpx2.ReadError)
    assert len(server.requests) == 1
    await server.wait_connections(0)


async def test_stall_with_short_sdk_timeout_gives_api_timeout_error(server: ProviderServer) -> None:
    server.script("openai-chat", SSEReply([*openai_chat_events(["a"])[:2], Stall()]))

    async with openai.AsyncOpenAI(
        api_key="k", base_url=server.openai_base_url, max_retries=0, timeout=0.2
    ) as client:
        with pytest.raises(openai.APITimeoutError):
            await _chat_chunks(client)
        # The SDK dropped the connection on timeout; the server notices and stops the reply.
        await server.wait_disconnect(timeout=2.0)

    await server.wait_connections(0)
    assert len(server.requests) == 1  # a stall after the headers is not retried


async def test_stall_until_event_then_the_stream_continues(
    server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    gate = asyncio.Event()
    events = openai_chat_events(["before", "after"])
    server.script("openai-chat", SSEReply([*events[:2], Stall(gate), *events[2:]]))
    texts: list[str | None] = []

    stream = await oai.chat.completions.create(model="m", messages=HI, stream=True)
    async with stream:
        async for chunk in stream:
            if chunk.choices:
                texts.append(chunk.choices[0].delta.content)
            if texts[-1] == "before":
                assert not gate.is_set()
                gate.set()  # only now may the server write the rest

    assert texts == ["", "before", "after", None]


async def test_end_stall_keeps_the_connection_open_until_the_client_leaves(server: ProviderServer) -> None:
    server.script("anthropic-messages", SSEReply(anthropic_events(["x"])[:2], end="stall"))

    async with anthropic.AsyncAnthropic(
        api_key="k", base_url=server.url, max_retries=0, timeout=0.2
    ) as client:
        # Raw in older anthropic releases (sdk-streaming.md §2.3), an APITimeoutError around it in 2.17.
        with pytest.raises((httpx2.ReadTimeout, anthropic.APITimeoutError)) as caught:
            async with client.messages.stream(model="c", max_tokens=5, messages=HI) as stream:
                await stream.get_final_message()

    assert isinstance(_transport_error(caught.value), httpx2.ReadTimeout)

    await server.wait_disconnect()
    await server.wait_connections(0)


async def test_cancelled_stream_closes_its_socket(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    events = openai_chat_events(["first"])
    server.script("openai-chat", SSEReply([*events[:2], Stall(), *events[2:]]))
    got_first = asyncio.Event()

    async def consume() -> None:
        async with oai.chat.completions.stream(model="m", messages=HI) as stream:
            async for event in stream:
                if event.type == "content.delta":
                    got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 5)
    assert server.connections_open() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await server.wait_disconnect()
    await server.wait_connections(0)


async def test_split_inside_a_multibyte_character_and_a_crlf(
    server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    events = openai_chat_events(["Grüße 🌍"])
    text_event = events[1].replace(b"\n", b"\r\n")
    emoji = text_event.index("🌍".encode())
    cuts = [
        text_event.index("ü".encode()) + 1,
        emoji + 1,
        emoji + 3,
        len(text_event) - 3,
    ]  # last: between \r and \n
    server.script("openai-chat", SSEReply([events[0], Split(text_event, cuts), *events[2:]]))

    chunks = await _chat_chunks(oai)

    assert [c.choices[0].delta.content for c in chunks if c.choices][:2] == ["", "Grüße 🌍"]


async def test_drip_writes_one_byte_at_a_time(server: ProviderServer, ant: anthropic.AsyncAnthropic) -> None:
    events = anthropic_events(["drip ", "drop"], pings=False)
    server.script("anthropic-messages", SSEReply([*events[:3], Drip(events[3], 0.0005), *events[4:]]))

    async with ant.messages.stream(model="c", max_tokens=5, messages=HI) as stream:
        assert await stream.get_final_text() == "drip drop"


# --------------------------------------------------------------------------------------------------------
# In-band provider errors (the wire shapes the builders produce)


async def test_in_band_error_builders_raise_in_the_sdks(
    server: ProviderServer, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    server.script("anthropic-messages", SSEReply([*anthropic_events(["x"])[:4], anthropic_error_event()]))
    server.script("openai-chat", SSEReply([*openai_chat_events(["x"])[:2], openai_error_chunk("boom")]))
    created = responses_events(["x"])[:2]
    server.script(
        "openai-responses",
        SSEReply([*created, *responses_error_events("quota", "insufficient_quota", nested=True)]),
    )

    with pytest.raises(anthropic.APIStatusError) as ant_error:
        async with ant.messages.stream(model="c", max_tokens=5, messages=HI) as stream:
            await stream.get_final_message()
    with pytest.raises(openai.APIError, match="boom"):
        await _chat_chunks(oai)
    with pytest.raises(openai.APIError, match="quota"):
        async with oai.responses.stream(model="m", input="x") as rstream:
            await rstream.get_final_response()

    assert ant_error.value.status_code == 200 and ant_error.value.type == "overloaded_error"


def test_sse_frames_multiline_data_and_compact_json() -> None:
    assert sse("a\nb\r\nc", event="x") == b"event: x\ndata: a\ndata: b\ndata: c\n\n"
    assert sse({"t": "é", "n": [1, 2]}) == '{"t":"é","n":[1,2]}'.join(["data: ", "\n\n"]).encode()


async def test_script_rejects_an_unknown_route(server: ProviderServer) -> None:
    with pytest.raises(ValueError, match="unknown route"):
        server.script("openai-completions", JSONReply(200, {}))


# --------------------------------------------------------------------------------------------------------
# Threaded server and the offline provider


def test_threaded_server_with_the_sync_openai_client() -> None:
    release = threading.Event()
    with ThreadedProviderServer() as srv:
        events = openai_chat_events(["sync ", "works"])
        srv.script("openai-chat", SSEReply([*events[:2], Stall(release), *events[2:]]))
        with openai.OpenAI(api_key="sk-test", base_url=srv.openai_base_url, max_retries=0) as client:
            with client.chat.completions.stream(model="m", messages=HI) as stream:
                for event in stream:
                    if event.type == "content.delta" and event.delta == "sync ":
                        release.set()  # a threading.Event gates the server thread without blocking its loop
                final = stream.get_final_completion()
        srv.wait_connections(0)
        assert final.choices[0].message.content == "sync works"
        assert srv.requests[0].route == "openai-chat" and srv.connections_open() == 0
    assert not any(t.name == "schwarm-provider-server" for t in threading.enumerate())  # loop thread joined


def _tool_result(content: str) -> Any:
    return json.dumps({"city": json.loads(content)["city"], "temperature_c": 21})


async def test_offline_provider_two_turn_tool_loop_openai() -> None:
    async with (
        ProviderServer(OfflineProvider()) as srv,
        openai.AsyncOpenAI(api_key="k", base_url=srv.openai_base_url, max_retries=0) as client,
    ):
        messages: list[Any] = [{"role": "user", "content": "What's the weather in Berlin?"}]
        async with client.chat.completions.stream(
            model="m", messages=messages, tools=CHAT_TOOLS, stream_options={"include_usage": True}
        ) as stream:
            deltas = [event.delta async for event in stream if event.type == "content.delta" and event.delta]
            first = await stream.get_final_completion()
        call = (first.choices[0].message.tool_calls or [])[0]
        assert first.choices[0].message.content == "Let me check the weather." == "".join(deltas)
        assert len(deltas) > 3 and all(2 <= len(d) <= 5 for d in deltas)  # visibly streamed
        assert (call.function.name, json.loads(call.function.arguments)) == (
            "get_weather",
            {"city": "Berlin"},
        )
        assert first.choices[0].finish_reason == "tool_calls"
        assert first.usage is not None and first.usage.total_tokens > 0

        messages += [
            first.choices[0].message.model_dump(include={"role", "content", "tool_calls"}),
            {"role": "tool", "tool_call_id": call.id, "content": _tool_result(call.function.arguments)},
        ]
        async with client.chat.completions.stream(model="m", messages=messages, tools=CHAT_TOOLS) as stream:
            second = await stream.get_final_completion()

        assert (
            second.choices[0].message.content == 'The tool returned: {"city": "Berlin", "temperature_c": 21}'
        )
        assert second.choices[0].finish_reason == "stop" and not second.choices[0].message.tool_calls
        assert second.usage is None  # include_usage not requested on the second turn


async def test_offline_provider_two_turn_tool_loop_anthropic() -> None:
    async with (
        ProviderServer(OfflineProvider()) as srv,
        anthropic.AsyncAnthropic(api_key="x", base_url=srv.anthropic_base_url, max_retries=0) as client,
    ):
        messages: list[Any] = [{"role": "user", "content": "Is it raining in Lisbon today?"}]
        async with client.messages.stream(
            model="c", max_tokens=200, messages=messages, tools=ANTHROPIC_TOOLS
        ) as s:
            first = await s.get_final_message()
        text, tool = first.content
        assert text.type == "text" and text.text == "Let me check the weather."
        assert tool.type == "tool_use" and (tool.name, tool.input) == ("get_weather", {"city": "Lisbon"})
        assert first.stop_reason == "tool_use" and first.usage.output_tokens > 0

        messages += [
            {
                "role": "assistant",
                "content": [
                    b.model_dump(include={"type", "text", "id", "name", "input"}) for b in first.content
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool.id,
                        "content": _tool_result(json.dumps(tool.input)),
                    }
                ],
            },
        ]
        async with client.messages.stream(
            model="c", max_tokens=200, messages=messages, tools=ANTHROPIC_TOOLS
        ) as s:
            second = await s.get_final_message()

        (answer,) = second.content
        assert answer.type == "text" and second.stop_reason == "end_turn"
        assert answer.text == 'The tool returned: {"city": "Lisbon", "temperature_c": 21}'


async def test_offline_provider_two_turn_tool_loop_responses() -> None:
    async with (
        ProviderServer(OfflineProvider()) as srv,
        openai.AsyncOpenAI(api_key="k", base_url=srv.openai_base_url, max_retries=0) as client,
    ):
        async with client.responses.stream(
            model="m", input="Weather in Oslo?", tools=RESPONSES_TOOLS
        ) as stream:
            first = await stream.get_final_response()
        call = next(item for item in first.output if item.type == "function_call")
        assert first.output_text == "Let me check the weather."
        assert json.loads(call.arguments) == {"city": "Oslo"}

        follow_up: Any = [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "cloudy"},
        ]
        async with client.responses.stream(model="m", input=follow_up, tools=RESPONSES_TOOLS) as stream:
            second = await stream.get_final_response()

        assert second.output_text == "The tool returned: cloudy"
        assert all(item.type == "message" for item in second.output)


async def test_offline_provider_without_tools_echoes_and_supports_non_streaming() -> None:
    async with (
        ProviderServer(OfflineProvider()) as srv,
        openai.AsyncOpenAI(api_key="k", base_url=srv.openai_base_url, max_retries=0) as client,
    ):
        completion = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "ping"}]
        )
        response = await client.responses.create(model="m", input="pong")

    assert completion.choices[0].message.content == "You said: ping"
    assert response.output_text == "You said: pong"


def test_offline_provider_chunk_delay_spaces_out_the_events() -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hello there"}]}
    request = RecordedRequest(
        "POST", "/v1/chat/completions", {}, {}, json.dumps(body).encode(), body, "openai-chat"
    )

    reply = OfflineProvider(chunk_delay=0.05)(request)

    assert isinstance(reply, SSEReply)
    assert [type(p).__name__ for p in reply.parts[:4]] == ["bytes", "Sleep", "bytes", "Sleep"]
    assert all(p == Sleep(0.05) for p in reply.parts[1::2]) and reply.parts[-1] == b"data: [DONE]\n\n"
    assert b"usage" not in b"".join(p for p in reply.parts if isinstance(p, bytes))  # include_usage not asked
