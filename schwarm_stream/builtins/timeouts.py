"""Built-in plugin ``timeouts``: first-chunk, idle and total timeouts, enforced by us.

The SDKs' read timeout is 600 s per socket read, and Anthropic's pings reset
it: a stalled stream is noticed after ten minutes, or never. ``[timeouts]``:

``first_chunk``
    seconds from opening an attempt (after its backoff wait) to its first
    content event. Before the commit point the stream is then retried.
``idle``
    seconds allowed between two provider events once content flows (pings do
    not count: they are not events). A stall is a failure like a dropped
    connection: retry before the commit point, recovery after it.
``total``
    seconds for the whole logical stream, all attempts and waits included.
    Never retried; ``[recovery] on_error.timeout`` may turn it into ``partial``.
    It also interrupts an ``async`` hook call that keeps the stream waiting.
``slow_hook``
    not a timeout: a warning naming a plugin whose ``async`` hook call runs
    longer than this.
``hook``
    enforced by the core, not by this watchdog: this plugin sets
    ``stream.hook_limit`` first thing in ``stream_start``, and one ``async``
    hook call that has not returned after that many seconds is cancelled and
    fails as a ``PluginError`` under the plugin policy (``isolate``: warn and go
    on; ``strict``: fail the stream). Sync hooks cannot be interrupted. With this
    plugin disabled, hook calls are not bounded.

How, without a timer per chunk: one watchdog per stream, a ``loop.call_later``
callback that runs a few times per timeout period and compares the stream's
``events_received`` and content counters with what it saw last time. It only
fires while the core is waiting for the provider (``stream.waiting == "provider"``): a slow
consumer or a paused stream is not the provider's fault. When it fires it
calls ``stream.abort(StreamTimeout(...))``, which interrupts the pending read
at once and goes through ``stream_error`` like any failure. A timeout is
noticed between ``t`` and ``t * (1 + 1/TICKS)`` seconds after the last event.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from .._errors import StreamTimeout
from .._stash import StashKey
from ..config import ConfigSection
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from .._stream import Attempt, Stream

__all__ = ["TICKS", "TimeoutsConfig", "Watchdog"]

log = logging.getLogger("schwarm_stream")


class TimeoutsConfig(ConfigSection):
    """Timeouts we enforce ourselves (the SDKs' read timeout is 600 s and pings reset it)."""

    first_chunk: float | None = Field(
        30.0, gt=0, description="seconds from opening to the first content event"
    )
    idle: float | None = Field(15.0, gt=0, description="seconds allowed between provider events")
    total: float | None = Field(600.0, gt=0, description="seconds for the whole logical stream")
    slow_hook: float | None = Field(
        5.0, gt=0, description="warn (once per plugin and hook) when an async hook runs longer than this"
    )
    hook: float | None = Field(
        30.0,
        gt=0,
        description="an async hook call running longer than this fails as a PluginError (plugin policy)",
    )


#: Checks per timeout period: the precision of the idle and first-chunk timeouts.
TICKS = 4


class Watchdog:
    """The per-stream timer: one ``call_later`` handle for the attempt checks, one for the total."""

    __slots__ = (
        "_attempt_start",
        "_check",
        "_content0",
        "_events",
        "_flowing",
        "_hook",
        "_hook_since",
        "_last_change",
        "_loop",
        "_stream",
        "_total",
        "_warned",
        "cfg",
        "interval",
    )

    def __init__(self, stream: Stream, cfg: TimeoutsConfig, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: pending timer handles must not keep an abandoned stream alive (it
        # could then never be collected, and its stream_end would never run).
        self._stream = weakref.ref(stream)
        self._loop = loop
        self.cfg = cfg
        periods = [t for t in (cfg.first_chunk, cfg.idle, cfg.slow_hook) if t is not None]
        self.interval = min(periods) / TICKS if periods else None
        self._check: asyncio.TimerHandle | None = None
        self._total: asyncio.TimerHandle | None = None
        self._attempt_start = 0.0
        self._content0 = 0
        self._events = 0
        self._flowing = False
        self._last_change = 0.0
        self._hook: object | None = None
        self._hook_since = 0.0
        self._warned: set[tuple[str, str]] = set()

    def start(self) -> None:
        if self.cfg.total is not None:
            self._total = self._loop.call_later(self.cfg.total, self._on_total)

    def arm(self, delay: float) -> None:
        """A new attempt opens after ``delay`` seconds of backoff: restart the attempt clocks."""
        s = self._stream()
        if s is None:
            return
        now = self._loop.time()
        self._attempt_start = now + delay
        self._content0 = s.chunks + s.tool_call_deltas
        self._events = s.events_received
        self._flowing = False
        self._last_change = now + delay
        if self.interval is not None and self._check is None:
            self._check = self._loop.call_later(self.interval + delay, self._tick)

    def stop(self) -> None:
        for handle in (self._check, self._total):
            if handle is not None:
                handle.cancel()
        self._check = self._total = None

    def _on_total(self) -> None:
        self._total = None
        s = self._stream()
        if s is None:
            return
        err = StreamTimeout(
            f"{s.provider}: the stream took longer than timeouts.total={self.cfg.total:g}s",
            kind="total",
            provider=s.provider,
        )
        err.retryable = False  # the time for the whole stream is over: no retry can help
        s.abort(err)

    def _tick(self) -> None:
        self._check = None
        s = self._stream()
        if s is None or s.outcome is not None:
            return
        now = self._loop.time()
        self._watch_hook(s, now)
        events = s.events_received
        if not self._flowing and s.chunks + s.tool_call_deltas > self._content0:
            # Content was delivered (possibly later than received, by a buffering transformer).
            self._flowing = True
        if events != self._events or s.waiting != "provider":
            # Progress, or we are not waiting for the provider (consumer busy, paused, backoff).
            self._events = events
            self._last_change = max(now, self._last_change)
        elif not self._flowing:
            limit = self.cfg.first_chunk
            if limit is not None and now - self._attempt_start >= limit:
                s.abort(
                    StreamTimeout(
                        f"{s.provider}: no content within timeouts.first_chunk={limit:g}s "
                        f"(attempt {s.attempt})",
                        kind="first_chunk",
                        provider=s.provider,
                    )
                )
        else:
            limit = self.cfg.idle
            if limit is not None and now - self._last_change >= limit:
                s.abort(
                    StreamTimeout(
                        f"{s.provider}: no event from the provider for timeouts.idle={limit:g}s "
                        f"after {s.chunks} chunks",
                        kind="idle",
                        provider=s.provider,
                    )
                )
        if self.interval is not None:
            self._check = self._loop.call_later(self.interval, self._tick)

    def _watch_hook(self, s: Stream, now: float) -> None:
        """Warn once per (plugin, hook) when an async hook keeps the stream waiting (row 25)."""
        hook = s.running_hook
        if hook is not self._hook:
            self._hook, self._hook_since = hook, now
            return
        limit = self.cfg.slow_hook
        if hook is None or limit is None or now - self._hook_since < limit:
            return
        key = (hook.plugin_name, hook.hook_name)
        if key not in self._warned:
            self._warned.add(key)
            log.warning(
                "stream %s: plugin %r has been running hook %r for %.1fs (timeouts.slow_hook=%gs); "
                "the stream waits for it",
                s.id,
                hook.plugin_name,
                hook.hook_name,
                now - self._hook_since,
                limit,
            )


WATCHDOG: StashKey[Watchdog] = StashKey()


@hookimpl
def stream_config_schema() -> dict[str, type[BaseModel]]:
    return {"timeouts": TimeoutsConfig}


@hookimpl(tryfirst=True)  # first: the hook limit applies to the other plugins' stream_start
def stream_start(stream: Stream) -> None:
    cfg: TimeoutsConfig = stream.config.section("timeouts")
    stream.hook_limit = cfg.hook  # enforced by the core (stream.hook_limit)
    if cfg.first_chunk is None and cfg.idle is None and cfg.total is None:
        return
    dog = Watchdog(stream, cfg, asyncio.get_running_loop())
    stream.stash[WATCHDOG] = dog
    dog.start()


@hookimpl
def stream_attempt(stream: Stream, attempt: Attempt) -> None:
    dog = stream.stash.get(WATCHDOG)
    if dog is not None:
        dog.arm(getattr(attempt, "delay", 0.0))


@hookimpl
def stream_end(stream: Stream) -> None:
    dog = stream.stash.get(WATCHDOG)
    if dog is not None:
        dog.stop()
        del stream.stash[WATCHDOG]
