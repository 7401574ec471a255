"""The ``metrics`` built-in: OpenTelemetry metrics and spans, read back through the SDK's in-memory
reader and exporter.

Every test builds its own ``MeterProvider``/``TracerProvider`` and registers a
:class:`MetricsPlugin` bound to them under the built-in's name (replacing the
default, which uses the global providers). Streams run through the real SDK
clients over loopback sockets to :class:`ProviderServer`.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import json
import logging
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

import schwarm_stream
from schwarm_stream import Chunk, Recovery, StreamError, hookimpl
from schwarm_stream.builtins import metrics as metrics_module
from schwarm_stream.builtins.metrics import (
    CAPTURE_CONTENT_ENV,
    DURATION_BUCKETS,
    INSTRUMENTS,
    TOKEN_BUCKETS,
    MetricsPlugin,
    _end_failed,
    capture_mode,
)
from schwarm_stream.sources import anthropic_messages, openai_chat, openai_responses
from schwarm_stream.testing.server import (
    JSONReply,
    ProviderServer,
    SSEReply,
    Stall,
    openai_chat_events,
    openai_error_chunk,
)
from tests.support.corpus import CorpusStream, corpus_root, load_corpus

HI: Any = [{"role": "user", "content": "hi"}]
API_KEY = "sk-test-ABCDEFGHIJKLMNOP"
SECRET = "sk-live-SECRETSECRET123456"
PER_CHUNK_HOOKS = {
    "stream_receive",
    "stream_transform",
    "stream_event",
    "stream_chunk",
    "stream_tool_call_delta",
}


# -- harness ------------------------------------------------------------------------------------


@dataclass
class Telemetry:
    """SDK providers with in-memory export, and readers for what was recorded."""

    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)
    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    logs: InMemoryLogRecordExporter = field(default_factory=InMemoryLogRecordExporter)

    def __post_init__(self) -> None:
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))

    def plugin(self, **kw: Any) -> MetricsPlugin:
        return MetricsPlugin(
            meter_provider=self.meter_provider,
            tracer_provider=self.tracer_provider,
            logger_provider=self.logger_provider,
            **kw,
        )

    def pipeline(self, *plugins: Any, **kw: Any) -> schwarm_stream.Pipeline:
        return schwarm_stream.Pipeline([("metrics", self.plugin(**kw)), *plugins])

    def points(self, name: str) -> list[Any]:
        """The data points of instrument ``name`` (empty when it recorded nothing)."""
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out.extend(m.data.data_points)
        return out

    def point(self, name: str, **attrs: Any) -> Any:
        """The one data point of ``name`` whose attributes include ``attrs``."""
        found = [p for p in self.points(name) if all(p.attributes.get(k) == v for k, v in attrs.items())]
        assert len(found) == 1, (name, attrs, [dict(p.attributes) for p in self.points(name)])
        return found[0]

    def finished(self) -> tuple[ReadableSpan, ...]:
        return self.spans.get_finished_spans()

    def stream_span(self) -> ReadableSpan:
        spans = [s for s in self.finished() if s.kind is SpanKind.CLIENT]
        assert len(spans) == 1, [s.name for s in self.finished()]
        return spans[0]

    def attempt_spans(self) -> list[ReadableSpan]:
        return sorted(
            (s for s in self.finished() if s.name == "schwarm_stream.attempt"),
            key=lambda s: attrs(s)["schwarm_stream.attempt"],
        )


class FakeClock:
    """The plugin's chunk clock: 0, then 1, 2, 3, ... ms further at each reading (exact gaps)."""

    def __init__(self) -> None:
        self.readings = 0
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.readings * 0.001
        self.readings += 1
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(metrics_module, "_clock", fake)
    return fake


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.meter_provider.shutdown()
    t.tracer_provider.shutdown()
    t.logger_provider.shutdown()


class Decide:
    """Answers ``stream_error`` with the scripted actions in order, then ``raise``."""

    def __init__(self, *actions: str) -> None:
        self.actions = list(actions)
        self.seen: list[str] = []

    @hookimpl
    def stream_error(self, stream: Any, error: StreamError) -> Recovery:
        self.seen.append(type(error).__name__)
        return Recovery(self.actions.pop(0) if self.actions else "raise")  # type: ignore[arg-type]


