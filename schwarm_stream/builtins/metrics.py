"""Built-in plugin ``metrics``: OpenTelemetry metrics and traces, by the GenAI semantic conventions.

Written against ``opentelemetry-api`` only: you bring the SDK and an exporter.
Without a configured ``MeterProvider``/``TracerProvider`` every call goes to the
API's no-op proxies.

Two versions of the conventions, chosen as the OpenTelemetry GenAI
instrumentations choose them, by ``OTEL_SEMCONV_STABILITY_OPT_IN`` (a
comma-separated list), read when the plugin is built:

- unset (the default): the names this plugin has always emitted, those of the
  conventions up to v1.37 (``gen_ai.client.operation.duration``,
  ``gen_ai.client.token.usage``, ``gen_ai.client.operation.time_to_first_chunk``,
  ``gen_ai.client.operation.time_per_output_chunk``);
- ``gen_ai_latest_experimental``: the ``gen_ai.client.inference`` conventions of
  the semantic-conventions-genai repository (v0.1.0): ``gen_ai.client.inference.
  duration``, ``…time_to_first_chunk``, ``…time_per_output_chunk``, the token
  counters ``gen_ai.client.inference.usage.{input_tokens,output_tokens,
  cache_read.input_tokens,cache_write.input_tokens,reasoning.output_tokens}`` and
  the per-operation histograms ``gen_ai.client.inference.operation.
  {input_tokens,output_tokens}``, instead of the old names (not both).

Time per output chunk is recorded **per chunk**, as both versions define it: one
histogram value for each output chunk after the first of an attempt, the time
from the previous chunk to this one. The per-chunk hooks only append a clock
reading to a list; the values are recorded in ``stream_end``, with the
attributes known by then (``gen_ai.response.model``), so the SDK's cost
(several µs a value) is paid after the stream, not between the chunks a
consumer waits for. The per-chunk hooks are registered only where an SDK
``MeterProvider`` is behind the plugin when the pipeline is built (for the
built-in: set globally before the first stream opens): without OpenTelemetry a
pipeline pays no call per chunk.

Everything else is recorded once per stream, in ``stream_end``; a few per-stream
counters (retries, recoveries, errors) live in the stash.

Traces: one ``CLIENT`` span per stream (``"{operation} {model}"``) with a child
span per attempt (``schwarm_stream.attempt``); retries, recoveries and resets
are span events; a failed attempt ends with status ``ERROR`` and an
``exception`` event whose message passes through :func:`redact`. Both spans end
exactly once, in ``stream_end`` at the latest, which the core calls on every
exit path (completion, error, consumer ``break``, task cancellation). The
stream span also gets what the stream cost (``schwarm_stream.cost.usd``, see
:mod:`schwarm_stream.cost`) when the optional price table is installed.

Message content is never recorded unless you opt in with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (``SPAN_ONLY``,
``EVENT_ONLY``, ``SPAN_AND_EVENT``; ``true`` means ``SPAN_ONLY``; ``NO_CONTENT``
or anything else means none) or ``MetricsPlugin(capture_content=...)``.

The built-in is this module: its hooks hand each stream to one
:class:`MetricsPlugin` on the global providers, built when the first stream
starts (importing the module builds nothing). To use your own providers,
register an instance under the built-in's name::

    Pipeline([("metrics", MetricsPlugin(meter_provider=mp, tracer_provider=tp))])
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Final, Literal

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.metrics import NoOpHistogram, NoOpMeterProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._classify import redact
from .._stash import StashKey
from .._version import __version__
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from .._errors import StreamError
    from .._events import Chunk, Reset, ToolCallDelta
    from .._message import Message
    from .._stream import Attempt, Stream

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "CHUNK_GAP_BUCKETS",
    "DURATION_BUCKETS",
    "INSTRUMENTS",
    "LATEST_INSTRUMENTS",
    "SEMCONV_OPT_IN_ENV",
    "TOKEN_BUCKETS",
    "MetricsPlugin",
    "SemconvMode",
    "capture_mode",
    "default_plugin",
    "semconv_mode",
]

log = logging.getLogger("schwarm_stream")

SCOPE: Final = "schwarm_stream"
CAPTURE_CONTENT_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
#: The switch the OpenTelemetry instrumentations read; ``gen_ai_latest_experimental`` in it selects the new names.
SEMCONV_OPT_IN_ENV: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
GEN_AI_LATEST: Final = "gen_ai_latest_experimental"

SemconvMode = Literal["default", "latest"]

# Attribute names: the semantic-conventions package's constants where it has them (it ships
# with the OpenTelemetry SDK; the API alone does not bring it), the same strings otherwise.
try:
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _ga
    from opentelemetry.semconv.attributes import error_attributes as _err

    OPERATION: str = _ga.GEN_AI_OPERATION_NAME
    PROVIDER: str = _ga.GEN_AI_PROVIDER_NAME
    REQUEST_MODEL: str = _ga.GEN_AI_REQUEST_MODEL
    RESPONSE_MODEL: str = _ga.GEN_AI_RESPONSE_MODEL
    TOKEN_TYPE: str = _ga.GEN_AI_TOKEN_TYPE
    ERROR_TYPE: str = _err.ERROR_TYPE
    USAGE_INPUT: str = _ga.GEN_AI_USAGE_INPUT_TOKENS
    USAGE_OUTPUT: str = _ga.GEN_AI_USAGE_OUTPUT_TOKENS
    USAGE_CACHE_READ: str = _ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
    USAGE_REASONING: str = _ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
except ImportError:  # pragma: no cover - only without opentelemetry-semantic-conventions
    OPERATION = "gen_ai.operation.name"
    PROVIDER = "gen_ai.provider.name"
    REQUEST_MODEL = "gen_ai.request.model"
    RESPONSE_MODEL = "gen_ai.response.model"
    TOKEN_TYPE = "gen_ai.token.type"
    ERROR_TYPE = "error.type"
    USAGE_INPUT = "gen_ai.usage.input_tokens"
    USAGE_OUTPUT = "gen_ai.usage.output_tokens"
    USAGE_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
    USAGE_REASONING = "gen_ai.usage.reasoning.output_tokens"
# Not in the package (0.66b2 calls it cache_creation; the GenAI repository renamed it).
USAGE_CACHE_WRITE: Final = "gen_ai.usage.cache_write.input_tokens"
TOKEN_MODALITY: Final = "gen_ai.token.modality"
OUTCOME: Final = "schwarm_stream.outcome"
STRATEGY: Final = "schwarm_stream.recovery.strategy"
ATTEMPT: Final = "schwarm_stream.attempt"
COST: Final = "schwarm_stream.cost.usd"
COST_UNKNOWN: Final = "schwarm_stream.cost.unknown"

#: Semconv advice for the duration, time-to-first-chunk and time-per-output-chunk histograms (both versions).
DURATION_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
#: Semconv advice for ``gen_ai.client.token.usage`` and ``gen_ai.client.inference.operation.*_tokens``.
TOKEN_BUCKETS: Final = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
#: Finer buckets for chunk gaps (not the conventions' advice, which starts at 10 ms): fast models and
#: local servers stream chunks a few milliseconds apart. Apply them with an SDK ``View`` (see the docs).
CHUNK_GAP_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
)
#: Chunks per stream.
COUNT_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)

_Spec = tuple[str, str, str]  # kind, unit, description

#: Ours, in both versions: name -> (kind, unit, description).
_OWN: Final[dict[str, _Spec]] = {
    "schwarm_stream.chunks": (
        "histogram",
        "{chunk}",
        "Text, reasoning and refusal chunks delivered per stream.",
    ),
    "schwarm_stream.tool_call_deltas": ("histogram", "{delta}", "Tool-call fragments delivered per stream."),
    "schwarm_stream.retries": (
        "counter",
        "{retry}",
        "Attempts reopened by a plain retry (before any content).",
    ),
    "schwarm_stream.recoveries": ("counter", "{recovery}", "Recoveries, by strategy."),
    "schwarm_stream.errors": ("counter", "{error}", "Failures (recovered or not), by error type."),
    "schwarm_stream.resets": ("counter", "{reset}", "Reset events delivered (content was voided)."),
    "schwarm_stream.streams.active": ("updowncounter", "{stream}", "Streams in flight."),
}

_TPOC_TEXT: Final = (
    "Time per output chunk, recorded for each chunk received after the first one, measured as the "
    "time elapsed from the end of the previous chunk to the end of the current chunk."
)
_TTFC_TEXT: Final = (
    "Time to receive the first chunk, measured from when the client issues the generation request "
    "to when the first chunk is received in the response stream."
)

#: Every instrument of the default version: name -> (kind, unit, description).
INSTRUMENTS: Final[dict[str, _Spec]] = {
    "gen_ai.client.operation.duration": ("histogram", "s", "GenAI operation duration."),
    "gen_ai.client.token.usage": ("histogram", "{token}", "Number of input and output tokens used."),
    "gen_ai.client.operation.time_to_first_chunk": ("histogram", "s", _TTFC_TEXT),
    "gen_ai.client.operation.time_per_output_chunk": ("histogram", "s", _TPOC_TEXT),
    **_OWN,
}

_USAGE_NOTE: Final = "(0 when the provider reported none)."
#: Every instrument with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``.
LATEST_INSTRUMENTS: Final[dict[str, _Spec]] = {
    "gen_ai.client.inference.duration": ("histogram", "s", "GenAI client inference operation duration."),
    "gen_ai.client.inference.time_to_first_chunk": ("histogram", "s", _TTFC_TEXT),
    "gen_ai.client.inference.time_per_output_chunk": ("histogram", "s", _TPOC_TEXT),
    "gen_ai.client.inference.usage.input_tokens": (
        "counter",
        "{token}",
        f"The number of input (prompt) tokens used, including cached tokens {_USAGE_NOTE}",
    ),
    "gen_ai.client.inference.usage.output_tokens": (
        "counter",
        "{token}",
        f"The number of output (completion) tokens used, including reasoning tokens {_USAGE_NOTE}",
    ),
    "gen_ai.client.inference.usage.cache_read.input_tokens": (
        "counter",
        "{token}",
        f"The number of input tokens served from a provider-managed cache {_USAGE_NOTE}",
    ),
    "gen_ai.client.inference.usage.cache_write.input_tokens": (
        "counter",
        "{token}",
        f"The number of input tokens written to a provider-managed cache {_USAGE_NOTE}",
    ),
    "gen_ai.client.inference.usage.reasoning.output_tokens": (
        "counter",
        "{token}",
        f"The number of output tokens used for reasoning {_USAGE_NOTE}",
    ),
    "gen_ai.client.inference.operation.input_tokens": (
        "histogram",
        "{token}",
        "The number of input (prompt) tokens used per inference operation.",
    ),
    "gen_ai.client.inference.operation.output_tokens": (
        "histogram",
        "{token}",
        "The number of output (completion) tokens used per inference operation.",
    ),
    **_OWN,
}

_CAPTURE_MODES = ("NO_CONTENT", "SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT")
_TRUE = ("TRUE", "1", "YES", "ON")
_FALSE = ("", "FALSE", "0", "NO", "OFF")
_MAX_ERROR_TEXT = 500


def capture_mode(value: str | bool | None = None) -> str:
    """Normalize a content-capture setting (``None`` reads :data:`CAPTURE_CONTENT_ENV`).

    Returns one of ``NO_CONTENT``, ``SPAN_ONLY``, ``EVENT_ONLY``, ``SPAN_AND_EVENT``.
    ``true`` (the older instrumentations' value) means ``SPAN_ONLY``. An
    unknown value means ``NO_CONTENT`` with a warning: content stays off
    unless clearly asked for.
    """
    if value is None:
        value = os.environ.get(CAPTURE_CONTENT_ENV, "")
    if isinstance(value, bool):
        return "SPAN_ONLY" if value else "NO_CONTENT"
    v = value.strip().upper()
    if v in _CAPTURE_MODES:
        return v
    if v in _TRUE:
        return "SPAN_ONLY"
    if v not in _FALSE:
        log.warning(
            "%s=%r is not one of %s or true/false; message content is not captured",
            CAPTURE_CONTENT_ENV,
            value,
            "/".join(_CAPTURE_MODES),
        )
    return "NO_CONTENT"


def semconv_mode(value: str | None = None) -> SemconvMode:
    """Which conventions to emit: ``"latest"`` when ``gen_ai_latest_experimental`` is in the list.

    ``value`` is an ``OTEL_SEMCONV_STABILITY_OPT_IN`` value (``None`` reads the
    environment); other categories in the list (``http``, ``database``, …) are
    none of ours and are ignored.
    """
    if value is None:
        value = os.environ.get(SEMCONV_OPT_IN_ENV, "")
    wanted = {v.strip().lower() for v in value.split(",")}
    return "latest" if GEN_AI_LATEST in wanted else "default"


class _State:
    """Per-stream telemetry state (in ``stream.stash``)."""

    __slots__ = ("attempt_span", "attrs", "breaks", "errors", "recoveries", "retries", "span", "times")

    def __init__(self, attrs: dict[str, Any], span: Span, times: list[float] | None) -> None:
        self.attrs = attrs
        self.span = span
        self.attempt_span: Span | None = None
        self.retries = 0
        self.recoveries: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        #: clock readings of the output chunks (``None``: the histogram is a no-op, nothing to stamp)
        self.times = times
        #: indexes into ``times`` where an attempt after the first began (no gap across attempts)
        self.breaks: list[int] = []


STATE: StashKey[_State] = StashKey()
#: The same list as ``_State.times``, under its own key: the per-chunk hooks do one lookup.
TIMES: StashKey[list[float]] = StashKey()


def _error_type(err: BaseException) -> str:
    return type(err).__name__


def _error_text(err: BaseException) -> str:
    text = redact(str(err))
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"


def _end_failed(span: Span, err: BaseException) -> None:
    """Mark ``span`` failed by ``err``: status, ``error.type`` and a redacted ``exception`` event."""
    if span.is_recording():
        text = _error_text(err)
        span.set_attribute(ERROR_TYPE, _error_type(err))
        span.add_event("exception", {"exception.type": _error_type(err), "exception.message": text})
        span.set_status(Status(StatusCode.ERROR, text))
    span.end()


def _output_messages(message: Message) -> str:
    """``gen_ai.output.messages`` (semconv JSON shape) for the final or partial message."""
    parts: list[dict[str, Any]] = []
    if message.reasoning:
        parts.append({"type": "reasoning", "content": message.reasoning})
    if message.text:
        parts.append({"type": "text", "content": message.text})
    if message.refusal:
        parts.append({"type": "refusal", "content": message.refusal})
    for tc in message.tool_calls:
        args = tc.parsed if tc.error is None else tc.arguments
        parts.append({"type": "tool_call", "id": tc.id, "name": tc.name, "arguments": args})
    out: dict[str, Any] = {"role": "assistant", "parts": parts}
    if message.finish_reason:
        out["finish_reason"] = message.finish_reason
    return json.dumps([out], ensure_ascii=False, default=str)


def _live(histogram: Histogram) -> bool:
    """Whether values recorded on ``histogram`` go anywhere (an SDK is behind it, now).

    The API's proxy instruments get a real one once an SDK provider is set
    globally; until then (and for the explicit no-op) stamping chunks is waste.
    """
    if isinstance(histogram, NoOpHistogram):
        return False
    return getattr(histogram, "_real_instrument", histogram) is not None


def _sdk_behind(meter_provider: MeterProvider | None) -> bool:
    """Whether ``meter_provider`` (``None``: the global one) is a real SDK provider, now.

    Until an SDK provider is set globally the API hands out a placeholder
    proxy; values recorded through it go nowhere.
    """
    mp = otel_metrics.get_meter_provider() if meter_provider is None else meter_provider
    return not isinstance(mp, NoOpMeterProvider) and type(mp).__name__ != "_ProxyMeterProvider"


#: The per-chunk hooks: registered only where their clock readings can be recorded (see ``__dir__``).
_CHUNK_HOOKS: Final = frozenset({"stream_chunk", "stream_tool_call_delta"})
_late_sdk_warned = False


def _warn_late_sdk() -> None:
    global _late_sdk_warned
    if not _late_sdk_warned:
        _late_sdk_warned = True
        log.warning(
            "time per output chunk is not recorded for streams of a pipeline built before the "
            "OpenTelemetry SDK's MeterProvider was set: set it up before the first stream opens"
        )


def _gaps(times: list[float], breaks: list[int]) -> list[float]:
    """Gaps between consecutive chunk readings, none across an attempt boundary."""
    out = [b - a for a, b in pairwise(times)]
    for i in reversed(breaks):  # the gap ending at chunk i spans a failure and a reconnect
        if 0 < i <= len(out):
            del out[i - 1]
    return out


_clock = time.perf_counter  # the chunk clock (a module global: tests replace it)


class MetricsPlugin:
    """The metrics/tracing plugin.

    :param meter_provider: a ``MeterProvider`` (default: the global one, via the API).
    :param tracer_provider: a ``TracerProvider`` (default: the global one).
    :param logger_provider: a ``LoggerProvider`` for the content event in the
        ``EVENT_ONLY``/``SPAN_AND_EVENT`` modes (default: the global one).
    :param capture_content: a capture mode or bool; ``None`` reads
        ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` once per stream.
    :param semconv: ``"default"`` or ``"latest"``; ``None`` reads
        ``OTEL_SEMCONV_STABILITY_OPT_IN`` now (see :func:`semconv_mode`).
    :param cost: put what the stream cost on the span (needs the optional
        ``genai-prices``). ``None`` (the default): from the first traced stream
        on, the table loads on a background thread, and spans that end before
        it is loaded say ``schwarm_stream.cost.unknown`` = "the price table is
        still loading"; ``True``: every span, importing the table at the first
        end if need be (seconds, once); ``False``: never.
    :param time_per_output_chunk: record the time-per-output-chunk histogram
        (one value per chunk gap, each an SDK ``record`` of several µs at the
        end of the stream); ``False`` leaves it out and stamps no chunk.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        logger_provider: Any = None,
        capture_content: str | bool | None = None,
        semconv: SemconvMode | None = None,
        cost: bool | None = None,
        time_per_output_chunk: bool = True,
    ) -> None:
        meter = otel_metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self._tracer = otel_trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        self._logger_provider = logger_provider
        self._capture = None if capture_content is None else capture_mode(capture_content)
        self.semconv: SemconvMode = semconv if semconv is not None else semconv_mode()
        self._cost = cost
        self._chunk_times = time_per_output_chunk
        # Decided now: a pipeline registers the per-chunk hooks only when they can record.
        self._chunk_hooks = time_per_output_chunk and _sdk_behind(meter_provider)
        self.latest = self.semconv == "latest"
        specs = LATEST_INSTRUMENTS if self.latest else INSTRUMENTS
        self.instruments: dict[str, _Spec] = dict(specs)

        def hist(name: str, buckets: tuple[float, ...]) -> Histogram:
            _, unit, text = specs[name]
            return meter.create_histogram(
                name, unit=unit, description=text, explicit_bucket_boundaries_advisory=list(buckets)
            )

        def counter(name: str) -> Any:
            _, unit, text = specs[name]
            return meter.create_counter(name, unit=unit, description=text)

        prefix = "gen_ai.client.inference" if self.latest else "gen_ai.client.operation"
        self._duration = hist(f"{prefix}.duration", DURATION_BUCKETS)
        self._ttfc = hist(f"{prefix}.time_to_first_chunk", DURATION_BUCKETS)
        self._tpoc = hist(f"{prefix}.time_per_output_chunk", DURATION_BUCKETS)
        if self.latest:
            u = "gen_ai.client.inference.usage"
            self._usage = (
                counter(f"{u}.input_tokens"),
                counter(f"{u}.output_tokens"),
                counter(f"{u}.cache_read.input_tokens"),
                counter(f"{u}.cache_write.input_tokens"),
                counter(f"{u}.reasoning.output_tokens"),
            )
            self._op_input = hist("gen_ai.client.inference.operation.input_tokens", TOKEN_BUCKETS)
            self._op_output = hist("gen_ai.client.inference.operation.output_tokens", TOKEN_BUCKETS)
        else:
            self._tokens = hist("gen_ai.client.token.usage", TOKEN_BUCKETS)
        self._chunks = hist("schwarm_stream.chunks", COUNT_BUCKETS)
        self._tool_deltas = hist("schwarm_stream.tool_call_deltas", COUNT_BUCKETS)
        self._retries = counter("schwarm_stream.retries")
        self._recoveries = counter("schwarm_stream.recoveries")
        self._errors = counter("schwarm_stream.errors")
        self._resets = counter("schwarm_stream.resets")
        _, unit, text = specs["schwarm_stream.streams.active"]
        self._active = meter.create_up_down_counter(
            "schwarm_stream.streams.active", unit=unit, description=text
        )

    def __dir__(self) -> list[str]:
        # pluggy registers the hooks dir() names: leave the per-chunk ones out when nothing
        # would record their clock readings (no SDK, or time_per_output_chunk=False), so a
        # pipeline without OpenTelemetry pays no call per chunk.
        names = list(super().__dir__())
        return names if self._chunk_hooks else [n for n in names if n not in _CHUNK_HOOKS]

    # -- hooks: stream_chunk/stream_tool_call_delta only stamp the clock; the rest run once -------

    @hookimpl(tryfirst=True)
    def stream_start(self, stream: Stream) -> None:
        # tryfirst: the span and the in-flight count start before any other plugin can fail the stream.
        attrs: dict[str, Any] = {OPERATION: stream.operation, PROVIDER: stream.provider}
        if stream.model:
            attrs[REQUEST_MODEL] = stream.model
        name = f"{stream.operation} {stream.model}" if stream.model else stream.operation
        span_attrs: dict[str, Any] = {
            **attrs,
            "gen_ai.request.stream": True,
            "schwarm_stream.stream.id": stream.id,
        }
        if stream.agent_id:
            span_attrs["gen_ai.agent.id"] = stream.agent_id
        span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=span_attrs)
        if self._cost is None and span.is_recording():
            from .. import cost as cost_module

            cost_module.load_prices_in_background()  # once; a no-op after the first call
        times: list[float] | None = [] if self._chunk_times and _live(self._tpoc) else None
        stream.stash[STATE] = _State(attrs, span, times)
        if times is not None:
            stream.stash[TIMES] = times
        self._active.add(1, attrs)

    @hookimpl
    def stream_attempt(self, stream: Stream, attempt: Attempt) -> None:
        state = stream.stash.get(STATE)
        if state is None:
            return
        prev = attempt.previous_error
        if state.attempt_span is not None:  # a failure nobody reported through stream_error
            if prev is not None:
                _end_failed(state.attempt_span, prev)
            else:
                state.attempt_span.end()
            state.attempt_span = None
        times = state.times
        if times and (not state.breaks or state.breaks[-1] != len(times)):
            state.breaks.append(len(times))
        strategy = attempt.strategy
        if prev is not None:
            et = _error_type(prev)
            state.errors[et] = state.errors.get(et, 0) + 1
        if strategy is not None:
            if strategy == "retry":
                state.retries += 1
            else:
                state.recoveries[strategy] = state.recoveries.get(strategy, 0) + 1
            if state.span.is_recording():
                ev: dict[str, Any] = {ATTEMPT: attempt.number, STRATEGY: strategy}
                if prev is not None:
                    ev[ERROR_TYPE] = _error_type(prev)
                kind = "retry" if strategy == "retry" else "recovery"
                state.span.add_event(f"schwarm_stream.{kind}", ev)
        source = attempt.source
        attrs: dict[str, Any] = {ATTEMPT: attempt.number, PROVIDER: source.provider}
        if source.model:
            attrs[REQUEST_MODEL] = source.model
        if strategy is not None:
            attrs[STRATEGY] = strategy
        context = otel_trace.set_span_in_context(state.span)
        state.attempt_span = self._tracer.start_span(
            "schwarm_stream.attempt", context=context, kind=SpanKind.INTERNAL, attributes=attrs
        )

    @hookimpl
    def stream_chunk(self, stream: Stream, chunk: Chunk) -> None:
        times = stream.stash.get(TIMES)  # this runs for every chunk: one lookup, one append
        if times is not None:
            times.append(_clock())

    @hookimpl
    def stream_tool_call_delta(self, stream: Stream, delta: ToolCallDelta) -> None:
        times = stream.stash.get(TIMES)
        if times is not None:
            times.append(_clock())

    @hookimpl(tryfirst=True)
    def stream_error(self, stream: Stream, error: StreamError) -> None:
        # tryfirst: observe every failure even when another plugin decides; never decide.
        state = stream.stash.get(STATE)
        if state is not None and state.attempt_span is not None:
            _end_failed(state.attempt_span, error)
            state.attempt_span = None

    @hookimpl
    def stream_reset(self, stream: Stream, reset: Reset) -> None:
        state = stream.stash.get(STATE)
        if state is not None and state.span.is_recording():
            state.span.add_event("schwarm_stream.reset", {ATTEMPT: reset.attempt, STRATEGY: reset.strategy})

    @hookimpl
    def stream_complete(self, stream: Stream, message: Message) -> None:
        state = stream.stash.get(STATE)
        if state is not None and state.attempt_span is not None:
            state.attempt_span.end()
            state.attempt_span = None

    @hookimpl
    def stream_end(self, stream: Stream) -> None:
        state = stream.stash.get(STATE)
        if state is None:
            return
        del stream.stash[STATE]  # ends the spans exactly once, whatever calls this again
        if TIMES in stream.stash:
            del stream.stash[TIMES]
        try:
            self._record(stream, state)
        finally:
            self._active.add(-1, state.attrs)
            self._end_spans(stream, state)

    # -- recording -------------------------------------------------------------------------------

    def _record(self, stream: Stream, state: _State) -> None:
        attrs = state.attrs
        outcome = stream.outcome or "cancelled"
        error = stream.error if outcome in ("error", "partial") else None
        message = stream.message
        stats = stream._stats(priced=False)  # the clocks only: the span's cost is priced below, once
        common = dict(attrs)
        if message.model:
            common[RESPONSE_MODEL] = message.model

        if error is not None:
            et = _error_type(error)
            state.errors[et] = state.errors.get(et, 0) + 1
        if outcome == "partial":
            state.recoveries["partial"] = state.recoveries.get("partial", 0) + 1

        with_error = dict(common)
        if error is not None:
            with_error[ERROR_TYPE] = _error_type(error)
        self._duration.record(stats.elapsed, {**with_error, OUTCOME: outcome})
        if stats.time_to_first_token is not None:
            self._ttfc.record(stats.time_to_first_token, common)
        if state.times is not None and len(state.times) > 1:
            record = self._tpoc.record
            for gap in _gaps(state.times, state.breaks):  # one value per chunk interval
                record(gap, common)
        elif state.times == [] and stream.chunks + stream.tool_call_deltas > 1:
            _warn_late_sdk()  # live now, but the pipeline was built without the per-chunk hooks
        usage = message.usage
        if self.latest:
            self._record_usage(message, common, with_error)
        elif usage is not None:
            if usage.input_tokens is not None:
                self._tokens.record(usage.input_tokens, {**common, TOKEN_TYPE: "input"})
            if usage.output_tokens is not None:
                self._tokens.record(usage.output_tokens, {**common, TOKEN_TYPE: "output"})
        with_outcome = {**attrs, OUTCOME: outcome}
        self._chunks.record(stream.chunks, with_outcome)
        if stream.tool_call_deltas:
            self._tool_deltas.record(stream.tool_call_deltas, with_outcome)
        if state.retries:
            self._retries.add(state.retries, attrs)
        for strategy, n in state.recoveries.items():
            self._recoveries.add(n, {**attrs, STRATEGY: strategy})
        for et, n in state.errors.items():
            self._errors.add(n, {**attrs, ERROR_TYPE: et})
        if stream.resets:
            self._resets.add(stream.resets, attrs)

        span = state.span
        if span.is_recording():
            self._span_attributes(
                stream, span, message, stats.time_to_first_token, stats.time_per_output_chunk
            )
            mode = self._capture or capture_mode()
            if mode != "NO_CONTENT":
                self._capture_content(mode, span, message, common)

    def _record_usage(self, message: Message, common: dict[str, Any], with_error: dict[str, Any]) -> None:
        """The v0.1.0 token instruments: every stream, failed ones too; 0 where nothing was reported."""
        usage = message.usage
        if usage is None:
            values = (0, 0, 0, 0, 0)
        else:
            values = (
                usage.all_input_tokens or 0,
                usage.output_tokens or 0,
                usage.cache_read_tokens or 0,
                usage.cache_write_tokens or 0,
                usage.reasoning_tokens or 0,
            )
        # The provider does not break usage down by modality: "unknown", as the conventions say.
        by_modality = {**common, TOKEN_MODALITY: "unknown"}
        for counter, value in zip(self._usage, values, strict=True):
            counter.add(value, by_modality)
        self._op_input.record(values[0], with_error)
        self._op_output.record(values[1], with_error)

    def _span_attributes(
        self, stream: Stream, span: Span, message: Message, ttfc: float | None, tpoc: float | None
    ) -> None:
        outcome = stream.outcome or "cancelled"
        a: dict[str, Any] = {
            OUTCOME: outcome,
            "schwarm_stream.attempts": stream.attempt,
            "schwarm_stream.chunks": stream.chunks,
            "schwarm_stream.tool_call_deltas": stream.tool_call_deltas,
            "schwarm_stream.resets": stream.resets,
        }
        if message.model:
            a[RESPONSE_MODEL] = message.model
        if message.id:
            a["gen_ai.response.id"] = message.id
        if message.finish_reason:
            a["gen_ai.response.finish_reasons"] = [message.finish_reason]
        usage = message.usage
        if usage is not None:
            if self.latest:
                # v0.1.0: input counts every input token, cached ones included; the detail
                # counters only when available and non-zero.
                if usage.all_input_tokens is not None:
                    a[USAGE_INPUT] = usage.all_input_tokens
                for key, value in (
                    (USAGE_CACHE_READ, usage.cache_read_tokens),
                    (USAGE_CACHE_WRITE, usage.cache_write_tokens),
                    (USAGE_REASONING, usage.reasoning_tokens),
                ):
                    if value:
                        a[key] = value
            elif usage.input_tokens is not None:
                a[USAGE_INPUT] = usage.input_tokens
            if usage.output_tokens is not None:
                a[USAGE_OUTPUT] = usage.output_tokens
        if ttfc is not None:
            a["gen_ai.response.time_to_first_chunk"] = ttfc
        if tpoc is not None:
            a["schwarm_stream.time_per_output_chunk"] = tpoc
        if stream.recovery:
            a["schwarm_stream.recovery"] = stream.recovery
        if self._cost is not False:
            from .. import cost as cost_module

            if self._cost is None and not cost_module.prices_loaded():
                a[COST_UNKNOWN] = "the price table is still loading"
            else:
                cost = cost_module.cost_of(message)
                if cost.total is not None:
                    a[COST] = float(cost.total)
                else:
                    a[COST_UNKNOWN] = cost.reason or "unknown"
        span.set_attributes(a)

    def _capture_content(self, mode: str, span: Span, message: Message, attrs: dict[str, Any]) -> None:
        output = redact(_output_messages(message))  # opted-in content still carries no key
        if mode in ("SPAN_ONLY", "SPAN_AND_EVENT"):
            span.set_attribute("gen_ai.output.messages", output)
        if mode in ("EVENT_ONLY", "SPAN_AND_EVENT"):
            from opentelemetry import _logs

            logger = _logs.get_logger(SCOPE, __version__, logger_provider=self._logger_provider)
            logger.emit(
                event_name="gen_ai.client.inference.operation.details",
                context=otel_trace.set_span_in_context(span),
                attributes={**attrs, "gen_ai.output.messages": output},
            )

    def _end_spans(self, stream: Stream, state: _State) -> None:
        outcome = stream.outcome or "cancelled"
        error = stream.error
        attempt_span, state.attempt_span = state.attempt_span, None
        if attempt_span is not None:
            if outcome in ("error", "partial") and error is not None:
                _end_failed(attempt_span, error)
            else:
                attempt_span.end()
        if outcome == "error" and error is not None:
            _end_failed(state.span, error)
        else:
            if outcome == "partial" and error is not None and state.span.is_recording():
                state.span.set_attribute(ERROR_TYPE, _error_type(error))
            state.span.end()


# -- the built-in: this module, with one plugin on the global providers, built on first use ------

_default: MetricsPlugin | None = None
_default_lock = threading.Lock()


def default_plugin() -> MetricsPlugin:
    """The plugin the built-in hands streams to, on the global providers (built on the first call)."""
    global _default
    plugin = _default
    if plugin is None:
        with _default_lock:  # streams of sync wrappers start on other threads: build one, once
            if _default is None:
                _default = MetricsPlugin()
            plugin = _default
    return plugin


def __dir__() -> list[str]:
    # The module is the registered plugin: pluggy registers the hooks dir() names. Without an SDK
    # MeterProvider set globally when a pipeline is built, leave the per-chunk hooks out.
    names = list(globals())
    return names if _sdk_behind(None) else [n for n in names if n not in _CHUNK_HOOKS]


@hookimpl(tryfirst=True)
def stream_start(stream: Stream) -> None:
    default_plugin().stream_start(stream)


@hookimpl
def stream_attempt(stream: Stream, attempt: Attempt) -> None:
    default_plugin().stream_attempt(stream, attempt)


@hookimpl
def stream_chunk(stream: Stream, chunk: Chunk) -> None:
    times = stream.stash.get(TIMES)  # no plugin lookup per chunk: the list is in the stash
    if times is not None:
        times.append(_clock())


@hookimpl
def stream_tool_call_delta(stream: Stream, delta: ToolCallDelta) -> None:
    times = stream.stash.get(TIMES)
    if times is not None:
        times.append(_clock())


@hookimpl(tryfirst=True)
def stream_error(stream: Stream, error: StreamError) -> None:
    default_plugin().stream_error(stream, error)


@hookimpl
def stream_reset(stream: Stream, reset: Reset) -> None:
    default_plugin().stream_reset(stream, reset)


@hookimpl
def stream_complete(stream: Stream, message: Message) -> None:
    default_plugin().stream_complete(stream, message)


@hookimpl
def stream_end(stream: Stream) -> None:
    default_plugin().stream_end(stream)
