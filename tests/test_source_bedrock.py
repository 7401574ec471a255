"""AWS Bedrock ``ConverseStream``: recorded streams through the real boto3 and aiobotocore clients over
loopback sockets (``endpoint_url=http://127.0.0.1:port``, dummy credentials), the final message compared
with the non-streaming ``Converse`` answer built from the same recording; re-chunked variants,
truncations (never complete), mid-stream exceptions, HTTP errors, timeouts and metrics."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")  # the extra "bedrock"; CI installs it (.[all,test])
aiobotocore_session = pytest.importorskip("aiobotocore.session")

from botocore.eventstream import EventStreamBuffer  # noqa: E402
from botocore.exceptions import (  # noqa: E402
    ClientError,
    EndpointConnectionError,
    EventStreamError,
    ReadTimeoutError,
)

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
from schwarm_stream.sources import bedrock_converse, to_converse  # noqa: E402
from schwarm_stream.testing._bedrock_wire import (  # noqa: E402
    EVENTSTREAM,
    converse_stream_events,
    error_reply_headers,
    event_frame,
    exception_frame,
    frame,
)
from schwarm_stream.testing.server import (  # noqa: E402
    JSONReply,
    OfflineProvider,
    ProviderServer,
    Split,
    SSEReply,
    Stall,
)

CORPUS = Path(__file__).parent / "data" / "corpus-bedrock"
RECORDINGS = sorted(CORPUS.glob("*/*.eventstream"))
CREDS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "AKIDLOOPBACK",
    "aws_secret_access_key": "not-secret",
}
MODEL = "amazon.nova-micro-v1:0"
HI = [{"role": "user", "content": [{"text": "Hi"}]}]
#: one attempt, no recovery: what the recording holds, nothing else
EXACT = {"retry": {"attempts": 1}, "recovery": {"mid_stream": "raise"}}
FAST_RETRY = {"retry": {"attempts": 3, "initial_wait": 0, "max_wait": 0}}


def pipeline(cfg: dict[str, Any] | None = None) -> Pipeline:
    return Pipeline(config=Config.from_dict(cfg or EXACT))


@contextlib.asynccontextmanager
async def client_for(kind: str, url: str) -> AsyncIterator[Any]:
    """A ``bedrock-runtime`` client of the real SDK, pointed at the loopback server."""
    if kind == "aiobotocore":
        session = aiobotocore_session.get_session()
        async with session.create_client("bedrock-runtime", endpoint_url=url, **CREDS) as client:
            yield client
    else:
        yield boto3.client("bedrock-runtime", endpoint_url=url, **CREDS)


def reply(parts: list[Any], **kw: Any) -> SSEReply:
    return SSEReply(parts, content_type=EVENTSTREAM, **kw)


# -- the reference: the Converse answer, joined from the frames by the service's documented shape -------


def frames_of(body: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    buf = EventStreamBuffer()
    buf.add_data(body)
    for message in buf:  # botocore's decoder checks both CRCs; a cut last frame stays in its buffer
        yield message.headers[":event-type"], json.loads(message.payload)


def converse_from(body: bytes) -> dict[str, Any]:
    """What ``Converse`` (non-streaming) answers for the content of this ``ConverseStream`` body.

    Client tool uses lose their optional ``type: tool_use`` (our ToolCall does not carry it).
    """
    blocks: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for kind, p in frames_of(body):
        i = p.get("contentBlockIndex", 0)
        if kind == "contentBlockStart":
            start = p["start"]
            if "toolUse" in start:
                blocks[i] = {"toolUse": {**start["toolUse"], "input": ""}}
            elif "toolResult" in start:
                blocks[i] = {"toolResult": {**start["toolResult"], "content": []}}
        elif kind == "contentBlockDelta":
            d = p["delta"]
            if "text" in d:
                blocks.setdefault(i, {"text": ""})["text"] += d["text"]
            elif "toolUse" in d:
                blocks[i]["toolUse"]["input"] += d["toolUse"]["input"]
            elif "toolResult" in d:
                blocks[i]["toolResult"]["content"] += d["toolResult"]
            elif "reasoningContent" in d:
                r = blocks.setdefault(i, {"reasoningContent": {}})["reasoningContent"]
                rc = d["reasoningContent"]
                if "redactedContent" in rc:
                    r["redactedContent"] = base64.b64decode(rc["redactedContent"])
                else:
                    text = r.setdefault("reasoningText", {"text": ""})
                    text["text"] += rc.get("text", "")
                    if "signature" in rc:
                        text["signature"] = text.get("signature", "") + rc["signature"]
        elif kind == "messageStop":
            out["stopReason"] = p["stopReason"]
        elif kind == "metadata":  # botocore keeps only the members its service model knows
            out["usage"] = {k: v for k, v in p["usage"].items() if k in USAGE_MEMBERS}
    content = []
    for i in sorted(blocks):
        b = blocks[i]
        if "toolUse" in b:
            use = b["toolUse"]
            use["input"] = json.loads(use["input"]) if use["input"] else {}
            if use.get("type") == "tool_use":
                del use["type"]
        content.append(b)
    return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": None, **out}


def _usage_members() -> frozenset[str]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    return frozenset(model.shape_for("TokenUsage").members)


USAGE_MEMBERS = _usage_members()


def load(path: Path) -> bytes:
    return path.read_bytes()


def boundaries(body: bytes) -> list[int]:
    """The byte offset after each frame."""
    out, pos = [], 0
    while pos < len(body):
        pos += int.from_bytes(body[pos : pos + 4], "big")
        out.append(pos)
    return out


def rid(path: Path) -> str:
    return path.name.split(".")[0]


# -- the encoder -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", RECORDINGS, ids=rid)
def test_recorded_frames_reencode_to_the_same_bytes(path: Path) -> None:
    body = path.read_bytes()
    buf = EventStreamBuffer()
    buf.add_data(body)
    again = b"".join(frame(dict(m.headers), m.payload) for m in buf)
    assert again == body


def test_built_frames_decode_with_botocore() -> None:
    frames = converse_stream_events(
        ["Grüß ", "dich 👋"], tool_uses=[{"id": "t1", "name": "f", "chunks": ['{"a"', ":1}"]}]
    )
    decoded = list(frames_of(b"".join(frames)))
    assert [k for k, _ in decoded][:1] == ["messageStart"]
    assert [k for k, _ in decoded][-2:] == ["messageStop", "metadata"]
    ref = converse_from(b"".join(frames))
    assert ref["output"]["message"]["content"] == [
        {"text": "Grüß dich 👋"},
        {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}},
    ]
    assert ref["stopReason"] == "tool_use"


# -- recordings through both SDKs, whole and re-chunked ---------------------------------------------------


def rechunked(body: bytes, how: str) -> list[Any]:
    if how == "whole":
        return [body]
    if how == "every-7-bytes":
        return [Split(body, list(range(7, len(body), 7)))]
    # one byte into every frame: each frame's prelude arrives in two reads
    return [Split(body, [b + 1 for b in [0, *boundaries(body)[:-1]]])]


@pytest.mark.parametrize("how", ["whole", "every-7-bytes", "frame-plus-one"])
@pytest.mark.parametrize("kind", ["aiobotocore", "boto3"])
@pytest.mark.parametrize("path", RECORDINGS, ids=rid)
async def test_recording_equals_the_converse_answer(path: Path, kind: str, how: str) -> None:
    body = load(path)
    async with ProviderServer() as server, client_for(kind, server.url) as client:
        server.script("bedrock-converse-stream", reply(rechunked(body, how)))
        stream = pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI))
        async with stream:
            message = await stream.collect()
    assert message.complete
    assert to_converse(message) == converse_from(body)
    assert message.provider == "aws.bedrock" and message.model == MODEL
    assert server.requests[0].path == "/model/amazon.nova-micro-v1%3A0/converse-stream"


async def test_tool_call_and_text_of_a_recording() -> None:
    body = (CORPUS / "pydantic-ai/test_bedrock_model_iter_stream.response0.eventstream").read_bytes()
    async with ProviderServer() as server, client_for("aiobotocore", server.url) as client:
        server.script("bedrock-converse-stream", reply([body]))
        async with pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI)) as stream:
            message = await stream.collect()
    assert message.finish_reason == "tool_use"
    [call] = message.tool_calls
    assert (
        call.name == "get_temperature" and call.parsed == {"city": "Paris"} and call.id.startswith("tooluse_")
    )
    assert message.usage is not None and (message.usage.input_tokens, message.usage.output_tokens) == (
        471,
        91,
    )
    assert message.usage.extras["totalTokens"] == 562


async def test_reasoning_signature_and_redacted_reasoning() -> None:
    thinking = (
        CORPUS / "pydantic-ai/test_bedrock_model_thinking_part_stream.response0.eventstream"
    ).read_bytes()
    redacted = (
        CORPUS / "pydantic-ai/test_bedrock_model_thinking_part_redacted_stream.response0.eventstream"
    ).read_bytes()
    async with ProviderServer() as server, client_for("aiobotocore", server.url) as client:
        server.script("bedrock-converse-stream", reply([thinking]), reply([redacted]))
        messages = []
        for _ in range(2):
            async with pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI)) as stream:
                messages.append(await stream.collect())
    first, second = messages
    assert first.reasoning.startswith("The user has greeted me")
    [block] = [b for b in first.content if b.type == "reasoning"]
    assert block.signature  # kept: Claude needs it back in the next turn
    assert [b.type for b in second.content][:2] == ["redacted_reasoning", "redacted_reasoning"]
    assert isinstance(second.content[0].data, bytes)


async def test_server_tool_blocks_are_not_calls_for_the_caller() -> None:
    body = (
        CORPUS / "pydantic-ai/test_bedrock_model_code_execution_tool_stream.response0.eventstream"
    ).read_bytes()
    async with ProviderServer() as server, client_for("aiobotocore", server.url) as client:
        server.script("bedrock-converse-stream", reply([body]))
        async with pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI)) as stream:
            message = await stream.collect()
    assert [t.name for t in message.tool_calls] == ["final_result"]  # the code interpreter ran at AWS
    assert [b.type for b in message.content] == ["server_tool_use", "tool_result", "tool_call"]


# -- truncations: never complete, the partial exact ------------------------------------------------------


def cut_points(body: bytes) -> list[int]:
    """Frame boundaries and mid-frame cuts, a sample of the long recordings' (the last frames all)."""
    ends = boundaries(body)
    mids = [(a + b) // 2 for a, b in zip([0, *ends], ends, strict=False)]
    points = sorted({*ends[:-1], *mids})
    step = max(1, len(points) // 16)
    return sorted({*points[::step], *points[-5:]})


@pytest.mark.parametrize("end", ["eof", "truncate"])
@pytest.mark.parametrize("path", RECORDINGS, ids=rid)
async def test_truncations_are_never_complete(path: Path, end: str) -> None:
    body = load(path)
    async with ProviderServer() as server, client_for("aiobotocore", server.url) as client:
        for cut in cut_points(body):
            server.script("bedrock-converse-stream", reply([body[:cut]], end=end))
            stream = pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI))
            with pytest.raises(StreamError) as info:
                async with stream:
                    await stream.collect()
            assert isinstance(info.value, StreamIncomplete | TransportError), (cut, info.value)
            message = stream.message
            assert not message.complete, cut
            expected = converse_from(body[:cut])["output"]["message"]["content"]
            assert message.text == "".join(b.get("text", "") for b in expected), cut


