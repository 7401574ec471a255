"""The two versions of the GenAI conventions (``OTEL_SEMCONV_STABILITY_OPT_IN``) and time per output chunk
recorded per chunk, with the real OpenTelemetry SDK and in-memory readers and exporters."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.metrics import NoOpHistogram, NoOpMeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, NumberDataPoint
from opentelemetry.trace import SpanKind

import schwarm_stream
from schwarm_stream import Chunk, Usage, hookimpl
from schwarm_stream.builtins import metrics as metrics_module
from schwarm_stream.builtins.metrics import (
    _CHUNK_HOOKS,
    DURATION_BUCKETS,
    GEN_AI_LATEST,
    INSTRUMENTS,
    LATEST_INSTRUMENTS,
    SEMCONV_OPT_IN_ENV,
    TIMES,
    TOKEN_BUCKETS,
    MetricsPlugin,
    _gaps,
    _live,
    semconv_mode,
)
from schwarm_stream.testing import ScriptedSource
from schwarm_stream.testing.server import ProviderServer, SSEReply, openai_chat_events
from tests.test_metrics import Decide, FakeClock, Telemetry, chat


@pytest.fixture
def otel() -> Any:
    t = Telemetry()
    yield t
    t.meter_provider.shutdown()
    t.tracer_provider.shutdown()
    t.logger_provider.shutdown()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(metrics_module, "_clock", fake)
    return fake


def kinds(t: Telemetry) -> dict[str, tuple[str, str]]:
    """Every exported instrument: name -> (kind, unit); a monotonic sum is a counter."""
    out: dict[str, tuple[str, str]] = {}
    data = t.reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                points = m.data.data_points
                if isinstance(points[0], HistogramDataPoint):
                    kind = "histogram"
                elif getattr(m.data, "is_monotonic", False):
                    kind = "counter"
                else:
                    assert isinstance(points[0], NumberDataPoint)
                    kind = "updowncounter"
                out[m.name] = (kind, m.unit or "")
    return out


# -- the switch -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (None, "default"),
        ("", "default"),
        ("http", "default"),
        ("gen_ai_latest_experimental", "latest"),
        ("http, gen_ai_latest_experimental", "latest"),
        ("database,gen_ai_latest_experimental,http/dup", "latest"),
        ("gen_ai", "default"),
    ],
)
def test_semconv_mode(monkeypatch: pytest.MonkeyPatch, value: str | None, mode: str) -> None:
    if value is None:
        monkeypatch.delenv(SEMCONV_OPT_IN_ENV, raising=False)
    else:
        monkeypatch.setenv(SEMCONV_OPT_IN_ENV, value)
    assert semconv_mode() == mode
    assert MetricsPlugin(meter_provider=NoOpMeterProvider()).semconv == mode


def test_the_constructor_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SEMCONV_OPT_IN_ENV, GEN_AI_LATEST)
    assert MetricsPlugin(semconv="default").semconv == "default"
    monkeypatch.delenv(SEMCONV_OPT_IN_ENV)
    assert MetricsPlugin(semconv="latest").instruments == LATEST_INSTRUMENTS


# -- latest: gen_ai.client.inference.* ------------------------------------------------------------

USAGE_WITH_DETAILS = {
    "prompt_tokens": 40,
    "completion_tokens": 9,
    "total_tokens": 49,
    "prompt_tokens_details": {"cached_tokens": 32},
    "completion_tokens_details": {"reasoning_tokens": 5},
}


async def test_latest_names_kinds_units_buckets_and_values(
    otel: Telemetry, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SEMCONV_OPT_IN_ENV, GEN_AI_LATEST)  # the switch, as a user sets it
    body = openai_chat_events(["a", "b", "c", "d"], usage=USAGE_WITH_DETAILS, model="gpt-4o-2024-08-06")
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(body))
        async with otel.pipeline().open(chat(server, model="gpt-4o")) as s:
            await s.collect()
    assert s.outcome == "complete"
    got = kinds(otel)
    # only the new names: none of the old ones (the conventions: not both)
    assert not set(got) & (set(INSTRUMENTS) - set(LATEST_INSTRUMENTS))
    for name, (kind, unit) in got.items():
        assert (kind, unit) == LATEST_INSTRUMENTS[name][:2], name
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
    }
    d = otel.point("gen_ai.client.inference.duration")
    assert dict(d.attributes) == {**base, "schwarm_stream.outcome": "complete"}
    assert tuple(d.explicit_bounds) == DURATION_BUCKETS and d.sum == pytest.approx(s.stats().elapsed)
    ttfc = otel.point("gen_ai.client.inference.time_to_first_chunk")
    assert dict(ttfc.attributes) == base and tuple(ttfc.explicit_bounds) == DURATION_BUCKETS
    tpoc = otel.point("gen_ai.client.inference.time_per_output_chunk")
    assert tuple(tpoc.explicit_bounds) == DURATION_BUCKETS
    assert clock.readings == 4 and tpoc.count == 3  # 4 chunks: a value for each after the first
    assert tpoc.sum == pytest.approx(0.001 + 0.002 + 0.003)
    tokens = {**base, "gen_ai.token.modality": "unknown"}  # the provider gives no modality breakdown
    for name, value in (
        ("usage.input_tokens", 40),  # cached tokens included
        ("usage.output_tokens", 9),  # reasoning tokens included
        ("usage.cache_read.input_tokens", 32),
        ("usage.cache_write.input_tokens", 0),  # OpenAI reports none: 0, as the conventions say
        ("usage.reasoning.output_tokens", 5),
    ):
        p = otel.point(f"gen_ai.client.inference.{name}")
        assert (dict(p.attributes), p.value) == (tokens, value), name
    for name, value in (("input_tokens", 40), ("output_tokens", 9)):
        h = otel.point(f"gen_ai.client.inference.operation.{name}")
        assert (dict(h.attributes), h.count, h.sum) == (base, 1, value)
        assert tuple(h.explicit_bounds) == TOKEN_BUCKETS

    span = otel.stream_span()
    assert span.name == "chat gpt-4o" and span.kind is SpanKind.CLIENT
    a = span.attributes or {}
    assert a["gen_ai.usage.input_tokens"] == 40 and a["gen_ai.usage.output_tokens"] == 9
    assert a["gen_ai.usage.cache_read.input_tokens"] == 32
    assert a["gen_ai.usage.reasoning.output_tokens"] == 5
    assert "gen_ai.usage.cache_write.input_tokens" not in a  # span attributes only when non-zero
    assert a["gen_ai.response.time_to_first_chunk"] == pytest.approx(ttfc.sum)


async def test_latest_anthropic_input_counts_cache_reads_and_writes(otel: Telemetry) -> None:
    # Anthropic counts cache reads and writes beside input_tokens; the conventions' input count has them all
    usage = Usage(
        input_tokens=6,
        output_tokens=198,
        extras={"cache_creation_input_tokens": 3337, "cache_read_input_tokens": 6289},
    )
    source = ScriptedSource(["a", "b", usage], provider="anthropic", model="claude-sonnet-5")
    async with otel.pipeline(semconv="latest").open(source) as s:
        await s.collect()
    assert otel.point("gen_ai.client.inference.usage.input_tokens").value == 6 + 3337 + 6289
    assert otel.point("gen_ai.client.inference.usage.cache_read.input_tokens").value == 6289
    assert otel.point("gen_ai.client.inference.usage.cache_write.input_tokens").value == 3337
    assert otel.point("gen_ai.client.inference.usage.reasoning.output_tokens").value == 0
    assert otel.point("gen_ai.client.inference.operation.input_tokens").sum == 9632
    a = otel.stream_span().attributes or {}
    assert a["gen_ai.usage.input_tokens"] == 9632
    assert a["gen_ai.usage.cache_write.input_tokens"] == 3337


async def test_latest_failed_stream_records_zero_usage_with_the_error(otel: Telemetry) -> None:
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(openai_chat_events(["x", "y"])[:2], end="truncate"))
        async with otel.pipeline(semconv="latest").open(chat(server)) as s:
            with pytest.raises(schwarm_stream.StreamError):
                await s.collect()
    assert s.outcome == "error" and s.message.usage is None
    et = type(s.error).__name__
    assert otel.point("gen_ai.client.inference.duration").attributes["error.type"] == et
    for name in ("input_tokens", "output_tokens", "cache_read.input_tokens"):
        p = otel.point(f"gen_ai.client.inference.usage.{name}")
        assert p.value == 0 and p.attributes["gen_ai.token.modality"] == "unknown"
    h = otel.point("gen_ai.client.inference.operation.input_tokens")
    assert h.sum == 0 and h.attributes["error.type"] == et


async def test_default_names_stay_by_default(otel: Telemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SEMCONV_OPT_IN_ENV, raising=False)
    body = openai_chat_events(["a", "b"], usage=USAGE_WITH_DETAILS)
    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(body))
        async with otel.pipeline().open(chat(server)) as s:
            await s.collect()
    got = kinds(otel)
    assert not [n for n in got if n.startswith("gen_ai.client.inference")]
    assert {n: k for n, k in got.items() if n.startswith("gen_ai.")} == {
        "gen_ai.client.operation.duration": ("histogram", "s"),
        "gen_ai.client.operation.time_to_first_chunk": ("histogram", "s"),
        "gen_ai.client.operation.time_per_output_chunk": ("histogram", "s"),
        "gen_ai.client.token.usage": ("histogram", "{token}"),
    }
    assert otel.point("gen_ai.client.operation.time_per_output_chunk").count == 1  # 2 chunks: one gap


# -- per chunk ------------------------------------------------------------------------------------


async def test_no_gap_across_attempts(otel: Telemetry, clock: FakeClock) -> None:
    body = openai_chat_events(["one ", "two ", "three"])
    async with ProviderServer() as server:
        server.script(
            "openai-chat",
            SSEReply(body[:3], end="truncate"),
            SSEReply(openai_chat_events(["again ", "and ", "done"])),
        )
        async with otel.pipeline(Decide("restart")).open(chat(server)) as s:
            await s.collect()
    assert s.outcome == "complete" and s.resets == 1 and s.attempt == 2
    first = clock.readings - 3  # chunks delivered by the first attempt
    assert first >= 1
    tpoc = otel.point("gen_ai.client.operation.time_per_output_chunk")
    # every gap within an attempt, none from the first attempt's last chunk to the restart's first
    assert tpoc.count == (first - 1) + 2
    across = first * 0.001  # the gap that would end at the restart's first chunk
    assert tpoc.sum == pytest.approx(sum(k * 0.001 for k in range(1, clock.readings)) - across)


def test_gaps() -> None:
    assert _gaps([], []) == []
    assert _gaps([1.0], []) == []
    assert _gaps([1.0, 1.5, 3.0], []) == [0.5, 1.5]
    assert _gaps([1.0, 1.5, 3.0, 3.25, 4.0], [3]) == [0.5, 1.5, 0.75]  # chunk 3 opened attempt 2
    assert _gaps([1.0, 2.0, 4.0], [1, 2]) == []  # two one-chunk attempts after the first


class SeesTimes:
    """Records whether the metrics built-in keeps a chunk-time list for the stream."""

    def __init__(self) -> None:
        self.seen: list[bool] = []

    @hookimpl(trylast=True)
    def stream_chunk(self, stream: Any, chunk: Chunk) -> None:
        self.seen.append(TIMES in stream.stash)


async def test_no_clock_readings_without_an_sdk() -> None:
    probe = SeesTimes()
    plugin = MetricsPlugin(meter_provider=NoOpMeterProvider())
    async with schwarm_stream.Pipeline([("metrics", plugin), probe]).open(ScriptedSource(["a", "b"])) as s:
        await s.collect()
    assert probe.seen == [False, False]
    assert not _live(NoOpHistogram("h"))


async def test_clock_readings_with_an_sdk(otel: Telemetry) -> None:
    probe = SeesTimes()
    async with otel.pipeline(probe).open(ScriptedSource(["a", "b"])) as s:
        await s.collect()
    assert probe.seen == [True, True]
    assert TIMES not in s.stash  # dropped at the end


async def test_time_per_output_chunk_can_be_left_out(otel: Telemetry) -> None:
    probe = SeesTimes()
    async with otel.pipeline(probe, time_per_output_chunk=False).open(ScriptedSource(["a", "b", "c"])) as s:
        await s.collect()
    assert probe.seen == [False, False, False]
    assert otel.points("gen_ai.client.operation.time_per_output_chunk") == []
    assert otel.point("gen_ai.client.operation.duration").count == 1  # the rest is recorded


def test_per_chunk_hooks_only_where_they_can_record(otel: Telemetry) -> None:
    assert _CHUNK_HOOKS <= set(dir(otel.plugin()))
    assert not _CHUNK_HOOKS & set(dir(otel.plugin(time_per_output_chunk=False)))
    assert not _CHUNK_HOOKS & set(dir(MetricsPlugin(meter_provider=NoOpMeterProvider())))


async def test_sdk_set_after_the_pipeline_was_built_warns(
    otel: Telemetry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(metrics_module, "_sdk_behind", lambda mp: False)  # no SDK when it was built
    plugin = otel.plugin()
    monkeypatch.undo()  # ... and one now
    monkeypatch.setattr(metrics_module, "_late_sdk_warned", False)
    async with schwarm_stream.Pipeline([("metrics", plugin)]).open(ScriptedSource(["a", "b", "c"])) as s:
        await s.collect()
    assert otel.points("gen_ai.client.operation.time_per_output_chunk") == []  # nothing made up
    assert otel.point("gen_ai.client.operation.duration").count == 1
    assert any("set it up before the first stream opens" in r.getMessage() for r in caplog.records)
