"""OpenTelemetry: print the stream's metrics and spans to the console.

Shows: the built-in ``metrics`` plugin picking up the SDK providers you set globally — nothing to
register. Two streams run; the spans print as they end, the metrics when the reader flushes.
Needs: ``pip install "schwarm-stream[otel]"`` (the OpenTelemetry SDK).
Run:   python examples/otel_console.py   (offline; set OPENAI_API_KEY to use the real API)
"""

import asyncio

from _provider import openai_client
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import schwarm_stream
from schwarm_stream.sources import openai_chat


def setup() -> tuple[MeterProvider, TracerProvider]:
    """Global SDK providers exporting to stdout (use an OTLP exporter in production)."""
    resource = Resource.create({"service.name": "otel-console-example"})
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=60_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    metrics.set_meter_provider(meter_provider)
    trace.set_tracer_provider(tracer_provider)
    return meter_provider, tracer_provider


async def main() -> None:
    meter_provider, tracer_provider = setup()
    questions = ("Say hello in five words.", "Name three colours.")
    async with openai_client() as (client, model):
        for question in questions:
            messages = [{"role": "user", "content": question}]
            async with schwarm_stream.open(openai_chat(client, model=model, messages=messages)) as stream:
                await stream.collect()
            stats = stream.stats()  # the numbers the metrics are made of
            print(f"# {question!r}: {stats.chunks} chunks in {stats.elapsed * 1000:.0f} ms")
    meter_provider.shutdown()  # flushes the metrics to the console
    tracer_provider.shutdown()
    print(f"exported {len(questions)} streams: spans and metrics above")


if __name__ == "__main__":
    asyncio.run(main())