@pytest.mark.parametrize("end", ["eof", "truncate", "rst"])
async def test_truncations_through_boto3(end: str) -> None:
    body = (CORPUS / "pydantic-ai/test_bedrock_model_iter_stream.response0.eventstream").read_bytes()
    ends = boundaries(body)
    async with ProviderServer() as server, client_for("boto3", server.url) as client:
        for cut in (
            ends[0],
            ends[5],
            ends[-2],
            ends[-1] - 3,
        ):  # after messageStart, mid-text, before metadata
            server.script("bedrock-converse-stream", reply([body[:cut]], end=end))
            stream = pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI))
            with pytest.raises((StreamIncomplete, TransportError)):
                async with stream:
                    await stream.collect()
            assert not stream.message.complete


async def test_the_cut_between_message_stop_and_metadata_says_so() -> None:
    frames = converse_stream_events(["Hel", "lo"])
    async with ProviderServer() as server, client_for("aiobotocore", server.url) as client:
        server.script("bedrock-converse-stream", reply(frames[:-1]))
        stream = pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI))
        with pytest.raises(StreamIncomplete, match="without metadata"):
            async with stream:
                await stream.collect()
    assert stream.message.text == "Hello" and stream.message.finish_reason == "end_turn"
    assert not stream.message.complete