def _data(t: Telemetry) -> Any:
    data = t.reader.get_metrics_data()
    assert data is not None
    return data


def attrs(item: Any) -> dict[str, Any]:
    """A span's, event's, log record's or data point's attributes (never ``None``)."""
    return dict(item.attributes or {})


def chat(server: ProviderServer, model: str = "gpt-4o-mini") -> Any:
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=server.openai_base_url, max_retries=0)
    return openai_chat(client, model=model, messages=HI)


def all_exported_text(t: Telemetry) -> str:
    """Every attribute, event, status and metric attribute exported, as one string."""
    parts: list[str] = []
    for s in t.finished():
        parts.append(json.dumps(dict(s.attributes or {}), default=str))
        parts.append(s.status.description or "")
        for e in s.events:
            parts.append(e.name + json.dumps(dict(e.attributes or {}), default=str))
    for name in INSTRUMENTS:
        for p in t.points(name):
            parts.append(json.dumps(dict(p.attributes), default=str))
    return "\n".join(parts)


# -- values and attributes ---------------------------------------------------------------------


async def test_chat_stream_records_semconv_metrics_once(otel: Telemetry, clock: FakeClock) -> None:
    body = openai_chat_events(
        ["Hel", "lo", " wor", "ld"],
        tool_calls=[
            {
                "id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
                "chunks": ['{"ci', 'ty": "Paris"}'],
            }
        ],
        usage={"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        model="gpt-4o-mini-2024-07-18",
    )
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(body))
        async with otel.pipeline().open(chat(server)) as s:
            delivered = [e for e in [e async for e in s] if type(e) is Chunk]
    stats = s.stats()
    assert s.message.usage is not None and s.message.usage.input_tokens == 11
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
    }
    resp = {**base, "gen_ai.response.model": "gpt-4o-mini-2024-07-18"}

    d = otel.point("gen_ai.client.operation.duration")
    assert dict(d.attributes) == {**resp, "schwarm_stream.outcome": "complete"}
    assert d.count == 1 and d.sum == pytest.approx(stats.elapsed)
    assert tuple(d.explicit_bounds) == DURATION_BUCKETS
    ttfc = otel.point("gen_ai.client.operation.time_to_first_chunk")
    assert dict(ttfc.attributes) == resp
    assert tuple(ttfc.explicit_bounds) == DURATION_BUCKETS
    assert ttfc.count == 1 and 0 < ttfc.sum <= d.sum
    assert ttfc.sum == pytest.approx(stats.time_to_first_token)
    tpoc = otel.point("gen_ai.client.operation.time_per_output_chunk")
    n_out = len(delivered) + s.tool_call_deltas
    # one value per output chunk after the first (text chunks and tool-call fragments), as the
    # conventions define it: the clock ticks 1, 2, 3, ... ms apart, so the k-th gap is k ms
    assert clock.readings == n_out
    assert tpoc.count == n_out - 1
    assert tpoc.sum == pytest.approx(sum(k * 0.001 for k in range(1, n_out)))
    assert tpoc.min == pytest.approx(0.001) and tpoc.max == pytest.approx((n_out - 1) * 0.001)
    assert dict(tpoc.attributes) == resp
    assert tuple(tpoc.explicit_bounds) == DURATION_BUCKETS  # the conventions' advice
    assert otel.point("gen_ai.client.token.usage", **{"gen_ai.token.type": "input"}).sum == 11
    assert tuple(
        otel.point("gen_ai.client.token.usage", **{"gen_ai.token.type": "input"}).explicit_bounds
    ) == (TOKEN_BUCKETS)
    assert otel.point("gen_ai.client.token.usage", **{"gen_ai.token.type": "output"}).sum == 7
    for p in otel.points("gen_ai.client.token.usage"):
        assert p.count == 1 and set(p.attributes) == {*resp, "gen_ai.token.type"}
    chunks = otel.point("schwarm_stream.chunks")
    assert chunks.count == 1 and chunks.sum == len(delivered) == 4
    assert otel.point("schwarm_stream.tool_call_deltas").sum == s.tool_call_deltas > 0
    assert otel.point("schwarm_stream.streams.active").value == 0
    for name in ("schwarm_stream.retries", "schwarm_stream.errors", "schwarm_stream.resets"):
        assert otel.points(name) == []  # nothing happened: nothing recorded
    # the instruments carry the documented units
    units = {
        m.name: m.unit for rm in _data(otel).resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert all(units[n] == INSTRUMENTS[n][1] for n in units)

    span = otel.stream_span()
    assert span.name == "chat gpt-4o-mini"
    a = attrs(span)
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.usage.input_tokens"] == 11 and a["gen_ai.usage.output_tokens"] == 7
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert a["gen_ai.response.id"] == s.message.id
    assert a["schwarm_stream.stream.id"] == s.id
    assert a["schwarm_stream.outcome"] == "complete"
    assert a["gen_ai.response.time_to_first_chunk"] == pytest.approx(ttfc.sum)
    assert "gen_ai.output.messages" not in a  # content capture is off by default
    assert span.status.status_code is StatusCode.UNSET
    (attempt,) = otel.attempt_spans()
    assert attempt.parent is not None and attempt.parent.span_id == span.context.span_id
    assert attempt.context.trace_id == span.context.trace_id


def _sample_corpus() -> list[CorpusStream]:
    """A few recorded streams per protocol: the first ones (by file name) that carry usage."""
    root = corpus_root()
    if root is None:
        return []
    picked: list[CorpusStream] = []
    for protocol, marker in (
        ("openai-chat", b"prompt_tokens"),
        ("openai-responses", b"input_tokens"),
        ("anthropic-messages", b"output_tokens"),
    ):
        streams = sorted(
            (s for s in load_corpus(root) if s.protocol == protocol and marker in s.body),
            key=lambda s: (s.file, s.index),
        )
        picked.extend(streams[:3])
    return picked


CORPUS = _sample_corpus()


@pytest.mark.skipif(not CORPUS, reason="stream corpus not found (../shared/corpus)")
@pytest.mark.parametrize("recorded", CORPUS, ids=lambda s: f"{s.file}#{s.index}")
async def test_replayed_corpus_stream(otel: Telemetry, recorded: CorpusStream) -> None:
    async with ProviderServer() as server:
        server.script(recorded.protocol, SSEReply([recorded.body]))
        if recorded.protocol == "anthropic-messages":
            import anthropic

            client: Any = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=server.anthropic_base_url)
            source: Any = anthropic_messages(client, model="m", max_tokens=10, messages=HI)
        else:
            client = openai.AsyncOpenAI(api_key=API_KEY, base_url=server.openai_base_url)
            if recorded.protocol == "openai-responses":
                source = openai_responses(client, model="m", input="hi")
            else:
                source = openai_chat(client, model="m", messages=HI)
        seen: list[Any] = []
        async with otel.pipeline(Decide()).open(source) as s:
            try:
                async for e in s:
                    seen.append(e)
            except StreamError:
                pass
    message = s.message
    d = otel.point("gen_ai.client.operation.duration")
    assert d.count == 1 and d.sum == pytest.approx(s.stats().elapsed)
    assert attrs(d)["schwarm_stream.outcome"] == s.outcome
    assert attrs(d)["gen_ai.provider.name"] == s.provider
    assert ("error.type" in d.attributes) == (s.outcome == "error")
    ttfc = otel.points("gen_ai.client.operation.time_to_first_chunk")
    if s.first_content_at is None:
        assert ttfc == []
    else:
        assert s.started_at is not None
        assert len(ttfc) == 1 and ttfc[0].sum == pytest.approx(s.first_content_at - s.started_at)
    recorded_tokens = {attrs(p)["gen_ai.token.type"]: p.sum for p in otel.points("gen_ai.client.token.usage")}
    usage = message.usage
    expected: dict[str, int] = {}
    if usage is not None and usage.input_tokens is not None:
        expected["input"] = usage.input_tokens
    if usage is not None and usage.output_tokens is not None:
        expected["output"] = usage.output_tokens
    assert recorded_tokens == expected
    assert otel.point("schwarm_stream.chunks").sum == sum(type(e) is Chunk for e in seen)
    assert attrs(otel.stream_span())["schwarm_stream.outcome"] == s.outcome


