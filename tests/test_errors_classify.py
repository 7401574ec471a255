"""Exceptions become one typed error tree; classification through the real SDKs where possible."""

from __future__ import annotations

import email.utils
import socket
import time
from typing import Any

import anthropic
import openai
import pytest

from schwarm_stream import (
    ProtocolError,
    ProviderError,
    SchwarmStreamError,
    StreamError,
    StreamTimeout,
    TransportError,
)
from schwarm_stream._classify import classify, in_band_error, parse_retry_after, redact
from schwarm_stream.sources import anthropic_messages, openai_chat
from schwarm_stream.testing.server import JSONReply, ProviderServer, SSEReply, Stall

HI: Any = [{"role": "user", "content": "hi"}]


async def chat_error(core_pipeline: Any, client: Any) -> StreamError:
    with pytest.raises(StreamError) as info:
        async with core_pipeline().open(openai_chat(client, model="m", messages=HI)) as s:
            await s.collect()
    return info.value


@pytest.mark.parametrize(
    ("status", "etype", "headers", "retryable"),
    [
        (400, "invalid_request_error", {}, False),
        (401, "authentication_error", {}, False),
        (408, "timeout", {}, True),
        (429, "rate_limit_error", {}, True),
        (429, "insufficient_quota", {}, False),  # waiting does not refill a quota
        (500, "server_error", {}, True),
        (503, "server_error", {"x-should-retry": "false"}, False),
        (400, "invalid_request_error", {"x-should-retry": "true"}, True),
    ],
)
async def test_http_errors_through_the_openai_sdk(
    status: int,
    etype: str,
    headers: dict[str, str],
    retryable: bool,
    core_pipeline: Any,
    server: ProviderServer,
    oai: openai.AsyncOpenAI,
) -> None:
    body = {"error": {"message": "nope", "type": etype, "code": etype}}
    server.script("openai-chat", JSONReply(status, body, headers=headers))
    err = await chat_error(core_pipeline, oai)
    assert type(err) is ProviderError
    assert (err.status_code, err.error_type, err.retryable, err.in_band) == (status, etype, retryable, False)
    assert isinstance(err.__cause__, openai.APIStatusError)
    assert f"HTTP {status}" in str(err)


async def test_anthropic_http_529_is_retryable(
    core_pipeline: Any, server: ProviderServer, ant: anthropic.AsyncAnthropic
) -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    server.script("anthropic-messages", JSONReply(529, body, headers={"retry-after": "3"}))
    with pytest.raises(ProviderError) as info:
        src = anthropic_messages(ant, model="claude-test", max_tokens=5, messages=HI)
        async with core_pipeline().open(src) as s:
            await s.collect()
    err = info.value
    assert (err.status_code, err.error_type, err.retryable, err.retry_after) == (
        529,
        "overloaded_error",
        True,
        3.0,
    )
    assert err.provider == "anthropic"


async def test_connection_refused_is_a_transport_error(core_pipeline: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=f"http://127.0.0.1:{port}/v1")
    err = await chat_error(core_pipeline, client)
    assert type(err) is TransportError and err.retryable and "connection failed" in str(err)
    await client.close()


async def test_sdk_read_timeout_is_a_stream_timeout(core_pipeline: Any, server: ProviderServer) -> None:
    server.script("openai-chat", SSEReply([Stall()]))
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, timeout=0.2)
    err = await chat_error(core_pipeline, client)
    assert type(err) is StreamTimeout and err.retryable
    await client.close()


def test_in_band_error_shapes() -> None:
    anthropic_shape = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    flat = {"type": "error", "code": "rate_limit_exceeded", "message": "slow down", "param": None}
    nested = {"error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}}
    numeric = {"error": {"message": "bad gateway", "code": 502}}
    got = [in_band_error(b, provider="p") for b in (anthropic_shape, flat, nested, numeric)]
    assert [(e.status_code, e.error_type, e.retryable, e.in_band) for e in got] == [
        (529, "overloaded_error", True, True),
        (429, "rate_limit_exceeded", True, True),
        (429, "insufficient_quota", False, True),
        (502, "502", True, True),
    ]


def test_plain_exceptions_are_classified() -> None:
    import json

    try:
        json.loads("{x")
    except json.JSONDecodeError as exc:
        err = classify(exc, provider="p")
    assert type(err) is ProtocolError and err.offset == 1
    assert type(classify(ConnectionResetError("reset"), provider="p")) is TransportError
    assert type(classify(TimeoutError(), provider="p")) is StreamTimeout
    other = classify(ValueError("odd"), provider="p")
    assert type(other) is StreamError and "ValueError" in str(other)
    same = ProtocolError("x")
    assert classify(same, provider="p") is same


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "-3"}) == 0.0
    assert parse_retry_after({}) is None and parse_retry_after(None) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    got = parse_retry_after({"retry-after": date})
    assert got is not None and 25 <= got <= 30


