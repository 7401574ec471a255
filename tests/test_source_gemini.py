"""Google Gemini through the real google-genai SDK over loopback sockets (``http_options.base_url``):
recorded streams (tests/data/corpus-gemini), their final message compared with the SDK's own
aggregation of the same stream (the docs' ``chunk.text`` join, thoughts, function calls, the last
finish reason and usage), re-chunked variants, truncations (never complete), thought signatures,
safety blocks, in-band and HTTP errors, retry, timeouts and the offline provider."""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

genai = pytest.importorskip("google.genai")  # the extra "gemini"; CI installs it (.[all,test])

from schwarm_stream import (  # noqa: E402
    Config,
    Pipeline,
    ProtocolError,
    ProviderError,
    StreamError,
    StreamIncomplete,
    StreamTimeout,
    TransportError,
)
from schwarm_stream.sources import gemini_generate, to_gemini  # noqa: E402
from schwarm_stream.testing._gemini_wire import (  # noqa: E402
    gemini_error_body,
    gemini_error_event,
    gemini_stream_events,
)
from schwarm_stream.testing.server import (  # noqa: E402
    JSONReply,
    OfflineProvider,
    ProviderServer,
    Split,
    SSEReply,
    Stall,
)

CORPUS = Path(__file__).parent / "data" / "corpus-gemini"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
RECORDINGS = [CORPUS / m["file"] for m in MANIFEST]
MODEL = "gemini-2.5-flash"
EXACT = {"retry": {"attempts": 1}, "recovery": {"mid_stream": "raise"}}
FAST_RETRY = {"retry": {"attempts": 3, "initial_wait": 0, "max_wait": 0}}


def pipeline(cfg: dict[str, Any] | None = None) -> Pipeline:
    return Pipeline(config=Config.from_dict(cfg or EXACT))


def client(url: str) -> Any:
    return genai.Client(api_key="g-loopback-key", http_options={"base_url": url})


def source(url: str, **kw: Any) -> Any:
    return gemini_generate(client(url), model=MODEL, contents="Hi", **kw)


def load(path: Path) -> bytes:
    return path.read_bytes()


def rid(path: Path) -> str:
    return path.name.split(".")[0]


def events_of(body: bytes) -> list[bytes]:
    """The body's events, each with its blank line (the recordings use CRLF)."""
    out, pos = [], 0
    while (end := body.find(b"\r\n\r\n", pos)) >= 0:
        out.append(body[pos : end + 4])
        pos = end + 4
    return out


async def sdk_aggregate(server: ProviderServer, body: bytes) -> dict[str, Any]:
    """The answer joined from the SDK's own responses, as its docs join a stream."""
    server.script("gemini-stream", SSEReply([body]))
    cfg = {"http_options": {"retry_options": {"attempts": 1}}}
    responses = [
        r
        async for r in await client(server.url).aio.models.generate_content_stream(
            model=MODEL, contents="Hi", config=cfg
        )
    ]
    parts = [
        p
        for r in responses
        for c in r.candidates or ()
        for p in (c.content.parts if c.content else None) or ()
    ]
    finish = [c.finish_reason for r in responses for c in r.candidates or () if c.finish_reason]
    usage = next((r.usage_metadata for r in reversed(responses) if r.usage_metadata), None)
    return {
        "text": "".join(p.text for p in parts if p.text and not p.thought),
        "thoughts": "".join(p.text for p in parts if p.text and p.thought),
        "calls": [(fc.name, fc.args or {}) for r in responses for fc in r.function_calls or ()],
        "signatures": sorted(p.thought_signature for p in parts if p.thought_signature),
        "finish": finish[-1].value if finish else None,
        "usage": usage,
        "id": responses[0].response_id,
        "model": responses[0].model_version,
    }


def assert_same(message: Any, ref: dict[str, Any]) -> None:
    assert message.complete
    assert message.text == ref["text"]
    assert message.reasoning == ref["thoughts"]
    assert [(t.name, t.parsed) for t in message.tool_calls] == ref["calls"]
    sigs = sorted(base64.b64decode(b.signature) for b in message.content if b.signature)
    assert sigs == ref["signatures"]
    assert message.finish_reason == ref["finish"]
    assert (message.id, message.model, message.provider) == (ref["id"], ref["model"], "gcp.gemini")
    u = ref["usage"]
    assert message.usage.input_tokens == u.prompt_token_count
    assert message.usage.output_tokens == (u.candidates_token_count or 0) + (u.thoughts_token_count or 0)
    assert message.usage.reasoning_tokens == u.thoughts_token_count


