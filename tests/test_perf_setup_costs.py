"""Per-stream setup and end costs of the built-ins (issue 20): work that must not be redone per stream.

No timing is asserted: each test checks that an expensive step (the price-table lookup, building the
tenacity policy) runs only where it is needed, by counting calls.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import schwarm_stream
from schwarm_stream import Pipeline, TransportError
from schwarm_stream import cost as cost_module
from schwarm_stream.builtins import buffer as buffer_module
from schwarm_stream.builtins import retry as retry_module
from schwarm_stream.builtins.buffer import Buffer
from schwarm_stream.builtins.metrics import MetricsPlugin
from schwarm_stream.testing import Fail, ScriptedSource


def _count_pricing(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    real = cost_module.price_usage

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(cost_module, "price_usage", counting)
    return calls


async def _run(pipeline: Pipeline, source: Any) -> Any:
    async with pipeline.open(source) as s:
        async for _ev in s:
            pass
    return s


async def test_metrics_without_a_tracer_does_not_price_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_pricing(monkeypatch)
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    pipeline = Pipeline([("metrics", MetricsPlugin(meter_provider=mp))])
    s = await _run(pipeline, ScriptedSource(["Hel", "lo"]))
    assert s.message.text == "Hello"
    assert calls == []  # no span records a cost: the stream's end never touches the price table
    assert s.stats().cost is not None  # stats() itself still prices, on request
    assert len(calls) == 1


async def test_metrics_with_a_tracer_prices_the_stream_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_pricing(monkeypatch)
    cost_module.load_prices_in_background()
    thread = cost_module._loading
    if thread is not None:
        thread.join()
    plugin = MetricsPlugin(meter_provider=MeterProvider(), tracer_provider=TracerProvider())
    await _run(Pipeline([("metrics", plugin)]), ScriptedSource(["Hi"]))
    assert len(calls) == 1  # the span's cost; the metrics' clocks come without a second lookup


async def test_streams_of_one_pipeline_share_one_retry_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []
    real = retry_module.policy

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(retry_module, "policy", counting)
    monkeypatch.setattr(retry_module, "_POLICIES", {})
    pipeline = schwarm_stream.Pipeline(config={"plugins": {"autoload": False}})
    for _ in range(3):
        s = await _run(pipeline, ScriptedSource([Fail(TransportError("reset"))], ["ok"]))
        assert s.message.text == "ok" and s.attempt == 2  # retried with the shared policy
    assert len(built) == 1


def test_retry_policy_cache_is_bounded_and_keyed_by_the_section_itself() -> None:
    retry_module._POLICIES.clear()
    sections = [retry_module.RetryConfig() for _ in range(retry_module._POLICIES_MAX + 5)]
    policies = [retry_module._cached_policy(cfg, None) for cfg in sections]
    assert len(retry_module._POLICIES) <= retry_module._POLICIES_MAX
    assert retry_module._cached_policy(sections[-1], None) is policies[-1]
    assert retry_module._cached_policy(sections[-1], 7) is not policies[-1]  # the testing switch's count


async def test_buffer_holding_returns_the_shared_empty_result() -> None:
    buf = Buffer(max_events=3)
    pipeline = Pipeline([("buffer", buf)], config={"plugins": {"autoload": False}})
    seen: list[Any] = []
    async with pipeline.open(ScriptedSource(["a", "b", "c", "d"])) as s:
        async for ev in s:
            seen.append(ev)
    texts = [ev.text for ev in seen if type(ev) is schwarm_stream.Chunk]
    assert texts == ["abc", "d"]
    assert s.message.text == "abcd"
    assert buffer_module._NOTHING == ()


def test_hook_table_computes_the_callables_once_for_every_stream() -> None:
    from schwarm_stream._dispatch import HookTable

    table = HookTable(Pipeline(config={"plugins": {"autoload": False}}).plugin_manager)
    first = table.fns("stream_end")
    assert first == [i.fn for i in table.stream_end] and first  # the built-ins observe stream_end
    assert table.fns("stream_end") is first  # the same list each stream, not rebuilt
    assert table.all_sync("stream_chunk") is True
