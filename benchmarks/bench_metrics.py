"""What the ``metrics`` built-in costs per chunk, with and without an OpenTelemetry SDK.

One in-process workload (a source of prebuilt normalized events: no I/O, no
JSON, so only the pipeline is measured) streamed through five pipelines, in
interleaved rounds, side by side in one run:

- ``no_metrics``: the default built-ins with ``metrics`` disabled;
- ``metrics_api``: the default built-ins, ``metrics`` on the API's no-op
  default (no SDK configured: what a user who never set up OpenTelemetry pays;
  the per-chunk hooks run but stamp nothing);
- ``metrics_sdk``: ``metrics`` bound to an SDK ``MeterProvider`` (in-memory
  reader) and ``TracerProvider`` (spans exported to memory): what ships. Each
  output chunk appends a clock reading; ``stream_end`` records one
  ``time_per_output_chunk`` value per chunk gap;
- ``metrics_sdk_latest``: the same with ``OTEL_SEMCONV_STABILITY_OPT_IN=
  gen_ai_latest_experimental`` (the ``gen_ai.client.inference`` instruments);
- ``record_in_hook``: ``metrics_sdk`` but recording each gap on the SDK
  histogram inside the chunk hook (the design not chosen: the same number of
  values, paid between the chunks a consumer waits for).

Reports the median CPU µs per chunk of each (process time, so other load on the
machine does not count) and the difference to ``no_metrics`` per chunk and per
stream, split into what is paid while the chunks flow (per chunk) and what after
the last chunk (per stream: finish, usage, ``stream_end``). Timing is reported,
never asserted.

    python benchmarks/bench_metrics.py [--quick] [--json]

``benchmarks/run.py`` calls :func:`cases`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from schwarm_stream import Chunk, Finish, Pipeline, ResponseInfo, StashKey, Usage, hookimpl
from schwarm_stream.builtins.metrics import STATE, TIMES, MetricsPlugin
from schwarm_stream.sources import Source

VARIANTS = ("no_metrics", "metrics_api", "metrics_sdk", "metrics_sdk_latest", "record_in_hook")
LAST: StashKey[float] = StashKey()


class EventsSource(Source):
    """Prebuilt normalized events: a chat answer of ``n`` text chunks, then finish and usage."""

    provider = "openai"
    model = "gpt-bench-1"

    def __init__(self, n: int) -> None:
        words = ("The ", "weather ", "in ", "Paris ", "is ", "sunny ", "and ", "mild. ")
        self.events: list[Any] = [ResponseInfo(id="chatcmpl-bench", model="gpt-bench-1-2025")]
        self.events += [Chunk(words[i % len(words)]) for i in range(n)]
        self.events += [Finish("stop"), Usage(input_tokens=42, output_tokens=n)]

    def open(self, stream: Any, attempt: Any) -> AsyncIterator[Any]:
        return self._events()

    async def _events(self) -> AsyncIterator[Any]:
        for ev in self.events:
            yield ev


class RecordInHook(MetricsPlugin):
    """Records each chunk gap on the SDK histogram inside the chunk hook (the design not chosen)."""

    @hookimpl(tryfirst=True)
    def stream_start(self, stream: Any) -> None:
        super().stream_start(stream)
        stream.stash[STATE].times = None  # nothing left for stream_end to record
        del stream.stash[TIMES]

    @hookimpl
    def stream_chunk(self, stream: Any, chunk: Any) -> None:
        now = time.perf_counter()
        last = stream.stash.get(LAST)
        if last is not None:
            self._tpoc.record(now - last, stream.stash[STATE].attrs)
        stream.stash[LAST] = now


def _pipelines(meter_provider: MeterProvider, tracer_provider: TracerProvider) -> dict[str, Pipeline]:
    quiet = {"plugins": {"autoload": False}}
    mp, tp = meter_provider, tracer_provider
    sdk = ("metrics", MetricsPlugin(semconv="default", meter_provider=mp, tracer_provider=tp))
    latest = ("metrics", MetricsPlugin(semconv="latest", meter_provider=mp, tracer_provider=tp))
    in_hook = ("metrics", RecordInHook(semconv="default", meter_provider=mp, tracer_provider=tp))
    return {
        "no_metrics": Pipeline(config={"plugins": {"autoload": False, "disable": ["metrics"]}}),
        "metrics_api": Pipeline(config=quiet),
        "metrics_sdk": Pipeline([sdk], config=quiet),
        "metrics_sdk_latest": Pipeline([latest], config=quiet),
        "record_in_hook": Pipeline([in_hook], config=quiet),
    }


async def _one(pipeline: Pipeline, source: EventsSource) -> float:
    """Stream once; return the CPU seconds after the last chunk (finish, usage, ``stream_end``)."""
    last = 0.0
    async with pipeline.open(source) as s:
        async for e in s:
            if type(e) is Chunk:
                last = time.process_time()
    return time.process_time() - last


async def _measure(quick: bool) -> dict[str, Any]:
    chunks, streams, rounds = (200, 20, 5) if quick else (200, 50, 21)
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    pipelines = _pipelines(meter_provider, tracer_provider)
    source = EventsSource(chunks)
    for p in pipelines.values():  # warm up: build the hook tables, import lazily loaded modules
        for _ in range(3):
            await _one(p, source)
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    tails: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for name in VARIANTS:  # interleaved: machine noise hits every variant alike
            p = pipelines[name]
            tail = 0.0
            t0 = time.process_time()  # CPU time: other processes on the machine don't count
            for _ in range(streams):
                tail += await _one(p, source)
            total = time.process_time() - t0
            samples[name].append(total / (streams * chunks) * 1e6)
            tails[name].append(tail / streams * 1e6)
        spans.clear()
    reader.get_metrics_data()  # the SDK really aggregated what was recorded
    meter_provider.shutdown()
    tracer_provider.shutdown()
    base = statistics.median(samples["no_metrics"])
    base_tail = statistics.median(tails["no_metrics"])
    out: dict[str, Any] = {"chunks_per_stream": chunks, "streams_per_round": streams, "rounds": rounds}
    for name in VARIANTS:
        med = statistics.median(samples[name])
        tail = statistics.median(tails[name])
        # the part paid while chunks flow (what a consumer waits for between chunks), per chunk
        during = (med * chunks - tail) / chunks
        base_during = (base * chunks - base_tail) / chunks
        out[name] = {
            "us_per_chunk_median": round(med, 3),
            "us_per_chunk_min": round(min(samples[name]), 3),
            "added_us_per_chunk": round(med - base, 3),
            "added_us_per_stream": round((med - base) * chunks, 1),
            "added_us_per_chunk_while_streaming": round(during - base_during, 3),
            "added_us_after_last_chunk": round(tail - base_tail, 1),
        }
    return out


def overhead(quick: bool = False) -> dict[str, Any]:
    """µs per chunk of every variant (its own event loop)."""
    return asyncio.run(_measure(quick))


def cases(quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    """The cases ``benchmarks/run.py`` runs: one, interleaving every variant."""
    return {"per_chunk_overhead": lambda: overhead(quick)}


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['chunks_per_stream']} chunks/stream, {result['streams_per_round']} streams/round, "
        f"{result['rounds']} interleaved rounds",
        f"{'variant':<20}{'median µs/chunk':>17}{'min µs/chunk':>14}{'added µs/chunk':>16}"
        f"{'added µs/stream':>17}{'…while streaming':>18}{'…after last chunk':>19}",
    ]
    for name in VARIANTS:
        r = result[name]
        lines.append(
            f"{name:<20}{r['us_per_chunk_median']:>17.3f}{r['us_per_chunk_min']:>14.3f}"
            f"{r['added_us_per_chunk']:>+16.3f}{r['added_us_per_stream']:>+17.1f}"
            f"{r['added_us_per_chunk_while_streaming']:>+18.3f}{r['added_us_after_last_chunk']:>+19.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (rough numbers)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    result = overhead(args.quick)
    print(json.dumps(result, indent=2) if args.json else _table(result))


if __name__ == "__main__":
    main()
