"""Ollama's native ``/api/chat`` NDJSON stream, through the official ``ollama`` client (async and sync)
and natively on httpx, over loopback sockets: recorded answers (tests/data/corpus-ollama) and built
streams, the final message compared with the client's own responses joined as its docs show
(``content`` and ``thinking`` concatenated, ``tool_calls`` collected, the ``done`` line's reason and
counts); re-chunked variants, truncations (never complete), in-band and HTTP errors, retry,
timeouts and the offline provider."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ollama = pytest.importorskip("ollama")  # the extra "ollama"; CI installs it (.[all,test])

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
from schwarm_stream._classify import classify  # noqa: E402
from schwarm_stream.sources import native_ollama, ollama_chat, to_ollama  # noqa: E402
from schwarm_stream.sources._ndjson import iter_ndjson  # noqa: E402
from schwarm_stream.testing._ollama_wire import (  # noqa: E402
    NDJSON,
    ollama_chat_lines,
    ollama_error_line,
)
from schwarm_stream.testing.server import (  # noqa: E402
    JSONReply,
    OfflineProvider,
    ProviderServer,
    Split,
    SSEReply,
    Stall,
)

CORPUS = Path(__file__).parent / "data" / "corpus-ollama"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
MODEL = "llama3.2"
HI = [{"role": "user", "content": "Hi"}]
EXACT = {"retry": {"attempts": 1}, "recovery": {"mid_stream": "raise"}}
FAST_RETRY = {"retry": {"attempts": 3, "initial_wait": 0, "max_wait": 0}}
KINDS = ["async-client", "sync-client", "native"]

THINKING = ["Let me ", "think about ", "it."]
TEXT = ["Hel", "lo, ", "wor", "ld ", "— ", "ok ✓"]
CALLS = [
    {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_a1"},
    {"name": "get_time", "arguments": {"tz": "CET"}, "id": "call_b2"},
]


def pipeline(cfg: dict[str, Any] | None = None) -> Pipeline:
    return Pipeline(config=Config.from_dict(cfg or EXACT))


def source(kind: str, url: str, **request: Any) -> Any:
    request = {"model": MODEL, "messages": HI, **request}
    if kind == "async-client":
        return ollama_chat(ollama.AsyncClient(host=url), **request)
    if kind == "sync-client":
        return ollama_chat(ollama.Client(host=url), **request)
    return native_ollama(url, **request)


def reply(parts: list[Any], **kw: Any) -> SSEReply:
    return SSEReply(parts, content_type=NDJSON, **kw)


def load(path: Path) -> bytes:
    return path.read_bytes()


TOOL_CALL = "langchaingo/TestCloudToolCall.first_turn.ndjson"
BODIES: dict[str, bytes] = {
    **{m["file"]: (CORPUS / m["file"]).read_bytes() for m in MANIFEST},
    "built/thinking-text-tools": b"".join(
        ollama_chat_lines(TEXT, thinking_chunks=THINKING, tool_calls=CALLS)
    ),
    "built/length": b"".join(ollama_chat_lines(["cut off by num_predict"], done_reason="length")),
}


async def client_aggregate(server: ProviderServer, body: bytes) -> dict[str, Any]:
    """The answer joined from the ollama client's own responses, as its docs join a stream."""
    server.script("ollama-chat", reply([body]))
    content, thinking, calls, last = "", "", [], None
    async for part in await ollama.AsyncClient(host=server.url).chat(model=MODEL, messages=HI, stream=True):
        content += part.message.content or ""
        thinking += part.message.thinking or ""
        calls += [(t.function.name, dict(t.function.arguments)) for t in part.message.tool_calls or ()]
        last = part
    assert last is not None
    return {
        "content": content,
        "thinking": thinking,
        "calls": calls,
        "done_reason": last.done_reason,
        "usage": (last.prompt_eval_count, last.eval_count),
        "model": last.model,
    }


def assert_same(message: Any, ref: dict[str, Any]) -> None:
    assert message.complete
    assert (message.text, message.reasoning) == (ref["content"], ref["thinking"])
    assert [(t.name, t.parsed) for t in message.tool_calls] == ref["calls"]
    assert message.finish_reason == ref["done_reason"]
    assert (message.usage.input_tokens, message.usage.output_tokens) == ref["usage"]
    assert (message.model, message.provider) == (ref["model"], "ollama")
    turn = to_ollama(message)
    assert turn["content"] == ref["content"]
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in turn.get("tool_calls", [])] == ref[
        "calls"
    ]


def test_manifest_names_every_recording_with_its_origin() -> None:
    assert sorted(str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*.ndjson")) == sorted(
        m["file"] for m in MANIFEST
    )
    for m in MANIFEST:
        assert m["origin_repo"] and m["origin_path"] and len(m["commit"]) == 40 and m["license"]
        assert (CORPUS / m["file"]).stat().st_size == m["bytes"]


