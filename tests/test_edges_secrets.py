"""Issue 14 item 4: no secret in errors, chained exceptions, logs, spans or span events.

Real SDK clients (openai, anthropic) and the native source over real sockets to the ProviderServer,
which answers 401 with a body echoing the configured key and other well-known key formats; the
real OTel SDK with in-memory exporters records what the metrics built-in emits.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import schwarm_stream
from schwarm_stream import ProviderError
from schwarm_stream._scrub import scrub, scrub_exception
from schwarm_stream._tracing import TRACE_ENV
from schwarm_stream.builtins.metrics import CAPTURE_CONTENT_ENV, MetricsPlugin
from schwarm_stream.sources import anthropic_messages, openai_chat
from schwarm_stream.sources.native import native_anthropic, native_openai_chat
from schwarm_stream.testing.server import JSONReply, ProviderServer, SSEReply
from tests.support.faults import consume, golden_events

pytestmark = pytest.mark.usefixtures("no_waits")

#: A key in no well-known format: only the exact, configured-key scrub can catch it.
KEY = "corp-gw-7Hq2Zx81Qp0LmNvB44kd"
#: Well-known formats echoed by the 401 body (not the configured key).
FORMATS = {
    "gemini": "AIzaSyD-1234567890abcdefghijklmnopqrs",
    "anthropic": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv",
    "openai": "sk-proj-AbCdEfGhIjKlMnOpQrStUv123",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "github_pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
    "oauth": "gho_16C7e42F292c6912E7710c838347Ae178B4a",
    "basic": "dXNlcm5hbWU6c2VjcmV0cGFzc3dvcmQ=",
    "bearer": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc+/def==",
}
SECRETS = [KEY, *FORMATS.values()]
HI: Any = [{"role": "user", "content": "hi"}]


def _echo_401(route: str) -> JSONReply:
    echoed = (
        f"Incorrect API key provided: {KEY}. Also seen: {FORMATS['gemini']} {FORMATS['anthropic']} "
        f"{FORMATS['openai']} {FORMATS['aws']} {FORMATS['github']} {FORMATS['github_pat']} "
        f"{FORMATS['oauth']} Authorization: Basic {FORMATS['basic']} / Bearer {FORMATS['bearer']}"
    )
    body = {"type": "error", "error": {"type": "authentication_error", "message": echoed, "key": KEY}}
    return JSONReply(401, body)


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    def pipeline(self) -> schwarm_stream.Pipeline:
        plugin = MetricsPlugin(
            meter_provider=self.meter_provider,
            tracer_provider=self.tracer_provider,
            logger_provider=self.logger_provider,
        )
        return schwarm_stream.Pipeline([("metrics", plugin)])

    def everything(self) -> str:
        """Every attribute, event, status and log record recorded, as one text."""
        parts: list[str] = []
        for s in self.spans.get_finished_spans():
            parts += [s.name, repr(dict(s.attributes or {})), repr(s.status.description)]
            for e in s.events:
                parts += [e.name, repr(dict(e.attributes or {}))]
        for rec in self.logs.get_finished_logs():
            lr = rec.log_record
            parts += [repr(lr.body), repr(dict(lr.attributes or {}))]
        return "\n".join(parts)


@pytest.fixture
async def server() -> AsyncIterator[ProviderServer]:
    async with ProviderServer() as srv:
        yield srv


def _source(kind: str, server: ProviderServer, clients: list[Any]) -> Any:
    if kind == "openai-sdk":
        client = openai.AsyncOpenAI(api_key=KEY, base_url=server.openai_base_url, max_retries=0)
        clients.append(client)
        return openai_chat(client, model="gpt-4o-mini", messages=HI)
    if kind == "anthropic-sdk":
        aclient = anthropic.AsyncAnthropic(api_key=KEY, base_url=server.anthropic_base_url, max_retries=0)
        clients.append(aclient)
        return anthropic_messages(aclient, model="claude-haiku-4-5", max_tokens=64, messages=HI)
    if kind == "native-openai":
        return native_openai_chat(server.openai_base_url, KEY, model="m", messages=HI)
    return native_anthropic(server.anthropic_base_url, KEY, model="m", max_tokens=10, messages=HI)


@pytest.mark.parametrize("kind", ["openai-sdk", "anthropic-sdk", "native-openai", "native-anthropic"])
async def test_a_401_echoing_keys_leaks_them_nowhere(
    server: ProviderServer, kind: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRACE_ENV, "1")  # the hook trace logs arguments and errors too
    caplog.set_level(logging.DEBUG)
    route = "anthropic-messages" if "anthropic" in kind else "openai-chat"
    server.script(route, _echo_401(route))
    clients: list[Any] = []
    telemetry = Telemetry()
    try:
        _, error = await consume(telemetry.pipeline().open(_source(kind, server, clients)))
    finally:
        for c in clients:
            await c.close()
    assert isinstance(error, ProviderError) and error.status_code == 401
    assert "[redacted]" in str(error)
    shown = {
        "str": str(error),
        "repr": repr(error),
        "traceback": "".join(traceback.format_exception(error)),
        "body": repr(error.body),
        "logs": caplog.text,
        "otel": telemetry.everything(),
    }
    cause = error.__cause__
    while cause is not None:  # every chained exception the traceback can show, by str and repr
        shown[f"cause {type(cause).__name__}"] = f"{cause} {cause!r} {getattr(cause, 'body', '')!r}"
        cause = cause.__cause__ or cause.__context__
    assert telemetry.spans.get_finished_spans(), "the metrics built-in recorded no span"
    for where, text in shown.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked in {where}: {text[:2000]}"


async def test_default_telemetry_records_no_prompt_completion_or_secret(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    prompt = "PROMPT-TEXT-do-not-record"
    server.script("openai-chat", SSEReply(golden_events("openai-chat")))
    client = openai.AsyncOpenAI(api_key=KEY, base_url=server.openai_base_url, max_retries=0)
    telemetry = Telemetry()
    try:
        src = openai_chat(client, model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
        seen, error = await consume(telemetry.pipeline().open(src))
    finally:
        await client.close()
    assert error is None
    completion = seen.text()
    assert completion, "the golden stream has text"
    recorded = telemetry.everything()
    assert telemetry.spans.get_finished_spans()
    assert prompt not in recorded and completion not in recorded and KEY not in recorded
    assert "gen_ai.output.messages" not in recorded and "gen_ai.input.messages" not in recorded
    assert not telemetry.logs.get_finished_logs()


def test_scrub_formats_and_chained_exceptions() -> None:
    for name, secret in FORMATS.items():
        shown = f"Basic {secret}" if name == "basic" else f"Bearer {secret}" if name == "bearer" else secret
        assert secret not in scrub(f"x {shown} y"), secret
    assert scrub("Bearer abc+/def==") == "[redacted]"
    assert (
        scrub("token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4")
        == "token=[redacted]"
    )
    assert scrub("a normal sentence about keys") == "a normal sentence about keys"
    try:
        try:
            raise ValueError(f"inner {FORMATS['aws']}")
        except ValueError as inner:
            raise RuntimeError(f"outer {KEY}") from inner
    except RuntimeError as outer:
        scrub_exception(outer, [KEY])
        text = "".join(traceback.format_exception(outer))
    assert KEY not in text and FORMATS["aws"] not in text and "[redacted]" in text