# -- early break, cancellation -----------------------------------------------------------------


async def test_early_break_ends_the_span_and_records_cancelled(otel: Telemetry) -> None:
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(openai_chat_events(["a", "b", "c", "d"])))
        async with otel.pipeline().open(chat(server)) as s:
            async for e in s:
                if type(e) is Chunk:
                    break
            assert otel.finished() == ()  # still open while the consumer holds the stream
    assert s.outcome == "cancelled"
    span = otel.stream_span()
    assert attrs(span)["schwarm_stream.outcome"] == "cancelled"
    assert span.status.status_code is StatusCode.UNSET  # a consumer leaving is not an error
    assert len(otel.attempt_spans()) == 1
    d = otel.point("gen_ai.client.operation.duration")
    assert attrs(d)["schwarm_stream.outcome"] == "cancelled"
    assert "error.type" not in d.attributes
    assert otel.point("schwarm_stream.chunks").sum == 1
    assert otel.point("schwarm_stream.streams.active").value == 0
    assert otel.points("gen_ai.client.operation.time_per_output_chunk") == []  # only complete streams


async def _break_without_context_manager(otel: Telemetry, config: Any) -> None:
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(openai_chat_events(["a", "b", "c"])))
        s = schwarm_stream.Pipeline([("metrics", otel.plugin())], config=config).open(chat(server))
        async for _ in s:
            break
        stream_id = s.id
        del s
        for _ in range(20):  # the event loop's async-generator finalizer closes it
            gc.collect()
            await asyncio.sleep(0.01)
            if otel.finished():
                break
    span = otel.stream_span()
    assert attrs(span)["schwarm_stream.stream.id"] == stream_id
    assert attrs(span)["schwarm_stream.outcome"] == "cancelled"
    assert otel.point("schwarm_stream.streams.active").value == 0