def test_redact_masks_keys_and_bearer_tokens() -> None:
    text = "key sk-ant-abcdef123456 and Authorization: Bearer abc.def-ghi_jkl and sk-proj-XYZ123456"
    out = redact(text)
    assert "abcdef123456" not in out and "abc.def-ghi_jkl" not in out and "XYZ123456" not in out
    assert out.count("[redacted]") == 3


def test_error_tree() -> None:
    for cls in (ProviderError, TransportError, ProtocolError, StreamTimeout):
        assert issubclass(cls, StreamError) and issubclass(cls, SchwarmStreamError)


def _fake(module: str, name: str, **attrs: Any) -> BaseException:
    """An exception whose type looks like ``module.name`` (the table matches by module and name)."""
    cls: type[Exception] = type(name, (Exception,), {"__module__": module})
    exc = cls("boom")
    for key, value in attrs.items():
        setattr(exc, key, value)
    return exc


def _json_error() -> BaseException:
    import json

    try:
        json.loads("{x")
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError("unreachable")


#: One exception per row of ERROR_MAP (a new row without an example fails the test below).
ROW_EXAMPLES: dict[str, BaseException] = {
    "sdk_status": _fake("openai._exceptions", "RateLimitError", status_code=429, body=None, message="slow"),
    "sdk_timeout": _fake("anthropic._exceptions", "APITimeoutError"),
    "sdk_connection": _fake("openai._exceptions", "APIConnectionError"),
    "sdk_in_band": _fake("openai._exceptions", "APIError", body={"message": "x", "type": "server_error"}),
    "sdk_invalid_response": _fake("openai._exceptions", "APIResponseValidationError"),
    "genai_error": _fake(
        "google.genai.errors", "ServerError", code=503, status="UNAVAILABLE", message="x", details=None, response=None
    ),
    "genai_bad_response": _fake("google.genai.errors", "UnknownApiResponseError"),
    "ollama_error": _fake("ollama._types", "ResponseError", status_code=503, error="busy"),
    "aws_client_error": _fake(
        "botocore.exceptions",
        "ClientError",
        response={"Error": {"Code": "ThrottlingException"}, "ResponseMetadata": {"HTTPStatusCode": 429}},
    ),
    "aws_modeled_error": _fake(
        "botocore.errorfactory", "ThrottlingException", response={"Error": {"Code": "ThrottlingException"}}
    ),
    "aws_frame": _fake("botocore.eventstream", "ChecksumMismatch"),
    "aws_timeout": _fake("botocore.exceptions", "ReadTimeoutError"),
    "aws_transport": _fake("botocore.exceptions", "EndpointConnectionError"),
    "transport_timeout": _fake("httpx._exceptions", "ReadTimeout"),
    "transport": _fake("httpcore._exceptions", "RemoteProtocolError"),
    "json": _json_error(),
    "utf8": UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    "timeout": TimeoutError(),
    "connection": ConnectionResetError("reset"),
    "other": ValueError("odd"),
}


def test_every_row_of_the_error_map_maps() -> None:
    from schwarm_stream._classify import ERROR_MAP, FALLBACK, rule_for

    rows = [*ERROR_MAP, FALLBACK]
    assert sorted(r.name for r in rows) == sorted(ROW_EXAMPLES)
    for rule in rows:
        exc = ROW_EXAMPLES[rule.name]
        assert rule_for(exc) is rule, rule.name
        err = classify(exc, provider="p")
        assert type(err) is rule.error, rule.name
        assert err.provider == "p"


def test_sdk_status_rows_keep_the_http_fields() -> None:
    exc = _fake(
        "anthropic._exceptions",
        "InternalServerError",
        status_code=503,
        body={"type": "error", "error": {"type": "insufficient_quota", "message": "m"}},
        message="m",
    )
    err = classify(exc, provider="anthropic")
    assert isinstance(err, ProviderError)
    assert (err.status_code, err.error_type, err.retryable, err.in_band) == (
        503,
        "insufficient_quota",
        False,
        False,
    )
    in_band = classify(
        _fake(
            "anthropic._exceptions",
            "APIStatusError",
            status_code=200,
            body={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ),
        provider="anthropic",
    )
    assert isinstance(in_band, ProviderError) and (in_band.status_code, in_band.in_band) == (529, True)