def test_manifest_names_every_recording_with_its_origin() -> None:
    assert sorted(p.name for p in CORPUS.glob("*/*.sse")) == sorted(p.name for p in RECORDINGS)
    for m in MANIFEST:
        assert m["origin_repo"] and m["origin_path"] and len(m["commit"]) == 40 and m["license"]
        assert (CORPUS / m["file"]).stat().st_size == m["bytes"]


@pytest.mark.parametrize("how", ["whole", "per-event", "3-byte pieces"])
@pytest.mark.parametrize("path", RECORDINGS, ids=rid)
async def test_recording_equals_the_sdk_aggregation(path: Path, how: str) -> None:
    body = load(path)
    parts: list[Any] = {
        "whole": [body],
        "per-event": events_of(body),
        "3-byte pieces": [Split(body, tuple(range(3, len(body), 3)))],
    }[how]
    async with ProviderServer() as server:
        ref = await sdk_aggregate(server, body)
        server.script("gemini-stream", SSEReply(parts))
        async with pipeline().open(source(server.url)) as stream:
            message = await stream.collect()
    assert_same(message, ref)


def cut_points(body: bytes) -> list[int]:
    """Every event boundary before the last event's end, and the middle of every event."""
    ends = [0]
    for ev in events_of(body):
        ends.append(ends[-1] + len(ev))
    cuts = {e for e in ends[1:-1]} | {(a + b) // 2 for a, b in itertools.pairwise(ends)}
    cuts |= {ends[-1] - 5, ends[-1] - 4, ends[-1] - 2, ends[-1] - 1}  # around the final blank line
    points = sorted(c for c in cuts if 0 < c < len(body))
    step = max(1, len(points) // 10)  # a sample of long recordings: every cut costs two requests
    return sorted({*points[::step], *points[-4:]})


@pytest.mark.parametrize("end", ["eof", "truncate"])
@pytest.mark.parametrize("path", RECORDINGS, ids=rid)
async def test_truncations_are_never_complete(path: Path, end: str) -> None:
    body = load(path)
    async with ProviderServer() as server:
        for cut in cut_points(body):
            whole = b"".join(ev for ev in events_of(body[:cut]))  # the events wholly before the cut
            ref = await sdk_aggregate(server, whole) if whole else None
            server.script("gemini-stream", SSEReply([body[:cut]], end=end))
            stream = pipeline().open(source(server.url))
            if end == "eof" and cut >= len(body) - 4:
                # only the final blank line is cut: the last event's JSON is whole, and the SDK
                # (like every SSE reader here) takes an unterminated last event: complete
                async with stream:
                    message = await stream.collect()
                assert message.complete and message.text == (await sdk_aggregate(server, body))["text"]
                continue
            with pytest.raises(StreamError) as info:
                async with stream:
                    await stream.collect()
            assert isinstance(info.value, StreamIncomplete | TransportError), (cut, info.value)
            assert not stream.message.complete, cut
            assert stream.message.text == (ref["text"] if ref else ""), cut


async def test_a_stream_without_a_finish_reason_is_incomplete() -> None:
    events = gemini_stream_events(["Hel", "lo"], finish_reason=None)
    async with ProviderServer() as server:
        server.script("gemini-stream", SSEReply(events))
        stream = pipeline().open(source(server.url))
        with pytest.raises(StreamIncomplete, match="finish_reason"):
            async with stream:
                await stream.collect()
    assert stream.message.text == "Hello" and not stream.message.complete


async def test_continuation_finish_reason_is_not_the_end() -> None:
    # With the SDK's automatic continuation off, CONTINUATION reaches us: the answer is not done.
    events = gemini_stream_events(["part one"], finish_reason="CONTINUATION")
    async with ProviderServer() as server:
        server.script("gemini-stream", SSEReply(events))
        stream = pipeline().open(source(server.url, config={"automatic_continuation": False}))
        with pytest.raises(StreamIncomplete):
            async with stream:
                await stream.collect()
    assert not stream.message.complete


# -- features: function calls, thoughts and signatures, safety -------------------------------------------


async def test_function_calls_arrive_whole_as_one_delta_each() -> None:
    calls = [
        {"name": "get_weather", "args": {"city": "Paris"}},
        {"name": "get_time", "args": {}, "id": "fc-1"},
    ]
    async with ProviderServer() as server:
        server.script("gemini-stream", SSEReply(gemini_stream_events(["Checking."], function_calls=calls)))
        async with pipeline().open(source(server.url)) as stream:
            deltas = [e for e in [e async for e in stream] if type(e).__name__ == "ToolCallDelta"]
            message = stream.message
    assert [(d.name, d.arguments, d.id) for d in deltas] == [
        ("get_weather", '{"city":"Paris"}', None),
        ("get_time", "{}", "fc-1"),
    ]
    assert [t.id for t in message.tool_calls] == [f"call_{deltas[0].index}", "fc-1"]
    turn = to_gemini(message)
    assert turn["parts"][1:] == [
        {"function_call": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"function_call": {"name": "get_time", "args": {}, "id": "fc-1"}},
    ]


async def test_thought_signature_goes_back_on_its_part() -> None:
    path = CORPUS / "pydantic-ai/test_google_streaming_tool_call_thought_signature.response0.sse"
    body = load(path)
    async with ProviderServer() as server:
        ref = await sdk_aggregate(server, body)
        server.script("gemini-stream", SSEReply([body]))
        async with pipeline().open(source(server.url)) as stream:
            message = await stream.collect()
        turn = to_gemini(message)
        # the SDK accepts the turn as Content and puts the signature where the API sent it
        content = genai.types.Content.model_validate(turn)
    signed = [p for p in content.parts or () if p.thought_signature]
    assert [p.thought_signature for p in signed] == ref["signatures"]
    assert all(p.function_call is not None for p in signed)


async def test_thoughts_are_reasoning_and_not_text() -> None:
    events = gemini_stream_events(["The answer."], thought_chunks=["Let me ", "think."], signature="c2ln")
    async with ProviderServer() as server:
        server.script("gemini-stream", SSEReply(events))
        async with pipeline().open(source(server.url)) as stream:
            message = await stream.collect()
    assert (message.reasoning, message.text) == ("Let me think.", "The answer.")
    assert [b.type for b in message.content][:2] == ["reasoning", "text"]


async def test_a_blocked_prompt_is_a_complete_refusal() -> None:
    async with ProviderServer() as server:
        server.script("gemini-stream", SSEReply(gemini_stream_events(blocked="SAFETY")))
        async with pipeline().open(source(server.url)) as stream:
            message = await stream.collect()
    assert message.complete and message.finish_reason == "SAFETY"
    assert message.refusal == "The prompt was blocked (SAFETY)." and message.text == ""


async def test_a_safety_stop_keeps_the_ratings() -> None:
    event = {
        "candidates": [
            {
                "content": {"parts": [{"text": "I can"}], "role": "model"},
                "finishReason": "SAFETY",
                "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}],
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
    }
    body = b"data: " + json.dumps(event).encode() + b"\r\n\r\n"
    async with ProviderServer() as server:
        server.script("gemini-stream", SSEReply([body]))
        async with pipeline().open(source(server.url)) as stream:
            events = [e async for e in stream]
            message = stream.message
    assert message.complete and message.finish_reason == "SAFETY" and message.text == "I can"
    safety = [e for e in events if getattr(e, "kind", None) == "safety"]
    assert safety[0].data["safety_ratings"][0]["probability"] == "HIGH"


# -- errors, retry, timeouts -----------------------------------------------------------------------------


async def test_an_error_event_mid_stream_is_in_band_with_the_partial() -> None:
    events = gemini_stream_events(["Hel", "lo", " world"])
    async with ProviderServer() as server:
        server.script("gemini-stream", SSEReply([*events[:2], gemini_error_event(503, "overloaded")]))
        stream = pipeline().open(source(server.url))
        with pytest.raises(ProviderError) as info:
            async with stream:
                await stream.collect()
    err = info.value
    assert (err.status_code, err.error_type, err.in_band, err.retryable) == (503, "UNAVAILABLE", True, True)
    assert stream.message.text == "Hello" and not stream.message.complete


async def test_http_429_carries_the_retry_delay_and_the_sdk_does_not_retry() -> None:
    retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]
    async with ProviderServer() as server:
        server.script("gemini-stream", JSONReply(429, gemini_error_body(429, "quota", details=retry)))
        stream = pipeline().open(source(server.url))
        with pytest.raises(ProviderError) as info:
            async with stream:
                await stream.collect()
        assert len(server.requests) == 1  # one attempt: the SDK's own retries are off
    err = info.value
    assert (err.status_code, err.in_band, err.retry_after, err.retryable) == (429, False, 37.0, True)
    assert "g-loopback-key" not in str(err)


async def test_http_400_is_not_retried() -> None:
    async with ProviderServer() as server:
        server.script("gemini-stream", JSONReply(400, gemini_error_body(400, "bad request")))
        with pytest.raises(ProviderError) as info:
            async with pipeline(FAST_RETRY).open(source(server.url)) as stream:
                await stream.collect()
        assert len(server.requests) == 1
    assert info.value.status_code == 400 and not info.value.retryable


async def test_a_cut_stream_is_retried_and_the_answer_is_whole() -> None:
    body = RECORDINGS[0].read_bytes()
    async with ProviderServer() as server:
        ref = await sdk_aggregate(server, body)
        server.script("gemini-stream", SSEReply([events_of(body)[0]]), SSEReply([body]))
        cfg = {**FAST_RETRY, "recovery": {"mid_stream": "restart"}}
        async with pipeline(cfg).open(source(server.url)) as stream:
            message = await stream.collect()
    assert_same(message, ref)


async def test_a_stall_mid_stream_is_an_idle_timeout() -> None:
    events = gemini_stream_events(["Hel", "lo"])
    async with ProviderServer() as server:
        server.script("gemini-stream", SSEReply([events[0], Stall()]))
        stream = pipeline({**EXACT, "timeouts": {"idle": 0.3}}).open(source(server.url))
        with pytest.raises(StreamTimeout):
            async with stream:
                await stream.collect()
        await server.wait_disconnect()
    assert stream.message.text == "Hel" and not stream.message.complete


async def test_malformed_json_in_the_middle_is_not_a_finished_answer() -> None:
    events = gemini_stream_events(["a", "b"])
    async with ProviderServer() as server:
        server.script("gemini-stream", SSEReply([events[0], b"data: {nope\r\n\r\n", events[1]]))
        with pytest.raises((StreamIncomplete, ProtocolError)):
            async with pipeline().open(source(server.url)) as stream:
                await stream.collect()


def test_provider_names_follow_the_genai_conventions() -> None:
    assert source("http://127.0.0.1:9").provider == "gcp.gemini"
    vertex = genai.Client(
        vertexai=True, project="p", location="us-central1", api_key=None, credentials=_Creds()
    )
    assert gemini_generate(vertex, model=MODEL, contents="Hi").provider == "gcp.vertex_ai"


class _Creds:
    """Credentials that are never asked for a token (no request is made)."""

    token = "t"
    expired = False
    valid = True
    quota_project_id = None

    def refresh(self, request: Any) -> None:  # pragma: no cover - never called
        pass


def test_continuation_asks_the_model_to_go_on() -> None:
    from schwarm_stream import Message

    src = source("http://127.0.0.1:9")
    cont = src.continuation(Message(text="Half an ans"))
    assert cont is not None
    assert cont.contents[0] == {"role": "user", "parts": [{"text": "Hi"}]}
    assert cont.contents[1] == {"role": "model", "parts": [{"text": "Half an ans"}]}
    assert cont.contents[2]["role"] == "user"
    assert src.continuation(Message(text="x", reasoning="y")) is None


# -- the offline provider speaks the protocol -----------------------------------------------------------


async def test_offline_provider_answers_with_a_function_call_then_text() -> None:
    tools = [
        {
            "function_declarations": [
                {
                    "name": "get_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ]
    async with ProviderServer(OfflineProvider()) as server:
        async with pipeline().open(
            gemini_generate(
                client(server.url), model=MODEL, contents="Weather in Oslo?", config={"tools": tools}
            )
        ) as stream:
            first = await stream.collect()
        assert first.complete and first.tool_calls[0].parsed == {"city": "Oslo"}
        contents = [
            {"role": "user", "parts": [{"text": "Weather in Oslo?"}]},
            to_gemini(first),
            {
                "role": "user",
                "parts": [{"function_response": {"name": "get_weather", "response": {"temp": 3}}}],
            },
        ]
        async with pipeline().open(
            gemini_generate(client(server.url), model=MODEL, contents=contents, config={"tools": tools})
        ) as stream:
            second = await stream.collect()
    assert second.complete and second.text == 'The tool returned: {"temp": 3}'


async def test_metrics_name_the_provider_and_count_thoughts_as_output() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from tests.test_metrics import Telemetry

    t = Telemetry()
    path = CORPUS / "pydantic-ai/test_google_model_thinking_part_iter.response0.sse"
    body = load(path)
    try:
        async with ProviderServer() as server:
            ref = await sdk_aggregate(server, body)
            server.script("gemini-stream", SSEReply([body]))
            async with t.pipeline().open(source(server.url)) as stream:
                await stream.collect()
        u = ref["usage"]
        attrs = {"gen_ai.provider.name": "gcp.gemini", "gen_ai.request.model": MODEL}
        inp = t.point("gen_ai.client.token.usage", **attrs, **{"gen_ai.token.type": "input"})
        out = t.point("gen_ai.client.token.usage", **attrs, **{"gen_ai.token.type": "output"})
        assert inp.sum == u.prompt_token_count
        assert out.sum == u.candidates_token_count + u.thoughts_token_count
    finally:
        t.meter_provider.shutdown()
        t.tracer_provider.shutdown()
        t.logger_provider.shutdown()