async def test_break_without_context_manager_ends_the_span_on_collection(otel: Telemetry) -> None:
    # The stream is abandoned, not closed: the event loop's async-generator finalizer closes it
    # once it is garbage, and stream_end still ends the span.
    await _break_without_context_manager(otel, {"plugins": {"disable": ["timeouts"]}})


async def test_break_without_context_manager_with_the_default_plugins(otel: Telemetry) -> None:
    await _break_without_context_manager(otel, None)


async def test_task_cancellation_ends_spans_once(otel: Telemetry) -> None:
    gate = asyncio.Event()
    first = asyncio.Event()
    body = openai_chat_events(["a", "b"])
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply([*body[:2], Stall(gate), *body[2:]]))

        async def consume() -> None:
            async with otel.pipeline().open(chat(server)) as s:
                async for e in s:
                    if type(e) is Chunk:
                        first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 5)
        assert otel.point("schwarm_stream.streams.active").value == 1  # in flight right now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
    span = otel.stream_span()
    assert attrs(span)["schwarm_stream.outcome"] == "cancelled"
    assert len(otel.attempt_spans()) == 1
    assert len(otel.finished()) == 2  # each span ended exactly once
    assert otel.point("gen_ai.client.operation.duration").attributes["schwarm_stream.outcome"] == "cancelled"
    assert otel.point("schwarm_stream.streams.active").value == 0


# -- errors, retries, recoveries ---------------------------------------------------------------


