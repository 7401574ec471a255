"""Many streams at once: merge, race, hedge, and compare.

Every stream here is an ordinary logical stream opened through a
:class:`~schwarm_stream.Pipeline`, so each keeps its plugins, retries, recovery
and final message; this module only schedules them.

- :func:`merge`: several streams into one sequence of :class:`Tagged` events,
  fair (round robin between sources with events ready) and priority-aware
  (a source with a higher ``priority`` is served first), each source's final
  message kept separately; one source failing does not end the others unless
  ``fail_fast=True``.
- :func:`race`: start several sources, keep the first to deliver content (or,
  with ``win_on="complete"``, the first to complete) and cancel the others at
  once (their connections are closed).
- :func:`hedge`: start a backup only if the primary has not delivered its first
  content within a delay (fixed, or a percentile of observed times to first
  content, :class:`LatencyTracker`), with a cap on the share of extra requests.
- :func:`compare`: run sources side by side on the same prompt and report time
  to first chunk, duration, tokens, tool calls and a text diff.

Each has a sync form for code without an event loop (a script, Flask): :func:`merge_sync`,
:func:`race_sync`, :func:`hedge_sync` and :func:`compare_sync`, the same parameters and results.
"""

from __future__ import annotations

import asyncio
import bisect
import difflib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .._errors import SchwarmStreamError, StreamError
from .._events import Event
from .._message import Message
from .._pipeline import Pipeline, default_pipeline
from .._stream import Stream
from ..sources import Source, as_source
from ._sync_bridge import BridgedContext, run_once

__all__ = [
    "ComparisonReport",
    "HedgePolicy",
    "LatencyTracker",
    "Merged",
    "NoWinner",
    "Raced",
    "SourceResult",
    "SyncMerged",
    "SyncRaced",
    "Tagged",
    "compare",
    "compare_sync",
    "hedge",
    "hedge_sync",
    "merge",
    "merge_sync",
    "race",
    "race_sync",
]


@dataclass(slots=True)
class Tagged:
    """An event from one of several streams: ``source`` names which."""

    source: str
    event: Event


class NoWinner(SchwarmStreamError):
    """Every contender of a race failed; ``errors`` maps each source name to its error."""

    def __init__(self, errors: Mapping[str, BaseException]) -> None:
        detail = "; ".join(f"{k}: {type(v).__name__}: {v}" for k, v in errors.items())
        super().__init__(f"no stream completed the race ({detail})")
        self.errors = dict(errors)


