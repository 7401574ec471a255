"""Built-in plugin ``metrics``: OpenTelemetry metrics and traces, by the GenAI semantic conventions.

Written against ``opentelemetry-api`` only: you bring the SDK and an exporter.
Without a configured ``MeterProvider``/``TracerProvider`` every call goes to the
API's no-op proxies (a fraction of a microsecond, once per stream).

Cost model: this plugin implements **no per-chunk hook**. The core already
counts chunks and stamps the first content and the end (``stream.stats()``);
the plugin keeps a few per-stream counters in the stash (retries, recoveries,
errors) bumped in once-per-attempt hooks, and records every instrument once,
in ``stream_end``. An OpenTelemetry SDK ``add``/``record`` costs 5-12 µs, so
calling one per chunk would cost more than the whole rest of our pipeline.

``gen_ai.client.operation.time_per_output_chunk`` is therefore recorded once
per stream, as the stream's *mean* gap between output chunks,
``(end - first chunk) / (chunks - 1)`` (see ``docs/observability.md`` for the
numbers behind that choice).

Traces: one ``CLIENT`` span per stream (``"{operation} {model}"``) with a child
span per attempt (``schwarm_stream.attempt``); retries, recoveries and resets
are span events; a failed attempt ends with status ``ERROR`` and an
``exception`` event whose message passes through :func:`redact`. Both spans end
exactly once, in ``stream_end`` at the latest, which the core calls on every
exit path (completion, error, consumer ``break``, task cancellation).

Message content is never recorded unless you opt in with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (``SPAN_ONLY``,
``EVENT_ONLY``, ``SPAN_AND_EVENT``; ``true`` means ``SPAN_ONLY``; ``NO_CONTENT``
or anything else means none) or ``MetricsPlugin(capture_content=...)``.

To use your own providers instead of the global ones, register an instance
under the built-in's name::

    Pipeline([("metrics", MetricsPlugin(meter_provider=mp, tracer_provider=tp))])
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._stash import StashKey
from .._version import __version__
from ..hookspecs import hookimpl
from ..sources._classify import redact

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from .._errors import StreamError
    from .._events import Reset
    from .._message import Message
    from .._stream import Attempt, Stream

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "CHUNK_GAP_BUCKETS",
    "DURATION_BUCKETS",
    "INSTRUMENTS",
    "TOKEN_BUCKETS",
    "MetricsPlugin",
    "capture_mode",
]

log = logging.getLogger("schwarm_stream")

SCOPE: Final = "schwarm_stream"
CAPTURE_CONTENT_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# Attribute names (GenAI semantic conventions, plus ours under ``schwarm_stream.``).
OPERATION: Final = "gen_ai.operation.name"
PROVIDER: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
TOKEN_TYPE: Final = "gen_ai.token.type"
ERROR_TYPE: Final = "error.type"
OUTCOME: Final = "schwarm_stream.outcome"
STRATEGY: Final = "schwarm_stream.recovery.strategy"
ATTEMPT: Final = "schwarm_stream.attempt"

#: Semconv advice for ``gen_ai.client.operation.duration`` (also used for time to first chunk).
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
#: Semconv advice for ``gen_ai.client.token.usage``.
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
#: Gaps between chunks: the time-per-token family, with finer buckets below 10 ms
#: (loopback and fast models stream chunks a few milliseconds apart).
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

#: Every instrument: name -> (kind, unit, description). ``docs/observability.md`` lists the attributes.
INSTRUMENTS: Final[dict[str, tuple[str, str, str]]] = {
    "gen_ai.client.operation.duration": ("histogram", "s", "GenAI operation duration."),
    "gen_ai.client.token.usage": ("histogram", "{token}", "Number of input and output tokens used."),
    "gen_ai.client.operation.time_to_first_chunk": (
        "histogram",
        "s",
        "Time to receive the first chunk, from the start of the stream.",
    ),
    "gen_ai.client.operation.time_per_output_chunk": (
        "histogram",
        "s",
        "Mean time between consecutive output chunks of one stream (one value per stream).",
    ),
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


class _State:
    """Per-stream telemetry state (in ``stream.stash``)."""

    __slots__ = ("attempt_span", "attrs", "errors", "recoveries", "retries", "span")

    def __init__(self, attrs: dict[str, Any], span: Span) -> None:
        self.attrs = attrs
        self.span = span
        self.attempt_span: Span | None = None
        self.retries = 0
        self.recoveries: dict[str, int] = {}
        self.errors: dict[str, int] = {}


STATE: StashKey[_State] = StashKey()


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


class MetricsPlugin:
    """The metrics/tracing plugin; the module-level default uses the global providers.

    :param meter_provider: a ``MeterProvider`` (default: the global one, via the API).
    :param tracer_provider: a ``TracerProvider`` (default: the global one).
    :param logger_provider: a ``LoggerProvider`` for the content event in the
        ``EVENT_ONLY``/``SPAN_AND_EVENT`` modes (default: the global one).
    :param capture_content: a capture mode or bool; ``None`` reads
        ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` once per stream.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        logger_provider: Any = None,
        capture_content: str | bool | None = None,
    ) -> None:
        meter = otel_metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self._tracer = otel_trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        self._logger_provider = logger_provider
        self._capture = None if capture_content is None else capture_mode(capture_content)
        h = meter.create_histogram
        d = INSTRUMENTS
        self._duration = h(
            "gen_ai.client.operation.duration",
            unit="s",
            description=d["gen_ai.client.operation.duration"][2],
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self._tokens = h(
            "gen_ai.client.token.usage",
            unit="{token}",
            description=d["gen_ai.client.token.usage"][2],
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        self._ttfc = h(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description=d["gen_ai.client.operation.time_to_first_chunk"][2],
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self._tpoc = h(
            "gen_ai.client.operation.time_per_output_chunk",
            unit="s",
            description=d["gen_ai.client.operation.time_per_output_chunk"][2],
            explicit_bucket_boundaries_advisory=list(CHUNK_GAP_BUCKETS),
        )
        self._chunks = h(
            "schwarm_stream.chunks",
            unit="{chunk}",
            description=d["schwarm_stream.chunks"][2],
            explicit_bucket_boundaries_advisory=list(COUNT_BUCKETS),
        )
        self._tool_deltas = h(
            "schwarm_stream.tool_call_deltas",
            unit="{delta}",
            description=d["schwarm_stream.tool_call_deltas"][2],
            explicit_bucket_boundaries_advisory=list(COUNT_BUCKETS),
        )
        c = meter.create_counter
        self._retries = c(
            "schwarm_stream.retries", unit="{retry}", description=d["schwarm_stream.retries"][2]
        )
        self._recoveries = c(
            "schwarm_stream.recoveries", unit="{recovery}", description=d["schwarm_stream.recoveries"][2]
        )
        self._errors = c("schwarm_stream.errors", unit="{error}", description=d["schwarm_stream.errors"][2])
        self._resets = c("schwarm_stream.resets", unit="{reset}", description=d["schwarm_stream.resets"][2])
        self._active = meter.create_up_down_counter(
            "schwarm_stream.streams.active",
            unit="{stream}",
            description=d["schwarm_stream.streams.active"][2],
        )

    # -- hooks (all sync and once per stream or attempt: none runs per chunk) ---------------------

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
        stream.stash[STATE] = _State(attrs, span)
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
        stats = stream.stats()
        common = dict(attrs)
        if message.model:
            common[RESPONSE_MODEL] = message.model

        if error is not None:
            et = _error_type(error)
            state.errors[et] = state.errors.get(et, 0) + 1
        if outcome == "partial":
            state.recoveries["partial"] = state.recoveries.get("partial", 0) + 1

        duration = {**common, OUTCOME: outcome}
        if error is not None:
            duration[ERROR_TYPE] = _error_type(error)
        self._duration.record(stats.elapsed, duration)
        if stats.time_to_first_token is not None:
            self._ttfc.record(stats.time_to_first_token, common)
        tpoc = stats.time_per_output_chunk
        if tpoc is not None and outcome == "complete":
            self._tpoc.record(tpoc, common)
        usage = message.usage
        if usage is not None:
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
            span_attrs: dict[str, Any] = {
                OUTCOME: outcome,
                "schwarm_stream.attempts": stream.attempt,
                "schwarm_stream.chunks": stream.chunks,
                "schwarm_stream.tool_call_deltas": stream.tool_call_deltas,
                "schwarm_stream.resets": stream.resets,
            }
            if message.model:
                span_attrs[RESPONSE_MODEL] = message.model
            if message.id:
                span_attrs["gen_ai.response.id"] = message.id
            if message.finish_reason:
                span_attrs["gen_ai.response.finish_reasons"] = [message.finish_reason]
            if usage is not None:
                if usage.input_tokens is not None:
                    span_attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
                if usage.output_tokens is not None:
                    span_attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
            if stats.time_to_first_token is not None:
                span_attrs["gen_ai.response.time_to_first_chunk"] = stats.time_to_first_token
            if tpoc is not None:
                span_attrs["schwarm_stream.time_per_output_chunk"] = tpoc
            if stream.recovery:
                span_attrs["schwarm_stream.recovery"] = stream.recovery
            span.set_attributes(span_attrs)
            mode = self._capture or capture_mode()
            if mode != "NO_CONTENT":
                self._capture_content(mode, span, message, common)

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


_DEFAULT = MetricsPlugin()

# The built-in is registered as this module: expose the default instance's hooks.
stream_start = _DEFAULT.stream_start
stream_attempt = _DEFAULT.stream_attempt
stream_error = _DEFAULT.stream_error
stream_reset = _DEFAULT.stream_reset
stream_complete = _DEFAULT.stream_complete
stream_end = _DEFAULT.stream_end