# -- errors: mid-stream exception frames, HTTP errors ----------------------------------------------------


async def test_throttling_mid_stream_is_an_in_band_retryable_error_with_the_partial() -> None:
    frames = converse_stream_events(["Hel", "lo", " world"])
    async with ProviderServer() as server, client_for("aiobotocore", server.url) as client:
        server.script(
            "bedrock-converse-stream",
            reply([*frames[:3], exception_frame("throttlingException", "Too many tokens")]),
        )
        stream = pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI))
        with pytest.raises(ProviderError) as info:
            async with stream:
                await stream.collect()
    err = info.value
    assert (err.status_code, err.error_type, err.in_band, err.retryable) == (
        429,
        "throttlingException",
        True,
        True,
    )
    assert "Too many tokens" in str(err)
    assert stream.message.text == "Hello" and not stream.message.complete


@pytest.mark.parametrize("kind", ["aiobotocore", "boto3"])
async def test_model_stream_error_before_content_is_retried(kind: str) -> None:
    body = (CORPUS / "pydantic-ai/test_bedrock_model_stream.response0.eventstream").read_bytes()
    broken = [
        event_frame("messageStart", {"role": "assistant"}),
        exception_frame("modelStreamErrorException", "model failed", originalStatusCode=500),
    ]
    async with ProviderServer() as server, client_for(kind, server.url) as client:
        server.script("bedrock-converse-stream", reply(broken), reply([body]))
        async with pipeline(FAST_RETRY).open(bedrock_converse(client, modelId=MODEL, messages=HI)) as stream:
            message = await stream.collect()
    assert len(server.requests) == 2
    assert message.complete and to_converse(message) == converse_from(body)