async def test_error_sets_status_and_type_and_never_leaks_secrets(otel: Telemetry) -> None:
    error = {"error": {"message": f"Incorrect API key provided: {SECRET}", "type": "invalid_request_error"}}
    async with ProviderServer() as server:
        server.script("openai-chat", JSONReply(401, error))
        with pytest.raises(StreamError) as exc_info:
            async with otel.pipeline(Decide()).open(chat(server)) as s:
                await s.collect()
    et = type(exc_info.value).__name__
    d = otel.point("gen_ai.client.operation.duration")
    assert attrs(d)["error.type"] == et
    assert attrs(d)["schwarm_stream.outcome"] == "error"
    assert otel.point("schwarm_stream.errors", **{"error.type": et}).value == 1
    span = otel.stream_span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == et
    (attempt,) = otel.attempt_spans()
    assert attempt.status.status_code is StatusCode.ERROR
    (event,) = [e for e in attempt.events if e.name == "exception"]
    assert attrs(event)["exception.type"] == et
    text = all_exported_text(otel)
    assert "[redacted]" in text  # the provider's message is there, with the key masked
    assert SECRET not in text and API_KEY not in text
    assert "Incorrect API key" in (span.status.description or "")


async def test_retry_before_content(otel: Telemetry) -> None:
    decide = Decide("retry")
    async with ProviderServer() as server:
        server.script(
            "openai-chat",
            SSEReply([openai_error_chunk()]),
            SSEReply(openai_chat_events(["ok", "!"])),
        )
        async with otel.pipeline(decide).open(chat(server)) as s:
            await s.collect()
    assert s.outcome == "complete" and s.attempt == 2 and decide.seen == ["ProviderError"]
    assert otel.point("schwarm_stream.retries").value == 1
    assert otel.point("schwarm_stream.errors", **{"error.type": "ProviderError"}).value == 1
    assert otel.points("schwarm_stream.recoveries") == []
    d = otel.point("gen_ai.client.operation.duration")
    assert "error.type" not in d.attributes and attrs(d)["schwarm_stream.outcome"] == "complete"
    span = otel.stream_span()
    assert span.status.status_code is StatusCode.UNSET
    (retry,) = [e for e in span.events if e.name == "schwarm_stream.retry"]
    assert attrs(retry)["schwarm_stream.attempt"] == 2
    assert attrs(retry)["error.type"] == "ProviderError"
    first, second = otel.attempt_spans()
    assert first.status.status_code is StatusCode.ERROR
    assert second.status.status_code is StatusCode.UNSET
    assert attrs(second)["schwarm_stream.recovery.strategy"] == "retry"
    assert {first.parent.span_id, second.parent.span_id} == {span.context.span_id}  # type: ignore[union-attr]


async def test_restart_after_content_records_reset_and_recovery(otel: Telemetry) -> None:
    body = openai_chat_events(["one ", "two ", "three"])
    async with ProviderServer() as server:
        server.script(
            "openai-chat",
            SSEReply(body[:3], end="truncate"),
            SSEReply(openai_chat_events(["again ", "and done"])),
        )
        seen: list[Any] = []
        async with otel.pipeline(Decide("restart")).open(chat(server)) as s:
            async for e in s:
                seen.append(e)
    assert s.outcome == "complete" and s.resets == 1
    assert otel.point("schwarm_stream.resets").value == 1
    assert (
        otel.point("schwarm_stream.recoveries", **{"schwarm_stream.recovery.strategy": "restart"}).value == 1
    )
    assert otel.points("schwarm_stream.retries") == []
    assert otel.point("schwarm_stream.chunks").sum == sum(type(e) is Chunk for e in seen) == s.chunks
    names = [e.name for e in otel.stream_span().events]
    assert names == ["schwarm_stream.reset", "schwarm_stream.recovery"]
    assert len(otel.attempt_spans()) == 2


async def test_partial_decision(otel: Telemetry) -> None:
    body = openai_chat_events(["one ", "two"])
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(body[:3], end="truncate"))
        async with otel.pipeline(Decide("partial")).open(chat(server)) as s:
            await s.collect()
    assert s.outcome == "partial"
    et = type(s.error).__name__
    d = otel.point("gen_ai.client.operation.duration")
    assert attrs(d)["schwarm_stream.outcome"] == "partial" and attrs(d)["error.type"] == et
    assert (
        otel.point("schwarm_stream.recoveries", **{"schwarm_stream.recovery.strategy": "partial"}).value == 1
    )
    assert otel.point("schwarm_stream.errors", **{"error.type": et}).value == 1
    span = otel.stream_span()
    assert span.status.status_code is StatusCode.UNSET  # ended as the plugin chose: not a failure
    assert attrs(span)["error.type"] == et
    assert otel.attempt_spans()[0].status.status_code is StatusCode.ERROR


