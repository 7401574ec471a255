"""The registry of live streams: list, look up, pause / resume / cancel by id, aggregate stats.

Every stream a :class:`~schwarm_stream.Pipeline` opens is added to its registry (by default the
process-wide :func:`stream_registry`), so one place answers "what is running right now" and
"how did the streams that ended do"::

    reg = schwarm_stream.stream_registry()
    for info in reg.list():                 # id, provider, model, state, age, chunks, attempt
        ...
    reg.cancel(stream_id)                   # pause(), resume() likewise
    stats = reg.get_all_stats()             # counts by state and outcome, errors by type,
                                            # time to first content and duration, tokens

Weakly held: the registry keeps a live stream only through a weak reference, and drops even
that when the stream ends (``stream_end``), after folding its numbers into the aggregates. A
finished or abandoned stream is therefore collectable at once; the registry keeps numbers, never
a stream, its message or its error.

Aggregates need no OpenTelemetry SDK: count, mean, min and max over every stream that ended;
p50 and p99 over the last ``window`` of them (a bounded sample, so memory stays flat however long
the process runs).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._stash import StashKey
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from ._errors import StreamError
    from ._stream import Stream

__all__ = ["RegistryStats", "StatSummary", "StreamInfo", "StreamRegistry", "stream_registry"]

#: The name the registry's hook implementations are registered under in a pipeline.
REGISTRY_PLUGIN = "schwarm_stream.registry"

#: Set (``True``) by admission control while a stream waits for a slot: its state is then ``"queued"``.
QUEUED: StashKey[bool] = StashKey()

_OPENED: StashKey[float] = StashKey()
_REGISTRY: StashKey[StreamRegistry] = StashKey()
_LOOP: StashKey[asyncio.AbstractEventLoop] = StashKey()


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One live stream as :meth:`StreamRegistry.list` shows it.

    ``state`` is ``"new"`` (opened, not iterated yet), ``"queued"`` (waiting for an admission
    slot), ``"running"``, ``"paused"``, or an outcome while its ``stream_end`` runs. ``age`` is
    seconds since the stream was opened.
    """

    id: str
    provider: str
    model: str | None
    state: str
    age: float
    chunks: int
    attempt: int
    agent_id: str | None = None
    committed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class StatSummary:
    """Count, mean, min and max over all samples; p50 and p99 over the most recent ``window``.

    Quantiles are nearest-rank (the smallest sample with at least q of the samples at or below
    it). Every value is ``None`` while ``count`` is 0.
    """

    count: int = 0
    mean: float | None = None
    p50: float | None = None
    p99: float | None = None
    min: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class RegistryStats:
    """What :meth:`StreamRegistry.get_all_stats` returns.

    ``by_state`` counts the live streams, ``by_outcome`` the ended ones (``complete``, ``error``,
    ``cancelled``, ``partial``); ``errors`` counts the ended streams' final errors by type name,
    ``failures`` every failure ``stream_error`` saw (retried and recovered ones included).
    Tokens and chunks are totals over the ended streams (tokens as the providers reported them).
    """

    live: int
    by_state: dict[str, int]
    ended: int
    by_outcome: dict[str, int]
    errors: dict[str, int]
    failures: dict[str, int]
    time_to_first_content: StatSummary
    duration: StatSummary
    input_tokens: int
    output_tokens: int
    chunks: int
    attempts: int
    window: int = field(default=0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what the web admin endpoint sends)."""
        out: dict[str, Any] = {}
        for k in self.__slots__:
            v = getattr(self, k)
            out[k] = v.to_dict() if isinstance(v, StatSummary) else (dict(v) if isinstance(v, dict) else v)
        return out


class _Series:
    """Running count/sum/min/max plus a bounded window of recent samples for quantiles."""

    __slots__ = ("count", "max", "min", "recent", "total")

    def __init__(self, window: int) -> None:
        self.count = 0
        self.total = 0.0
        self.min: float | None = None
        self.max: float | None = None
        self.recent: deque[float] = deque(maxlen=window)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.min = value if self.min is None or value < self.min else self.min
        self.max = value if self.max is None or value > self.max else self.max
        self.recent.append(value)

    def summary(self) -> StatSummary:
        if not self.count:
            return StatSummary()
        ordered = sorted(self.recent)
        return StatSummary(
            count=self.count,
            mean=self.total / self.count,
            p50=_rank(ordered, 0.50),
            p99=_rank(ordered, 0.99),
            min=self.min,
            max=self.max,
        )


def _rank(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of a sorted, non-empty list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class StreamRegistry:
    """Live streams (weakly held) and the aggregates of ended ones; see the module docstring.

    Thread-safe. :meth:`pause`, :meth:`resume` and :meth:`cancel` may be called from any thread:
    a stream running on another event loop is reached through that loop
    (``call_soon_threadsafe``). ``window`` bounds the samples kept for p50 / p99.
    """

    def __init__(self, *, window: int = 10_000) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._lock = threading.Lock()
        self._live: weakref.WeakSet[Stream] = weakref.WeakSet()
        self._by_id: weakref.WeakValueDictionary[str, Stream] = weakref.WeakValueDictionary()
        self.reset_stats()

    def reset_stats(self) -> None:
        """Forget the aggregates of ended streams (the live streams stay listed)."""
        with self._lock:
            self._ended = 0
            self._outcomes: dict[str, int] = {}
            self._errors: dict[str, int] = {}
            self._failures: dict[str, int] = {}
            self._ttfc = _Series(self.window)
            self._duration = _Series(self.window)
            self._input_tokens = 0
            self._output_tokens = 0
            self._chunks = 0
            self._attempts = 0

    # -- live streams -------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def __contains__(self, stream_id: object) -> bool:
        return isinstance(stream_id, str) and self.get(stream_id) is not None

    def __iter__(self) -> Iterator[Stream]:
        """The live streams (a snapshot; the iterator holds them strongly until exhausted)."""
        with self._lock:
            return iter(list(self._live))

    def get(self, stream_id: str) -> Stream | None:
        """The live stream with this id, or ``None`` (unknown, ended, or collected)."""
        with self._lock:
            return self._by_id.get(stream_id)

    def info(self, stream_id: str) -> StreamInfo | None:
        """The :class:`StreamInfo` of one live stream, or ``None``."""
        stream = self.get(stream_id)
        return None if stream is None else _info(stream, time.monotonic())

    def list(self) -> list[StreamInfo]:
        """Every live stream, oldest first."""
        now = time.monotonic()
        infos = [_info(s, now) for s in self]
        infos.sort(key=lambda i: -i.age)
        return infos

    def pause(self, stream_id: str) -> bool:
        """Pause a live stream (it stops reading its provider); ``False`` when there is no such stream."""
        return self._control(stream_id, lambda s: s.pause())

    def resume(self, stream_id: str) -> bool:
        """Resume a paused stream; ``False`` when there is no such stream."""
        return self._control(stream_id, lambda s: s.resume())

    def cancel(self, stream_id: str, reason: str = "cancelled through the stream registry") -> bool:
        """Cancel a live stream (it ends with ``StreamCancelled``); ``False`` when there is no such stream."""
        return self._control(stream_id, lambda s: s.cancel(reason))

    def _control(self, stream_id: str, action: Callable[[Stream], None]) -> bool:
        stream = self.get(stream_id)
        if stream is None or stream.outcome is not None:
            return False
        loop = stream.stash.get(_LOOP)
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop is running or loop.is_closed():
            action(stream)
        else:  # the stream's task runs on another loop (thread): its asyncio objects are not ours to touch
            loop.call_soon_threadsafe(action, stream)
        return True

    # -- aggregates ---------------------------------------------------------------------------

    def get_all_stats(self) -> RegistryStats:
        """Counts by state and outcome, errors by type, time to first content, durations, tokens."""
        by_state: dict[str, int] = {}
        for s in self:
            state = _state(s)
            by_state[state] = by_state.get(state, 0) + 1
        with self._lock:
            return RegistryStats(
                live=sum(by_state.values()),
                by_state=by_state,
                ended=self._ended,
                by_outcome=dict(self._outcomes),
                errors=dict(self._errors),
                failures=dict(self._failures),
                time_to_first_content=self._ttfc.summary(),
                duration=self._duration.summary(),
                input_tokens=self._input_tokens,
                output_tokens=self._output_tokens,
                chunks=self._chunks,
                attempts=self._attempts,
                window=self.window,
            )

    # -- what the pipeline and its hooks call ----------------------------------------------------

    @property
    def plugin(self) -> Any:
        """The hook implementations a pipeline registers (one object for every registry: each stream
        reports to the registry it was added to, so ``pipeline.registry`` may be replaced)."""
        return _HOOKS

    def add(self, stream: Stream) -> None:
        """Make ``stream`` visible (``Pipeline.open`` calls this); weakly held."""
        stream.stash[_OPENED] = time.monotonic()
        stream.stash[_REGISTRY] = self
        with self._lock:
            self._live.add(stream)
            self._by_id[stream.id] = stream

    def _failed(self, error: StreamError) -> None:
        name = type(error).__name__
        with self._lock:
            self._failures[name] = self._failures.get(name, 0) + 1

    def _ended_stream(self, stream: Stream) -> None:
        outcome = stream.outcome or "cancelled"
        error = stream.error
        start = stream.started_at
        end = stream.ended_at or time.monotonic()
        first = stream.first_content_at
        message = stream.message
        usage = message.usage if message is not None else None
        with self._lock:
            self._live.discard(stream)
            if self._by_id.get(stream.id) is stream:
                del self._by_id[stream.id]
            self._ended += 1
            self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
            if error is not None:
                name = type(error).__name__
                self._errors[name] = self._errors.get(name, 0) + 1
            if start is not None:
                self._duration.add(end - start)
                if first is not None:
                    self._ttfc.add(first - start)
            if usage is not None:
                self._input_tokens += usage.input_tokens or 0
                self._output_tokens += usage.output_tokens or 0
            self._chunks += stream.chunks
            self._attempts += stream.attempt


def _state(stream: Stream) -> str:
    if stream.outcome is not None:
        return stream.outcome
    if stream.stash.get(QUEUED):
        return "queued"
    if stream.paused:
        return "paused"
    return "running" if stream.started_at is not None else "new"


def _info(stream: Stream, now: float) -> StreamInfo:
    return StreamInfo(
        id=stream.id,
        provider=stream.provider,
        model=stream.model,
        state=_state(stream),
        age=now - stream.stash.get(_OPENED, now),
        chunks=stream.chunks,
        attempt=stream.attempt,
        agent_id=stream.agent_id,
        committed=stream.committed,
    )


class _RegistryPlugin:
    """The registry hooks: where a stream runs, every failure, and the end (fold, then forget)."""

    @hookimpl(tryfirst=True)
    def stream_start(self, stream: Stream) -> None:
        try:
            stream.stash[_LOOP] = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - streams run on a loop
            pass

    @hookimpl(tryfirst=True)
    def stream_error(self, stream: Stream, error: StreamError) -> None:
        registry = stream.stash.get(_REGISTRY)
        if registry is not None:
            registry._failed(error)  # observe only: never decides

    @hookimpl(trylast=True)
    def stream_end(self, stream: Stream) -> None:
        registry = stream.stash.get(_REGISTRY)
        if registry is not None:
            registry._ended_stream(stream)


_HOOKS = _RegistryPlugin()


_default: StreamRegistry | None = None
_default_lock = threading.Lock()


def stream_registry() -> StreamRegistry:
    """The process-wide registry every :class:`~schwarm_stream.Pipeline` uses unless given its own."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = StreamRegistry()
    return _default