async def test_model_stream_error_after_content_is_recovered_by_restart() -> None:
    body = (CORPUS / "pydantic-ai/test_bedrock_model_stream.response0.eventstream").read_bytes()
    frames = converse_stream_events(["Par", "is"])
    broken = [
        *frames[:3],
        exception_frame("modelStreamErrorException", "model failed", originalStatusCode=500),
    ]
    cfg = {**FAST_RETRY, "recovery": {"mid_stream": "restart"}}
    async with ProviderServer() as server, client_for("aiobotocore", server.url) as client:
        server.script("bedrock-converse-stream", reply(broken), reply([body]))
        async with pipeline(cfg).open(bedrock_converse(client, modelId=MODEL, messages=HI)) as stream:
            message = await stream.collect()
    assert message.complete and message.recovery == "restarted"
    assert to_converse(message) == converse_from(body)


async def test_validation_exception_mid_stream_is_not_retried() -> None:
    frames = converse_stream_events(["a"])
    async with ProviderServer() as server, client_for("aiobotocore", server.url) as client:
        server.script(
            "bedrock-converse-stream", reply([frames[0], exception_frame("validationException", "bad")])
        )
        stream = pipeline(FAST_RETRY).open(bedrock_converse(client, modelId=MODEL, messages=HI))
        with pytest.raises(ProviderError) as info:
            async with stream:
                await stream.collect()
    assert (info.value.status_code, info.value.retryable) == (400, False)
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", ["aiobotocore", "boto3"])
async def test_http_throttling_is_retried_by_us_not_by_the_sdk(kind: str) -> None:
    throttled = JSONReply(
        429, {"message": "Too many requests"}, headers=error_reply_headers("ThrottlingException")
    )
    async with ProviderServer() as server, client_for(kind, server.url) as client:
        server.script("bedrock-converse-stream", throttled, throttled, throttled)
        stream = pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI))
        with pytest.raises(ProviderError) as info:
            async with stream:
                await stream.collect()
        assert len(server.requests) == 1  # the SDK's own retries (3 or 5 attempts) are off
        err = info.value
        assert (err.status_code, err.error_type, err.in_band, err.retryable) == (
            429,
            "ThrottlingException",
            False,
            True,
        )
        # and the same client without our source retries by itself: the test above means something
        other = boto3.client("bedrock-runtime", endpoint_url=server.url, **CREDS)
        server.script("bedrock-converse-stream", throttled, throttled, throttled, throttled, throttled)
        before = len(server.requests)
        with pytest.raises(ClientError):
            import asyncio

            await asyncio.to_thread(other.converse_stream, modelId=MODEL, messages=HI)
        assert len(server.requests) - before > 1


