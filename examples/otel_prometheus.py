"""OpenTelemetry to Prometheus: serve the stream metrics on http://127.0.0.1:9464/metrics.

Shows: an SDK ``MeterProvider`` with the Prometheus reader, set globally, so the built-in
``metrics`` plugin records into it; a few streams run, the example scrapes its own endpoint once,
then (with ``--hold``) keeps serving for Prometheus or curl.
Needs: ``pip install "schwarm-stream[otel]"`` (OpenTelemetry SDK, Prometheus exporter, prometheus-client).
Run:   python examples/otel_prometheus.py [--port 9464] [--streams 3] [--hold 60]
       curl -s http://127.0.0.1:9464/metrics | grep gen_ai_client     (while it holds)
       (offline; set OPENAI_API_KEY to use the real API)
"""

import argparse
import asyncio
import re
import time
import urllib.request

from _provider import openai_client
from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import start_http_server

import schwarm_stream
from schwarm_stream.sources import openai_chat


def serve(port: int) -> int:
    """Start the scrape endpoint on 127.0.0.1 and install the SDK provider; returns the bound port."""
    server, _thread = start_http_server(port, addr="127.0.0.1")
    reader = PrometheusMetricReader()
    resource = Resource.create({"service.name": "otel-prometheus-example"})
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    return int(server.server_port)


async def run_streams(n: int) -> None:
    async with openai_client() as (client, model):
        for i in range(n):
            messages = [{"role": "user", "content": f"Count to {i + 3}."}]
            async with schwarm_stream.open(openai_chat(client, model=model, messages=messages)) as stream:
                await stream.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve schwarm_stream metrics for Prometheus.")
    parser.add_argument("--port", type=int, default=9464, help="0 picks a free port")
    parser.add_argument("--streams", type=int, default=3)
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to keep serving after the streams")
    args = parser.parse_args()
    port = serve(args.port)
    asyncio.run(run_streams(args.streams))
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:  # what Prometheus would scrape
        text = resp.read().decode()
    counts = re.findall(r"^gen_ai_client_operation_duration_seconds_count\{.*\} (\S+)$", text, re.MULTILINE)
    print(
        f"scraped {url}: {sum(float(c) for c in counts):g} streams in gen_ai_client_operation_duration_seconds"
    )
    if args.hold > 0:
        print(f"serving {url} for {args.hold:g} s", flush=True)
        time.sleep(args.hold)


if __name__ == "__main__":
    main()
