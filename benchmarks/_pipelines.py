"""The schwarm_stream pipelines under test, and an in-memory source of prebuilt chunk dicts.

- ``no_plugins``: every built-in disabled and ``accumulate`` replaced by an empty
  plugin: the bare core loop.
- ``default``: ``Pipeline()``'s built-ins (accumulate, metrics, retry, recovery,
  timeouts: whichever exist in this checkout, listed in the results), with the
  metrics plugin given an OpenTelemetry **SDK** ``MeterProvider`` (with an
  in-memory reader) instead of the API's no-op default.
- ``default+transformer+sse``: ``default`` plus a pass-through transformer (a
  redaction filter that finds nothing to redact) and an SSE sink (every event
  encoded as an SSE frame, as a web endpoint would send it).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from schwarm_stream import Chunk, Pipeline, hookimpl
from schwarm_stream._manager import BUILTIN_PLUGINS
from schwarm_stream.sources import Source
from schwarm_stream.sources._openai_chat import ChatNormalizer

try:
    import orjson

    _dumps = orjson.dumps
except ImportError:  # pragma: no cover

    def _dumps(value: Any) -> bytes:
        return json.dumps(value).encode()


class DictSource(Source):
    """Chat Completions chunk dicts, already parsed, normalized by the real normalizer (no I/O, no JSON)."""

    provider = "openai"
    model = "gpt-bench-1"

    def __init__(self, dicts: list[dict[str, Any]]) -> None:
        self.dicts = dicts

    def open(self, stream: Any, attempt: Any) -> AsyncIterator[Any]:
        return self._events()

    async def _events(self) -> AsyncIterator[Any]:
        norm = ChatNormalizer()
        feed = norm.feed
        for d in self.dicts:
            for ev in feed(d):
                yield ev


class EventSource(Source):
    """Prebuilt normalized events (what the normalizer made of the chunks), like the SDK objects the
    other contenders get prebuilt."""

    provider = "openai"
    model = "gpt-bench-1"

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    def open(self, stream: Any, attempt: Any) -> AsyncIterator[Any]:
        return self._events()

    async def _events(self) -> AsyncIterator[Any]:
        for ev in self.events:
            yield ev


def normalized(dicts: list[dict[str, Any]]) -> list[Any]:
    """The events the real normalizer makes of ``dicts``."""
    norm = ChatNormalizer()
    return [ev for d in dicts for ev in norm.feed(d)]


class _Empty:
    """Stands in for the essential ``accumulate`` built-in in the no-plugins pipeline."""


class Redactor:
    """A transformer: masks an API-key-like word in text chunks (there is none in the workload)."""

    @hookimpl
    def stream_transform(self, stream: Any, event: Any) -> Any:
        if type(event) is Chunk and "sk-" in event.text:
            return event.replace(text=event.text.replace("sk-", "[redacted]-"))
        return None


class SSESink:
    """A sink: every delivered event as one SSE frame (``id``, ``event``, JSON ``data``), buffered."""

    def __init__(self) -> None:
        self.frames = 0

    @hookimpl
    def stream_event(self, stream: Any, event: Any) -> None:
        tp = type(event)
        if tp is Chunk:
            data = _dumps({"text": event.text, "kind": event.kind})
        else:
            data = _dumps({"type": tp.__name__})
        frame = b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, tp.__name__.encode(), data)
        self.frames += len(frame) > 0


def sdk_meter_provider() -> Any:
    """An OpenTelemetry SDK MeterProvider with an in-memory reader (what a real deployment pays)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    return MeterProvider(metric_readers=[InMemoryMetricReader()])


_NO_AUTOLOAD = {"plugins": {"autoload": False}}


def no_plugins() -> Pipeline:
    others = [n for n in BUILTIN_PLUGINS if n != "accumulate"]
    return Pipeline([("accumulate", _Empty())], config={"plugins": {"autoload": False, "disable": others}})


def _metrics_plugin(meter_provider: Any, **options: Any) -> tuple[str, Any] | None:
    """The metrics built-in given an SDK meter provider, if this checkout has the plugin."""
    if "metrics" not in BUILTIN_PLUGINS:
        return None
    mod = importlib.import_module(BUILTIN_PLUGINS["metrics"])
    cls = getattr(mod, "MetricsPlugin", None)
    if cls is None:
        return None
    return ("metrics", cls(meter_provider=meter_provider, **options))


def default(extra: Iterable[Any] = (), **metrics_options: Any) -> tuple[Pipeline, dict[str, Any]]:
    """The default pipeline with an SDK meter provider, and a description of what is active."""
    mp = sdk_meter_provider()
    plugins: list[Any] = []
    metrics = _metrics_plugin(mp, **metrics_options)
    if metrics is not None:
        plugins.append(metrics)
    plugins.extend(extra)
    pipeline = Pipeline(plugins, config=_NO_AUTOLOAD)
    pipeline.plugins()  # build now: the first stream must not pay for plugin discovery
    active = [i.name for i in pipeline.plugins() if i.status == "enabled"]
    info = {
        "plugins": active,
        "builtins": sorted(BUILTIN_PLUGINS),
        "meter_provider": "opentelemetry.sdk MeterProvider"
        if metrics is not None
        else "none (no metrics plugin)",
        "missing": [n for n in ("accumulate", "metrics", "retry", "recovery", "timeouts") if n not in active],
    }
    pipeline._bench_meter_provider = mp  # type: ignore[attr-defined]  # kept alive with the pipeline
    return pipeline, info


def default_no_chunk_histogram() -> tuple[Pipeline, dict[str, Any]]:
    """``default`` with the time-per-output-chunk histogram off: one SDK record per stream, none per chunk.

    The work ``default`` did before that histogram was recorded per chunk (as the
    GenAI conventions define it), so before/after comparisons of the rest stay fair.
    """
    return default(time_per_output_chunk=False)


def default_transformer_sse() -> tuple[Pipeline, dict[str, Any]]:
    sink = SSESink()
    pipeline, info = default([Redactor(), sink])
    pipeline._bench_sink = sink  # type: ignore[attr-defined]
    return pipeline, info