async def test_http_validation_error_is_not_retried() -> None:
    bad = JSONReply(
        400,
        {"message": "The provided model identifier is invalid."},
        headers=error_reply_headers("ValidationException"),
    )
    async with ProviderServer() as server, client_for("aiobotocore", server.url) as client:
        server.script("bedrock-converse-stream", bad, bad)
        stream = pipeline(FAST_RETRY).open(bedrock_converse(client, modelId=MODEL, messages=HI))
        with pytest.raises(ProviderError, match="model identifier is invalid") as info:
            async with stream:
                await stream.collect()
    assert (info.value.status_code, info.value.retryable) == (400, False)
    assert len(server.requests) == 1


async def test_a_corrupt_frame_is_a_protocol_error() -> None:
    frames = converse_stream_events(["abc"])
    bad = bytearray(frames[1])
    bad[-6] ^= 0xFF  # a payload byte: the message CRC no longer matches
    async with ProviderServer() as server, client_for("aiobotocore", server.url) as client:
        server.script("bedrock-converse-stream", reply([frames[0], bytes(bad), *frames[2:]]))
        stream = pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI))
        with pytest.raises(ProtocolError, match="event-stream frame"):
            async with stream:
                await stream.collect()


async def test_connection_refused_is_a_transport_error() -> None:
    async with ProviderServer() as server:
        url = server.url
    async with client_for("aiobotocore", url) as client:
        stream = pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI))
        with pytest.raises(TransportError):
            async with stream:
                await stream.collect()