def _names(sources: Sequence[Any], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(sources) or len(set(names)) != len(names):
            raise ValueError("names must be unique and one per source")
        return list(names)
    out: list[str] = []
    for i, src in enumerate(sources):
        base = getattr(src, "model", None) or f"source{i}"
        name = base if base not in out else f"{base}#{i}"
        out.append(name)
    return out


_END = object()


class _Lane:
    """One source's bounded queue inside a merge."""

    __slots__ = ("done", "name", "priority", "queue", "task")

    def __init__(self, name: str, priority: int, maxsize: int) -> None:
        self.name = name
        self.priority = priority
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self.task: asyncio.Task[None] | None = None
        self.done = False


class Merged:
    """The merged stream: iterate :class:`Tagged` events; ``messages`` and ``errors`` per source afterwards."""

    def __init__(
        self,
        sources: Sequence[Any],
        *,
        names: Sequence[str] | None,
        priorities: Mapping[str, int] | None,
        pipeline: Pipeline | None,
        fail_fast: bool,
        max_pending: int,
    ) -> None:
        self._sources = [as_source(s) for s in sources]
        self._pipeline = pipeline or default_pipeline()
        self._fail_fast = fail_fast
        names_ = _names(self._sources, names)
        prio = dict(priorities or {})
        self._lanes = [_Lane(n, prio.get(n, 0), max_pending) for n in names_]
        self._ready = asyncio.Event()
        self._rr = 0
        self.messages: dict[str, Message] = {}
        self.errors: dict[str, BaseException] = {}
        self.streams: dict[str, Stream] = {}

    async def __aenter__(self) -> Merged:
        for lane, src in zip(self._lanes, self._sources, strict=True):
            stream = self._pipeline.open(src, metadata={"merge_source": lane.name, "priority": lane.priority})
            self.streams[lane.name] = stream
            lane.task = asyncio.create_task(self._produce(lane, stream), name=f"merge:{lane.name}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel every producer (closing its provider connection) and wait for them."""
        tasks = [lane.task for lane in self._lanes if lane.task is not None and not lane.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _produce(self, lane: _Lane, stream: Stream) -> None:
        try:
            async with stream as s:
                async for ev in s:
                    await lane.queue.put(ev)
                    self._ready.set()
            self.messages[lane.name] = s.message
        except StreamError as exc:
            self.errors[lane.name] = exc
            if exc.partial is not None:
                self.messages[lane.name] = exc.partial
        except Exception as exc:  # a plugin error under the strict policy, for example
            self.errors[lane.name] = exc
        finally:
            await lane.queue.put(_END)
            self._ready.set()

    def __aiter__(self) -> AsyncIterator[Tagged]:
        return self._events()

    def _pick(self) -> _Lane | None:
        """The lane to serve next: highest priority first, round robin among equals."""
        ready = [lane for lane in self._lanes if not lane.done and not lane.queue.empty()]
        if not ready:
            return None
        top = max(lane.priority for lane in ready)
        ready = [lane for lane in ready if lane.priority == top]
        self._rr += 1
        return ready[self._rr % len(ready)]

    async def _events(self) -> AsyncIterator[Tagged]:
        while not all(lane.done for lane in self._lanes):
            lane = self._pick()
            if lane is None:
                self._ready.clear()
                await self._ready.wait()
                continue
            item = lane.queue.get_nowait()
            if item is _END:
                lane.done = True
                err = self.errors.get(lane.name)
                if err is not None and self._fail_fast:
                    await self.aclose()
                    raise err
                continue
            yield Tagged(lane.name, item)


def merge(
    *sources: Any,
    names: Sequence[str] | None = None,
    priorities: Mapping[str, int] | None = None,
    pipeline: Pipeline | None = None,
    fail_fast: bool = False,
    max_pending: int = 64,
) -> Merged:
    """Merge several sources into one stream of :class:`Tagged` events.

    ``async with merge(a, b, names=["a", "b"]) as m: async for t in m: ...``; then
    ``m.messages["a"]``. ``max_pending`` bounds each source's queue: a source
    whose events are not consumed is paused (backpressure), it does not buffer
    without limit.
    """
    return Merged(
        sources,
        names=names,
        priorities=priorities,
        pipeline=pipeline,
        fail_fast=fail_fast,
        max_pending=max_pending,
    )


# -- race and hedge --------------------------------------------------------------


class LatencyTracker:
    """Recent times to first content, for percentile-based hedging delays."""

    def __init__(self, window: int = 500, initial: float = 1.0) -> None:
        self._values: deque[float] = deque(maxlen=window)
        self._sorted: list[float] = []
        self.initial = initial
        # Sync hedges (hedge_sync, one loop thread each) may share a tracker across threads.
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            if len(self._values) == self._values.maxlen:
                old = self._values[0]
                del self._sorted[bisect.bisect_left(self._sorted, old)]
            self._values.append(seconds)
            bisect.insort(self._sorted, seconds)

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile (0-100) of observed values; ``initial`` until there are any."""
        with self._lock:
            if not self._sorted:
                return self.initial
            k = min(len(self._sorted) - 1, max(0, round(p / 100 * (len(self._sorted) - 1))))
            return self._sorted[k]

    def __len__(self) -> int:
        return len(self._values)


@dataclass
class _Contender:
    name: str
    source: Source
    start_after: float
    stream: Stream | None = None
    task: asyncio.Task[None] | None = None
    events: list[Event] = field(default_factory=list)
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    started_at: float | None = None
    first_content_at: float | None = None
    completed: bool = False
    error: BaseException | None = None
    message: Message | None = None  # set when its stream ended without an error


class Raced:
    """The winning stream of a race: iterate its events; ``winner``, ``message``, ``started`` afterwards."""

    def __init__(
        self,
        contenders: list[_Contender],
        *,
        pipeline: Pipeline,
        win_on: Literal["content", "complete"],
        tracker: LatencyTracker | None,
        on_start: Callable[[str], None] | None = None,
        on_skip: Callable[[str], None] | None = None,
    ) -> None:
        self._contenders = contenders
        self._on_start = on_start
        self._on_skip = on_skip
        self._nudge = asyncio.Event()  # wakes delayed contenders early (a decision, or a failure)
        self._pipeline = pipeline
        self._win_on = win_on
        self._tracker = tracker
        self._decided = asyncio.Event()
        self.winner: str | None = None
        self.started: list[str] = []  # contenders actually started, in order
        self.message: Message | None = None
        self.time_to_first_content: float | None = None
        self._t0 = 0.0

    async def __aenter__(self) -> Raced:
        self._t0 = time.monotonic()
        for c in self._contenders:
            c.task = asyncio.create_task(self._run(c), name=f"race:{c.name}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._cancel(keep=None)

    async def _cancel(self, keep: _Contender | None) -> None:
        tasks = [
            c.task for c in self._contenders if c is not keep and c.task is not None and not c.task.done()
        ]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, c: _Contender) -> None:
        try:
            if c.start_after > 0:
                try:
                    await asyncio.wait_for(self._nudge.wait(), c.start_after)
                except asyncio.TimeoutError:
                    pass
                except asyncio.CancelledError:
                    if self._on_skip is not None:
                        self._on_skip(c.name)
                    raise
            if self._decided.is_set():
                if self._on_skip is not None:
                    self._on_skip(c.name)
                return  # decided before this contender was due: never started
            c.started_at = time.monotonic()
            self.started.append(c.name)
            if self._on_start is not None:
                self._on_start(c.name)
            c.stream = self._pipeline.open(c.source, metadata={"race_contender": c.name})
            async with c.stream as s:
                async for ev in s:
                    if c.first_content_at is None and ev.is_content:
                        c.first_content_at = time.monotonic()
                        if self._win_on == "content":
                            self._declare(c)
                    await c.queue.put(ev)
            c.message = s.message
            c.completed = True
            if self._win_on == "complete":
                self._declare(c)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # StreamError, or a plugin error under the strict policy
            c.error = exc
            if self.winner is None:
                self._nudge.set()  # a contender failed: start the delayed ones now
        finally:
            c.queue.put_nowait(_END)
            others_done = all(x is c or (x.task is not None and x.task.done()) for x in self._contenders)
            if others_done and not self._decided.is_set():
                self._decided.set()  # everyone finished without a winner
                self._nudge.set()

    def _declare(self, c: _Contender) -> None:
        if self.winner is None:
            self.winner = c.name
            if c.first_content_at is not None:
                self.time_to_first_content = c.first_content_at - self._t0
                if self._tracker is not None and c.started_at is not None:
                    self._tracker.observe(c.first_content_at - c.started_at)
            self._decided.set()
            self._nudge.set()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        await self._decided.wait()
        if self.winner is None:
            await self._cancel(keep=None)
            raise NoWinner({c.name: c.error or StreamError("did not complete") for c in self._contenders})
        win = next(c for c in self._contenders if c.name == self.winner)
        await self._cancel(keep=win)  # losers: cancelled now, connections closed
        while True:
            item = await win.queue.get()
            if item is _END:
                break
            yield item
        if win.error is not None:
            raise win.error
        self.message = win.message


def race(
    *sources: Any,
    names: Sequence[str] | None = None,
    win_on: Literal["content", "complete"] = "content",
    pipeline: Pipeline | None = None,
) -> Raced:
    """Start all sources at once; keep the first to deliver content (or to complete); cancel the rest."""
    srcs = [as_source(s) for s in sources]
    contenders = [_Contender(n, s, 0.0) for n, s in zip(_names(srcs, names), srcs, strict=True)]
    return Raced(contenders, pipeline=pipeline or default_pipeline(), win_on=win_on, tracker=None)


@dataclass
class HedgePolicy:
    """When to start a backup: after ``delay`` seconds, or the ``percentile`` of observed times to
    first content; never more than ``max_extra_share`` of requests get a backup."""

    delay: float | None = None
    percentile: float = 95.0
    max_extra_share: float = 0.1
    tracker: LatencyTracker = field(default_factory=LatencyTracker)
    requests: int = 0
    hedged: int = 0  # backups that started
    pending: int = 0  # backups scheduled, not yet started or skipped
    # Sync hedges in several threads (Flask request threads) may share one policy.
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def due_after(self) -> float | None:
        """Seconds after which the backup may start, or ``None`` when the extra-request budget is spent.

        A scheduled backup reserves budget until it starts or is skipped, so
        concurrent requests can never push the share of backups over the cap.
        """
        with self._lock:
            self.requests += 1
            if (self.hedged + self.pending + 1) / self.requests > self.max_extra_share:
                return None
            self.pending += 1
        return self.delay if self.delay is not None else self.tracker.percentile(self.percentile)

    def started(self) -> None:
        with self._lock:
            self.pending -= 1
            self.hedged += 1

    def skipped(self) -> None:
        with self._lock:
            self.pending -= 1


def hedge(
    primary: Any,
    backup: Any,
    *,
    policy: HedgePolicy | None = None,
    delay: float | None = None,
    names: Sequence[str] = ("primary", "backup"),
    pipeline: Pipeline | None = None,
) -> Raced:
    """Start ``backup`` only if ``primary`` has not delivered content within the policy's delay.

    The first to deliver content wins; the other is cancelled. Pass one
    :class:`HedgePolicy` to many calls so the percentile and the extra-request
    budget are shared. ``raced.started`` tells whether the backup ran.
    """
    # A one-off hedge has no budget to share; pass one HedgePolicy to many calls to cap the extra share.
    policy = policy or HedgePolicy(delay=delay, max_extra_share=1.0)
    due = policy.due_after()
    p, b = as_source(primary), as_source(backup)
    contenders = [_Contender(names[0], p, 0.0)]
    if due is not None:
        contenders.append(_Contender(names[1], b, due))

    def on_start(name: str) -> None:
        if name == names[1]:  # count a hedge when the backup really starts, not when scheduled
            policy.started()

    def on_skip(name: str) -> None:
        if name == names[1]:
            policy.skipped()

    return Raced(
        contenders,
        pipeline=pipeline or default_pipeline(),
        win_on="content",
        tracker=policy.tracker,
        on_start=on_start,
        on_skip=on_skip,
    )


# -- compare ------------------------------------------------------------------------


@dataclass
class SourceResult:
    """One source's numbers in a comparison."""

    name: str
    time_to_first_chunk: float | None
    duration: float
    chunks: int
    input_tokens: int | None
    output_tokens: int | None
    tool_calls: list[dict[str, Any]]
    text: str
    complete: bool
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ComparisonReport:
    """Side-by-side results and a unified text diff of each source against the first."""

    results: list[SourceResult]
    diffs: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"results": [r.to_dict() for r in self.results], "diffs": self.diffs}

    def render(self) -> str:
        """A plain-text table plus the diffs."""
        head = f"{'source':<20} {'ttfc ms':>8} {'dur ms':>8} {'chunks':>7} {'in tok':>7} {'out tok':>7} {'tools':>5}  complete"
        lines = [head, "-" * len(head)]
        for r in self.results:
            ttfc = "-" if r.time_to_first_chunk is None else f"{r.time_to_first_chunk * 1000:.1f}"
            lines.append(
                f"{r.name:<20} {ttfc:>8} {r.duration * 1000:>8.1f} {r.chunks:>7} {r.input_tokens or '-':>7} "
                f"{r.output_tokens or '-':>7} {len(r.tool_calls):>5}  {'yes' if r.complete else 'no: ' + str(r.error)}"
            )
        for name, diff in self.diffs.items():
            lines += ["", f"--- text diff: {self.results[0].name} vs {name}", diff or "(identical)"]
        return "\n".join(lines)


async def compare(
    *sources: Any, names: Sequence[str] | None = None, pipeline: Pipeline | None = None
) -> ComparisonReport:
    """Run ``sources`` concurrently to the end and compare them."""
    async with merge(*sources, names=names, pipeline=pipeline) as m:
        async for _ in m:
            pass
    results: list[SourceResult] = []
    for name, stream in m.streams.items():
        st = stream.stats()
        msg = m.messages.get(name) or stream.message
        err = m.errors.get(name)
        results.append(
            SourceResult(
                name=name,
                time_to_first_chunk=st.time_to_first_token,
                duration=st.elapsed,
                chunks=st.chunks,
                input_tokens=msg.usage.input_tokens if msg.usage else None,
                output_tokens=msg.usage.output_tokens if msg.usage else None,
                tool_calls=[{"name": t.name, "arguments": t.arguments} for t in msg.tool_calls],
                text=msg.text,
                complete=err is None and msg.complete,
                error=None if err is None else f"{type(err).__name__}: {err}",
            )
        )
    base = results[0]
    diffs = {
        r.name: "\n".join(
            difflib.unified_diff(
                base.text.splitlines(), r.text.splitlines(), base.name, r.name, lineterm="", n=1
            )
        )
        for r in results[1:]
    }
    return ComparisonReport(results, diffs)


# -- sync forms ---------------------------------------------------------------------


class SyncMerged(BridgedContext[Tagged]):
    """A :class:`Merged` for sync code: ``with merge_sync(a, b) as m: for t in m: ...``.

    The same :class:`Tagged` events, fairness, priorities and backpressure; the streams run on a
    private event loop in a background thread. Leaving ``with`` (or, without ``with``, the end of the
    iteration or a ``break``) cancels the sources still streaming, closes their connections and ends
    the thread. Made by :func:`merge_sync`.
    """

    def __init__(self, merged: Merged) -> None:
        super().__init__(merged, "schwarm-merge")
        #: The async merge this one drives.
        self.merged = merged

    @property
    def messages(self) -> dict[str, Message]:
        """Each source's final (or partial) message, by name."""
        return self.merged.messages

    @property
    def errors(self) -> dict[str, BaseException]:
        """Each failed source's error, by name."""
        return self.merged.errors

    @property
    def streams(self) -> dict[str, Stream]:
        """Each source's stream, by name."""
        return self.merged.streams


class SyncRaced(BridgedContext[Event]):
    """A :class:`Raced` for sync code: ``with race_sync(a, b) as r: for ev in r: ...``.

    The winner's events; the losers are cancelled as in the async race. Made by :func:`race_sync`
    and :func:`hedge_sync`.
    """

    def __init__(self, raced: Raced) -> None:
        super().__init__(raced, "schwarm-race")
        #: The async race this one drives.
        self.raced = raced

    @property
    def winner(self) -> str | None:
        """The winning source's name, once decided."""
        return self.raced.winner

    @property
    def started(self) -> list[str]:
        """The contenders that really started, in order (a hedge's backup may not have)."""
        return self.raced.started

    @property
    def message(self) -> Message | None:
        """The winner's final message, after its events."""
        return self.raced.message

    @property
    def time_to_first_content(self) -> float | None:
        """Seconds from the start of the race to the winner's first content."""
        return self.raced.time_to_first_content


def merge_sync(
    *sources: Any,
    names: Sequence[str] | None = None,
    priorities: Mapping[str, int] | None = None,
    pipeline: Pipeline | None = None,
    fail_fast: bool = False,
    max_pending: int = 64,
) -> SyncMerged:
    """Like :func:`merge`, for sync code: ``with merge_sync(a, b, names=["a", "b"]) as m: ...``."""
    return SyncMerged(
        merge(
            *sources,
            names=names,
            priorities=priorities,
            pipeline=pipeline,
            fail_fast=fail_fast,
            max_pending=max_pending,
        )
    )


def race_sync(
    *sources: Any,
    names: Sequence[str] | None = None,
    win_on: Literal["content", "complete"] = "content",
    pipeline: Pipeline | None = None,
) -> SyncRaced:
    """Like :func:`race`, for sync code: ``with race_sync(a, b) as r: for ev in r: ...``."""
    return SyncRaced(race(*sources, names=names, win_on=win_on, pipeline=pipeline))


def hedge_sync(
    primary: Any,
    backup: Any,
    *,
    policy: HedgePolicy | None = None,
    delay: float | None = None,
    names: Sequence[str] = ("primary", "backup"),
    pipeline: Pipeline | None = None,
) -> SyncRaced:
    """Like :func:`hedge`, for sync code; one :class:`HedgePolicy` may be shared with async hedges."""
    return SyncRaced(hedge(primary, backup, policy=policy, delay=delay, names=names, pipeline=pipeline))


def compare_sync(
    *sources: Any, names: Sequence[str] | None = None, pipeline: Pipeline | None = None
) -> ComparisonReport:
    """Like :func:`compare`, for sync code: runs the sources to the end and returns the report."""
    return run_once("compare", lambda: compare(*sources, names=names, pipeline=pipeline))