async def test_concurrent_streams_are_separate(otel: Telemetry) -> None:
    async with ProviderServer() as server:
        for text in ("x", "y", "z"):
            server.script("openai-chat", SSEReply(openai_chat_events([text, text])))
        pipeline = otel.pipeline()

        async def one() -> None:
            async with pipeline.open(chat(server)) as s:
                await s.collect()

        await asyncio.gather(one(), one(), one())
    assert otel.point("gen_ai.client.operation.duration").count == 3
    assert otel.point("schwarm_stream.chunks").sum == 6
    streams = [s for s in otel.finished() if s.kind is SpanKind.CLIENT]
    assert len({s.context.trace_id for s in streams}) == 3
    assert otel.point("schwarm_stream.streams.active").value == 0


async def test_metrics_do_not_depend_on_sampling_and_spans_nest_under_the_current_one() -> None:
    t = Telemetry()
    sampled_out = TracerProvider(sampler=ALWAYS_OFF)
    sampled_out.add_span_processor(SimpleSpanProcessor(t.spans))
    plugin = MetricsPlugin(meter_provider=t.meter_provider, tracer_provider=sampled_out)
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(openai_chat_events(["a", "b"])))
        server.script("openai-chat", SSEReply(openai_chat_events(["c"])))
        async with schwarm_stream.Pipeline([("metrics", plugin)]).open(chat(server)) as s:
            await s.collect()
        assert t.finished() == ()  # not sampled: no span exported
        assert t.point("gen_ai.client.operation.duration").count == 1  # metrics all the same
        assert t.point("schwarm_stream.chunks").sum == 2
        # with a sampled provider, the stream span is a child of the caller's current span
        async with schwarm_stream.Pipeline([("metrics", t.plugin())]).open(chat(server)) as s2:
            with t.tracer_provider.get_tracer("app").start_as_current_span("agent turn") as parent:
                await s2.collect()
    assert t.stream_span().parent.span_id == parent.get_span_context().span_id  # type: ignore[union-attr]


async def test_agent_id_on_the_span_only(otel: Telemetry) -> None:
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(openai_chat_events(["a"])))
        async with otel.pipeline().open(chat(server), agent_id="agent-7") as s:
            await s.collect()
    assert attrs(otel.stream_span())["gen_ai.agent.id"] == "agent-7"
    metric_attrs = [k for name in INSTRUMENTS for p in otel.points(name) for k in p.attributes]
    assert metric_attrs and not {"gen_ai.agent.id", "schwarm_stream.stream.id"} & set(metric_attrs)


def test_error_text_is_redacted_and_capped() -> None:
    tracer_provider = TracerProvider()
    spans = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    span = tracer_provider.get_tracer("t").start_span("s")
    _end_failed(span, StreamError(f"Bearer {SECRET} " + "x" * 2000))
    (done,) = spans.get_finished_spans()
    description = done.status.description or ""
    assert description.startswith("[redacted] xxx")
    assert SECRET not in description and len(description) <= 500
    assert attrs(done.events[0])["exception.message"] == description


# -- content capture ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (None, "NO_CONTENT"),
        ("", "NO_CONTENT"),
        ("false", "NO_CONTENT"),
        ("NO_CONTENT", "NO_CONTENT"),
        ("true", "SPAN_ONLY"),
        ("True", "SPAN_ONLY"),
        ("span_only", "SPAN_ONLY"),
        ("EVENT_ONLY", "EVENT_ONLY"),
        ("SPAN_AND_EVENT", "SPAN_AND_EVENT"),
    ],
)
def test_capture_mode_values(monkeypatch: pytest.MonkeyPatch, value: str | None, mode: str) -> None:
    if value is None:
        monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    else:
        monkeypatch.setenv(CAPTURE_CONTENT_ENV, value)
    assert capture_mode() == mode