def test_every_aws_row_of_the_error_map_with_real_botocore_exceptions() -> None:
    from botocore.eventstream import ChecksumMismatch

    from schwarm_stream._classify import rule_for

    client = boto3.client("bedrock-runtime", endpoint_url="http://127.0.0.1:9", **CREDS)
    response = {
        "Error": {"Code": "ThrottlingException", "Message": "slow"},
        "ResponseMetadata": {"HTTPStatusCode": 429, "HTTPHeaders": {"retry-after": "3"}},
    }
    modeled = client.exceptions.ThrottlingException(response, "ConverseStream")  # botocore.errorfactory
    in_band = EventStreamError(
        {"Error": {"Code": "serviceUnavailableException", "Message": "x"}}, "ConverseStream"
    )
    cases: list[tuple[BaseException, str, type[StreamError]]] = [
        (ClientError(response, "ConverseStream"), "aws_client_error", ProviderError),
        (in_band, "aws_client_error", ProviderError),
        (modeled, "aws_modeled_error", ProviderError),
        (ChecksumMismatch(1, 2), "aws_frame", ProtocolError),
        (ReadTimeoutError(endpoint_url="http://x"), "aws_timeout", StreamTimeout),
        (EndpointConnectionError(endpoint_url="http://x"), "aws_transport", TransportError),
    ]
    for exc, row, error in cases:
        assert rule_for(exc).name == row, exc
        assert type(classify(exc, provider="aws.bedrock")) is error, exc
    for exc in (cases[0][0], modeled):
        err = classify(exc, provider="aws.bedrock")
        assert isinstance(err, ProviderError)
        assert (err.status_code, err.error_type, err.retryable, err.retry_after, err.in_band) == (
            429,
            "ThrottlingException",
            True,
            3.0,
            False,
        )
    err = classify(in_band, provider="aws.bedrock")
    assert isinstance(err, ProviderError) and (err.status_code, err.in_band, err.retryable) == (
        503,
        True,
        True,
    )
    quota = ClientError(
        {"Error": {"Code": "ServiceQuotaExceededException"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "x"
    )
    assert classify(quota, provider="p").retryable is False


# -- timeouts, cancellation ------------------------------------------------------------------------------


async def test_a_boto3_read_blocked_in_its_worker_thread_is_woken() -> None:
    # boto3 reads the body in a worker thread. Closing the body while that read is blocked takes the
    # buffer's lock the read holds: without a socket shutdown the event loop itself would freeze until
    # botocore's read timeout (120 s here) ended the read. A liveness bound, far from either side.
    import asyncio

    from botocore.config import Config as BotoConfig

    frames = converse_stream_events(["Hel", "lo"])
    cfg = {**EXACT, "timeouts": {"idle": 0.3}}
    async with ProviderServer() as server:
        client = boto3.client(
            "bedrock-runtime", endpoint_url=server.url, config=BotoConfig(read_timeout=120), **CREDS
        )
        server.script("bedrock-converse-stream", reply([*frames[:2], Stall()]))
        stream = pipeline(cfg).open(bedrock_converse(client, modelId=MODEL, messages=HI))
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(StreamTimeout, match=r"timeouts\.idle"):
            async with stream:
                await stream.collect()
        assert loop.time() - started < 60, "the loop waited for botocore's read timeout"


@pytest.mark.parametrize("kind", ["aiobotocore", "boto3"])
async def test_a_stall_mid_stream_is_an_idle_timeout(kind: str) -> None:
    frames = converse_stream_events(["Hel", "lo"])
    cfg = {**EXACT, "timeouts": {"idle": 0.3}}
    async with ProviderServer() as server, client_for(kind, server.url) as client:
        server.script("bedrock-converse-stream", reply([*frames[:2], Stall()]))
        stream = pipeline(cfg).open(bedrock_converse(client, modelId=MODEL, messages=HI))
        with pytest.raises(StreamTimeout):
            async with stream:
                await stream.collect()
        await server.wait_disconnect()  # the connection is closed, the provider stops generating
    assert stream.message.text == "Hel" and not stream.message.complete


@pytest.mark.parametrize("kind", ["aiobotocore", "boto3"])
async def test_leaving_early_closes_the_connection(kind: str) -> None:
    frames = converse_stream_events(["one", "two", "three"])
    async with ProviderServer() as server, client_for(kind, server.url) as client:
        server.script("bedrock-converse-stream", reply([*frames[:3], Stall()]))
        async with pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI)) as stream:
            async for _ in stream:
                break
        await server.wait_disconnect()


# -- offline provider: the streamed answer is the Converse answer ----------------------------------------