@pytest.mark.parametrize("how", ["whole", "per-line", "2-byte pieces"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(BODIES))
async def test_stream_equals_the_client_aggregation(name: str, kind: str, how: str) -> None:
    body = BODIES[name]
    parts: list[Any] = {
        "whole": [body],
        "per-line": [line + b"\n" for line in body.splitlines()],
        "2-byte pieces": [Split(body, tuple(range(2, len(body), 2)))],
    }[how]
    async with ProviderServer() as server:
        ref = await client_aggregate(server, body)
        server.script("ollama-chat", reply(parts))
        async with pipeline().open(source(kind, server.url)) as stream:
            message = await stream.collect()
    assert_same(message, ref)
    if name == TOOL_CALL and kind == "native":
        assert [t.id for t in message.tool_calls] == ["call_mo1wm122"]  # the server's id, kept natively


def test_the_recordings_hold_what_the_tests_rely_on() -> None:
    features = {f for m in MANIFEST for f in m["features"]}
    assert {"content", "thinking", "tool_calls", "non-ascii"} <= features
    assert {m["finish"] for m in MANIFEST} >= {"stop", "length"}
    assert max(m["events"] for m in MANIFEST) > 40  # multi-line streams, not only one-object answers
    assert all(m["license"] == "MIT" for m in MANIFEST)


def cut_points(body: bytes) -> list[int]:
    ends = [i + 1 for i, b in enumerate(body) if b == 0x0A]
    starts = [0, *ends[:-1]]
    cuts = set(ends[:-1]) | {(a + b) // 2 for a, b in zip(starts, ends, strict=True)} | {len(body) - 2}
    return sorted(c for c in cuts if 0 < c < len(body))


def sample(cuts: list[int], most: int = 24) -> list[int]:
    """At most ``most`` of ``cuts``, spread evenly (a 51-line recording has about 100 cut points)."""
    step = max(1, -(-len(cuts) // most))
    return sorted({*cuts[::step], cuts[-1]})


@pytest.mark.parametrize("end", ["eof", "truncate"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(BODIES))
async def test_truncations_are_never_complete(name: str, kind: str, end: str) -> None:
    body = BODIES[name]
    async with ProviderServer() as server:
        for cut in sample(cut_points(body)):
            server.script("ollama-chat", reply([body[:cut]], end=end))
            stream = pipeline().open(source(kind, server.url))
            with pytest.raises(StreamError) as info:
                async with stream:
                    await stream.collect()
            assert isinstance(info.value, StreamIncomplete | TransportError), (cut, info.value)
            assert not stream.message.complete, cut
            whole = [json.loads(line) for line in body[:cut].split(b"\n")[:-1]]
            assert stream.message.text == "".join(d["message"].get("content", "") for d in whole), cut
            assert stream.message.reasoning == "".join(d["message"].get("thinking", "") for d in whole), cut


@pytest.mark.parametrize("kind", KINDS)
async def test_the_done_line_unterminated_is_still_the_end(kind: str) -> None:
    body = BODIES["built/length"][:-1]  # no LF after the done line: the line itself is whole
    async with ProviderServer() as server:
        server.script("ollama-chat", reply([body]))
        async with pipeline().open(source(kind, server.url)) as stream:
            message = await stream.collect()
    assert message.complete and message.finish_reason == "length"


# -- errors, retry, timeouts -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_an_error_line_mid_stream_is_in_band_with_the_partial(kind: str) -> None:
    lines = ollama_chat_lines(["Hel", "lo", " there"])
    async with ProviderServer() as server:
        server.script("ollama-chat", reply([*lines[:2], ollama_error_line("model runner crashed")]))
        stream = pipeline().open(source(kind, server.url))
        with pytest.raises(ProviderError) as info:
            async with stream:
                await stream.collect()
    err = info.value
    assert err.in_band and err.error_type == "ollama_error" and "model runner crashed" in str(err)
    assert stream.message.text == "Hello" and not stream.message.complete


@pytest.mark.parametrize("kind", KINDS)
async def test_http_errors_keep_the_status(kind: str) -> None:
    async with ProviderServer() as server:
        server.script("ollama-chat", JSONReply(404, {"error": f"model '{MODEL}' not found"}))
        with pytest.raises(ProviderError) as info:
            async with pipeline(FAST_RETRY).open(source(kind, server.url)) as stream:
                await stream.collect()
        assert len(server.requests) == 1  # a 404 is not retried
    assert info.value.status_code == 404 and "not found" in str(info.value) and not info.value.retryable


@pytest.mark.parametrize("kind", KINDS)
async def test_503_then_a_whole_answer_is_retried(kind: str) -> None:
    body = BODIES["built/thinking-text-tools"]
    async with ProviderServer() as server:
        ref = await client_aggregate(server, body)
        server.script("ollama-chat", JSONReply(503, {"error": "server busy"}), reply([body]))
        async with pipeline(FAST_RETRY).open(source(kind, server.url)) as stream:
            message = await stream.collect()
        assert len(server.requests) == 3  # the reference, the 503, the retry
    assert_same(message, ref)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_cut_stream_is_restarted(kind: str) -> None:
    lines = ollama_chat_lines(TEXT)
    async with ProviderServer() as server:
        server.script("ollama-chat", reply(lines[:3]), reply(lines))
        cfg = {**FAST_RETRY, "recovery": {"mid_stream": "restart"}}
        async with pipeline(cfg).open(source(kind, server.url)) as stream:
            message = await stream.collect()
    assert message.complete and message.text == "".join(TEXT) and message.recovery == "restarted"


@pytest.mark.parametrize("kind", ["async-client", "native"])
async def test_a_stall_mid_stream_is_an_idle_timeout(kind: str) -> None:
    lines = ollama_chat_lines(["Hel", "lo"])
    async with ProviderServer() as server:
        server.script("ollama-chat", reply([lines[0], Stall()]))
        stream = pipeline({**EXACT, "timeouts": {"idle": 0.3}}).open(source(kind, server.url))
        with pytest.raises(StreamTimeout):
            async with stream:
                await stream.collect()
        await server.wait_disconnect()  # the connection is closed: Ollama stops generating
    assert stream.message.text == "Hel" and not stream.message.complete


async def test_a_gateway_page_is_not_a_stream() -> None:
    async with ProviderServer() as server:
        server.script(
            "ollama-chat", JSONReply(200, b"<html>proxy</html>", headers={"content-type": "text/html"})
        )
        with pytest.raises(ProtocolError, match="x-ndjson"):
            async with pipeline().open(source("native", server.url)) as stream:
                await stream.collect()


async def test_a_malformed_line_in_the_middle_is_a_protocol_error_natively() -> None:
    lines = ollama_chat_lines(["a", "b"])
    async with ProviderServer() as server:
        server.script("ollama-chat", reply([lines[0], b"{nope\n", *lines[1:]]))
        with pytest.raises(ProtocolError):
            async with pipeline().open(source("native", server.url)) as stream:
                await stream.collect()


def test_response_error_rows() -> None:
    in_band = classify(ollama.ResponseError("boom"), provider="ollama")
    assert isinstance(in_band, ProviderError) and in_band.in_band and in_band.status_code is None
    http = classify(ollama.ResponseError('{"error":"busy"}', 503), provider="ollama")
    assert isinstance(http, ProviderError) and (http.status_code, http.retryable, http.in_band) == (
        503,
        True,
        False,
    )


async def test_ndjson_reader_joins_lines_and_characters_split_across_reads() -> None:
    data = '{"a":"ü✓"}\r\n\n{"b":1}\n{"c":'.encode()

    async def pieces() -> Any:
        for i in range(len(data)):
            yield data[i : i + 1]

    lines = [line async for line in iter_ndjson(pieces())]
    assert [(x.text, x.unterminated) for x in lines] == [
        ('{"a":"ü✓"}', False),
        ('{"b":1}', False),
        ('{"c":', True),
    ]


def test_continuation_asks_the_model_to_go_on() -> None:
    from schwarm_stream import Message

    src = source("native", "http://127.0.0.1:9")
    cont = src.continuation(Message(text="Half"))
    assert cont is not None and cont.kwargs["messages"][1] == {"role": "assistant", "content": "Half"}
    assert src.continuation(Message(text="x", reasoning="y")) is None


# -- the offline provider speaks the protocol -----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_offline_provider_answers_with_a_tool_call_then_text(kind: str) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    question = {"role": "user", "content": "Weather in Oslo?"}
    async with ProviderServer(OfflineProvider()) as server:
        async with pipeline().open(source(kind, server.url, messages=[question], tools=tools)) as stream:
            first = await stream.collect()
        assert first.complete and first.tool_calls[0].parsed == {"city": "Oslo"}
        messages = [
            question,
            to_ollama(first),
            {"role": "tool", "content": '{"temp": 3}', "tool_name": "get_weather"},
        ]
        async with pipeline().open(source(kind, server.url, messages=messages, tools=tools)) as stream:
            second = await stream.collect()
    assert second.complete and second.text == 'The tool returned: {"temp": 3}'


# -- metrics: the GenAI conventions' attributes ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["async-client", "native"])
async def test_metrics_name_the_provider_and_count_the_tokens(kind: str) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from tests.test_metrics import Telemetry

    t = Telemetry()
    body = BODIES[TOOL_CALL]
    try:
        async with ProviderServer() as server:
            server.script("ollama-chat", reply([body]))
            async with t.pipeline().open(source(kind, server.url, model="gpt-oss:120b")) as stream:
                await stream.collect()
        attrs = {"gen_ai.provider.name": "ollama", "gen_ai.request.model": "gpt-oss:120b"}
        assert t.point("gen_ai.client.token.usage", **attrs, **{"gen_ai.token.type": "input"}).sum == 145
        assert t.point("gen_ai.client.token.usage", **attrs, **{"gen_ai.token.type": "output"}).sum == 44
        assert t.point("gen_ai.client.operation.duration", **attrs).count == 1
    finally:
        t.meter_provider.shutdown()
        t.tracer_provider.shutdown()
        t.logger_provider.shutdown()