def test_unknown_capture_mode_is_off_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="schwarm_stream"):
        assert capture_mode("everything") == "NO_CONTENT"
    assert CAPTURE_CONTENT_ENV in caplog.text and "everything" in caplog.text


@pytest.mark.parametrize("mode", ["SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT", "NO_CONTENT"])
async def test_content_capture_opt_in(otel: Telemetry, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, mode)
    body = openai_chat_events(
        ["The answer", " is 42"],
        tool_calls=[{"id": "call_9", "name": "lookup", "arguments": '{"q": 1}'}],
    )
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(body))
        async with otel.pipeline().open(chat(server)) as s:
            await s.collect()
    expected = [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "The answer is 42"},
                {"type": "tool_call", "id": "call_9", "name": "lookup", "arguments": {"q": 1}},
            ],
            "finish_reason": s.message.finish_reason,
        }
    ]
    on_span = attrs(otel.stream_span()).get("gen_ai.output.messages")
    logs = otel.logs.get_finished_logs()
    if mode in ("SPAN_ONLY", "SPAN_AND_EVENT"):
        assert isinstance(on_span, str) and json.loads(on_span) == expected
    else:
        assert on_span is None
    if mode in ("EVENT_ONLY", "SPAN_AND_EVENT"):
        (log,) = logs
        record = log.log_record
        assert record.event_name == "gen_ai.client.inference.operation.details"
        assert json.loads(attrs(record)["gen_ai.output.messages"]) == expected
        assert attrs(record)["gen_ai.provider.name"] == "openai"
        assert record.trace_id == otel.stream_span().context.trace_id
    else:
        assert logs == ()
    if mode == "NO_CONTENT":
        assert "The answer" not in all_exported_text(otel)


async def test_constructor_setting_overrides_the_environment(
    otel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "SPAN_ONLY")
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(openai_chat_events(["private"])))
        async with otel.pipeline(capture_content=False).open(chat(server)) as s:
            await s.collect()
    assert "private" not in all_exported_text(otel)


# -- the default plugin and its cost model -----------------------------------------------------