@pytest.mark.parametrize("tools", [False, True])
async def test_offline_stream_equals_offline_converse(tools: bool) -> None:
    import asyncio

    request: dict[str, Any] = {
        "modelId": MODEL,
        "messages": [{"role": "user", "content": [{"text": "Weather in Oslo?"}]}],
    }
    if tools:
        schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        request["toolConfig"] = {
            "tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": schema}}}]
        }
    async with ProviderServer(OfflineProvider()) as server, client_for("aiobotocore", server.url) as client:
        async with pipeline().open(bedrock_converse(client, **request)) as stream:
            message = await stream.collect()
        whole = await asyncio.to_thread(
            boto3.client("bedrock-runtime", endpoint_url=server.url, **CREDS).converse, **request
        )
    whole.pop("ResponseMetadata")
    whole.pop("metrics")
    assert message.complete and to_converse(message) == whole
    assert bool(message.tool_calls) is tools


# -- metrics: the OTel GenAI provider name ----------------------------------------------------------------


async def test_metrics_name_the_provider_aws_bedrock() -> None:
    from tests.test_metrics import Telemetry

    body = (CORPUS / "pydantic-ai/test_bedrock_model_stream.response0.eventstream").read_bytes()
    otel = Telemetry()
    try:
        async with ProviderServer() as server, client_for("aiobotocore", server.url) as client:
            server.script("bedrock-converse-stream", reply([body]))
            async with otel.pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI)) as stream:
                await stream.collect()
        points = otel.points("gen_ai.client.token.usage")
        assert points and {p.attributes["gen_ai.provider.name"] for p in points} == {"aws.bedrock"}
        assert {p.attributes.get("gen_ai.request.model") for p in points} == {MODEL}
        assert sorted(p.sum for p in points) == [13, 82]
    finally:
        otel.meter_provider.shutdown()
        otel.tracer_provider.shutdown()
        otel.logger_provider.shutdown()


# -- after metadata: the connection is reused; a stalled tail does not spoil a complete answer -----------


@pytest.mark.parametrize("kind", ["aiobotocore", "boto3"])
async def test_a_complete_stream_leaves_its_connection_reusable(kind: str) -> None:
    frames = converse_stream_events(["a", "b"])
    async with ProviderServer() as server, client_for(kind, server.url) as client:
        server.script("bedrock-converse-stream", reply(frames), reply(frames))
        for _ in range(2):
            async with pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI)) as stream:
                assert (await stream.collect()).complete
    first, second = server.requests
    assert first.connection_id == second.connection_id


@pytest.mark.parametrize("kind", ["aiobotocore", "boto3"])
async def test_a_stall_after_metadata_still_completes_and_closes(kind: str) -> None:
    frames = converse_stream_events(["a", "b"])
    async with ProviderServer() as server, client_for(kind, server.url) as client:
        server.script("bedrock-converse-stream", reply([*frames, Stall()]))
        async with pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI)) as stream:
            message = await stream.collect()
        await server.wait_disconnect()
    assert message.complete and message.text == "ab"


async def test_cache_counts_are_input_tokens_beside_input_tokens() -> None:
    usage = {"inputTokens": 6, "outputTokens": 9, "cacheReadInputTokens": 6289, "cacheWriteInputTokens": 3337}
    frames = converse_stream_events(["ok"], usage=usage)
    async with ProviderServer() as server, client_for("aiobotocore", server.url) as client:
        server.script("bedrock-converse-stream", reply(frames))
        async with pipeline().open(bedrock_converse(client, modelId=MODEL, messages=HI)) as stream:
            message = await stream.collect()
    u = message.usage
    assert u is not None and (u.cache_read_tokens, u.cache_write_tokens) == (6289, 3337)
    assert u.all_input_tokens == 6 + 6289 + 3337
    assert to_converse(message)["usage"] == {**usage, "totalTokens": 6 + 9 + 6289 + 3337}