def test_builtin_is_registered_and_its_per_chunk_hooks_only_stamp_the_clock() -> None:
    # This process sets no global SDK MeterProvider: the built-in registers no per-chunk hook at all.
    (info,) = [i for i in schwarm_stream.Pipeline().plugins() if i.name == "metrics"]
    assert info.builtin and info.enabled
    assert {"stream_start", "stream_end"} <= set(info.hooks)
    assert not PER_CHUNK_HOOKS & set(info.hooks)
    # With one set before the pipeline is built: the typed output hooks, nothing else per chunk,
    # and one time-per-output-chunk value per chunk after the first.
    code = (
        "import asyncio, schwarm_stream\n"
        "from opentelemetry import metrics\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.metrics.export import InMemoryMetricReader\n"
        "from schwarm_stream.testing import ScriptedSource\n"
        "reader = InMemoryMetricReader()\n"
        "metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))\n"
        "p = schwarm_stream.Pipeline()\n"
        "print(sorted(next(i.hooks for i in p.plugins() if i.name == 'metrics')))\n"
        "async def main():\n"
        "    async with p.open(ScriptedSource(['a', 'b', 'c', 'd'])) as s:\n"
        "        await s.collect()\n"
        "asyncio.run(main())\n"
        "print(sum(pt.count for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics\n"
        "          for m in sm.metrics if m.name.endswith('time_per_output_chunk') for pt in m.data.data_points))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    hooks_line, count_line = proc.stdout.splitlines()
    assert PER_CHUNK_HOOKS & set(ast.literal_eval(hooks_line)) == {"stream_chunk", "stream_tool_call_delta"}
    assert int(count_line) == 3


def test_importing_the_builtin_creates_no_plugin_and_the_first_stream_does() -> None:
    code = (
        "import schwarm_stream.builtins.metrics as m\n"
        "assert m._default is None, m._default\n"
        "import asyncio, schwarm_stream\n"
        "from schwarm_stream.testing import ScriptedSource\n"
        "async def main():\n"
        "    async with schwarm_stream.Pipeline().open(ScriptedSource(['a', 'b'])) as s:\n"
        "        await s.collect()\n"
        "asyncio.run(main())\n"
        "assert isinstance(m._default, m.MetricsPlugin)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_builtin_imports_no_source_module() -> None:
    tree = ast.parse(Path(metrics_module.__file__).read_text(encoding="utf-8"))
    modules = {
        f"{'.' * n.level}{n.module or ''}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    } | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in modules if "sources" in m], modules
    assert ".._classify" in modules  # redact comes from the core's classification module


async def test_default_plugin_without_an_sdk_is_silent() -> None:
    # No provider configured anywhere: the API's no-op proxies take every call.
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(openai_chat_events(["a", "b"])))
        async with schwarm_stream.Pipeline().open(chat(server)) as s:
            message = await s.collect()
    assert message.text == "ab"
    assert s.plugin_errors == []


def test_stats_reports_tokens_and_mean_chunk_gap() -> None:
    async def run() -> schwarm_stream.Stream:
        async with ProviderServer() as server:
            server.script(
                "openai-chat",
                SSEReply(
                    openai_chat_events(["a", "b", "c"], usage={"prompt_tokens": 5, "completion_tokens": 3})
                ),
            )
            async with schwarm_stream.Pipeline().open(chat(server)) as s:
                await s.collect()
        return s

    s = asyncio.run(run())
    st = s.stats()
    assert st.state == "complete" and st.chunks == 3
    assert st.input_tokens == 5 and st.output_tokens == 3
    assert s.ended_at is not None and s.first_content_at is not None
    assert st.time_per_output_chunk == pytest.approx((s.ended_at - s.first_content_at) / 2)
    assert st.to_dict()["time_per_output_chunk"] == st.time_per_output_chunk


# -- the documented examples -------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}  # offline provider
    env.pop(CAPTURE_CONTENT_ENV, None)
    return env


def test_console_example_prints_spans_and_metrics() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "otel_console.py")],
        cwd=EXAMPLES,
        env=_example_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count('"name": "chat offline"') == 2  # one stream span per stream
    assert out.count('"name": "schwarm_stream.attempt"') == 2
    for name in (
        "gen_ai.client.operation.duration",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.client.operation.time_per_output_chunk",
        "gen_ai.client.token.usage",
        "schwarm_stream.chunks",
    ):
        assert f'"name": "{name}"' in out, name


def test_prometheus_example_serves_metrics_on_loopback() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "otel_prometheus.py"),
            "--port",
            "0",
            "--streams",
            "2",
            "--hold",
            "60",
        ],
        cwd=EXAMPLES,
        env=_example_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        scraped = proc.stdout.readline()  # the example's own scrape, once the streams are done
        assert re.search(r"^scraped http://127\.0\.0\.1:\d+/metrics: 2 streams", scraped), scraped
        line = proc.stdout.readline()  # then it keeps serving
        match = re.search(r"serving (http://127\.0\.0\.1:(\d+)/metrics)", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        with urllib.request.urlopen(match.group(1), timeout=10) as resp:
            text = resp.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    samples = {}
    for row in text.splitlines():
        if row and not row.startswith("#"):
            name, _, number = row.rpartition(" ")
            samples[name] = float(number)

    def value(metric: str, **labels: str) -> float:
        found = [
            v
            for k, v in samples.items()
            if k.startswith(metric + "{") and all(f'{lk}="{lv}"' in k for lk, lv in labels.items())
        ]
        assert len(found) == 1, (metric, labels, found)
        return found[0]

    assert value("gen_ai_client_operation_duration_seconds_count", schwarm_stream_outcome="complete") == 2
    assert value("gen_ai_client_operation_time_to_first_chunk_seconds_count") == 2
    assert value("gen_ai_client_token_usage_count", gen_ai_token_type="output") == 2
    assert value("gen_ai_client_token_usage_sum", gen_ai_token_type="output") > 0
    assert value("schwarm_stream_chunks_sum") > 0
    assert value("schwarm_stream_streams_active") == 0
