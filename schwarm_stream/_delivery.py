"""Hook delivery for one stream: calling implementations, sync or async, failures isolated.

One idea, two speeds. Every implementation is called the same way: a sync one
directly, an ``async`` one awaited within ``timeouts.hook`` and interruptibly
(:meth:`HookDelivery._await_hook`, bounded by ``stream.hook_limit``); whatever it raises goes to one place,
:meth:`HookDelivery._plugin_failed` (a :class:`StreamError` fails the stream on
purpose; anything else is a :class:`PluginError` under the plugin policy).
Delivering an event to consumers stamps it once (:meth:`HookDelivery._stamp`:
``seq``, the commit point, counters), then calls the observers, and any
observer that assigned a field of the delivered event has it undone in one
place (:meth:`HookDelivery._mutated`). When every observer is sync (the common
case) :meth:`HookDelivery._deliver` does this without a coroutine or an
allocation per event; otherwise :meth:`HookDelivery._deliver_async`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._control import Control
from ._errors import PluginError, StreamError
from ._events import SNAPSHOT, Chunk, Event, Reset, ToolCallDelta
from ._message import Message

if TYPE_CHECKING:
    from ._dispatch import HookTable, Impl
    from .config import Config

__all__ = ["EventMutated", "HookDelivery", "HookTimeout"]

log = logging.getLogger("schwarm_stream")

_HOOK_TIMEOUT = "schwarm_stream.hook_timeout"

#: The typed observer hook of each event type (the others only get ``stream_event``).
HOOK_OF: dict[type, str] = {
    Chunk: "stream_chunk",
    ToolCallDelta: "stream_tool_call_delta",
    Reset: "stream_reset",
}


class EventMutated(Exception):
    """An observer hook assigned a field of a delivered event (reported as a :class:`PluginError`)."""


class HookTimeout(Exception):
    """An async hook call outlived ``timeouts.hook`` (reported as a :class:`PluginError`)."""


class HookDelivery(Control):
    """The hook-calling half of a stream (see the module docstring)."""

    id: str
    provider: str
    model: str | None
    dropped_events: int

    def __init__(self, table: HookTable, config: Config) -> None:
        super().__init__()
        self._table = table
        self._strict = config.plugins.policy == "strict"
        self.plugin_errors: list[PluginError] = []
        #: failures per (plugin, hook); each pair is logged and listed once per stream
        self.plugin_failures: dict[tuple[str, str], int] = {}
        self._plugin_names = {i.fn: i.plugin_name for impls in table.impls.values() for i in impls}
        # delivery counters (read by stats(), metrics and timeouts; cheap to bump)
        self.committed = False
        self.first_content_at: float | None = None
        self.chunks = 0
        self.tool_call_deltas = 0
        self.events_delivered = 0
        self._seq = 0
        # the observers as bare callables, for the all-sync path
        self._event_fns = table.fns("stream_event")
        self._chunk_fns = table.fns("stream_chunk")
        self._typed_fns: dict[str, list[Callable[..., Any]]] = {
            "": [],
            **{hook: table.fns(hook) for hook in HOOK_OF.values()},
        }
        self._deliver_sync_ok = all(table.all_sync(h) for h in ("stream_event", *HOOK_OF.values()))
        #: seconds one ``async`` hook call may run before it fails as a PluginError (``None``:
        #: unbounded); a plugin sets it, first thing in stream_start (the built-in ``timeouts``,
        #: from ``[timeouts] hook``); the core enforces it (see _await_hook)
        self.hook_limit: float | None = None
        self._hook_timer: asyncio.TimerHandle | None = None
        self._hook_since = 0.0
        self._building_complete = False

    # -- calling one implementation ---------------------------------------------------------------

    async def _call(self, impl: Impl, args: tuple[Any, ...]) -> Any:
        """Call ``impl`` (awaited when async); its result, or ``None`` when it failed (reported)."""
        try:
            r = impl.fn(*args)
            if impl.is_async:
                r = await self._await_hook(impl, r)
            return r
        except Exception as exc:
            self._plugin_failed(impl.fn, impl.hook_name, exc)
            return None

    async def _notify(self, impls: Sequence[Impl], *args: Any) -> None:
        """Call every implementation of a notification hook, in order."""
        for impl in impls:
            await self._call(impl, args)

    async def _notify_end(self) -> None:
        # stream_end must run even when the task is being cancelled; impls are
        # called one by one and a failing one does not stop the others.
        for impl in self._table.stream_end:
            try:
                await self._call(impl, (self,))
            except PluginError as perr:  # strict: report, the stream is over anyway
                log.error("%s", perr)

    def _plugin_failed(self, fn: Callable[..., Any], hook: str, exc: BaseException) -> None:
        """The one place a hook's exception is handled: re-raised, reported once, or strict."""
        if isinstance(exc, StreamError):
            raise exc  # a plugin deliberately failing the stream (limits, validators)
        name = self._plugin_names.get(fn, getattr(fn, "__module__", "?"))
        key = (name, hook)
        if key in self.plugin_failures and not self._strict:
            # A per-chunk hook that keeps failing is reported once, not once per chunk.
            self.plugin_failures[key] += 1
            return
        self.plugin_failures[key] = 1
        err = PluginError(
            f"plugin {name!r} failed in hook {hook!r}: {type(exc).__name__}: {exc}",
            plugin_name=name,
            hook_name=hook,
        )
        err.__cause__ = exc
        if self._strict:
            raise err
        self.plugin_errors.append(err)
        log.warning("stream %s: %s", self.id, err, exc_info=exc)

    # -- awaiting an async implementation -------------------------------------------------------

    async def _await_hook(self, impl: Impl, coro: Any) -> Any:
        """Await an async hook implementation, interruptibly and within ``timeouts.hook``.

        :meth:`abort` (``cancel()``, the total timeout) interrupts the await at
        once and raises its error; a call that outlives ``timeouts.hook``
        raises :class:`HookTimeout`, which the caller reports as a
        :class:`PluginError` under the plugin policy. No timer per call: one
        per-stream timer, armed by the first call that finds none, re-arms
        itself for the call running when it fires (a hook that returns at once
        costs a clock read).
        """
        self._task = asyncio.current_task()
        self.running_hook = impl  # the timeouts watchdog reports a slow one by name
        waiting, self.waiting = self.waiting, "hook"
        limit = self.hook_limit
        if limit is not None:
            loop = asyncio.get_running_loop()
            self._hook_since = now = loop.time()
            if self._hook_timer is None:
                # weakly: an abandoned stream must stay collectable (its finalizer ends it)
                self._hook_timer = loop.call_at(now + limit, _hook_due, weakref.ref(self))
        try:
            return await coro
        except asyncio.CancelledError:
            aborted = self._abort_pending and self.outcome is None
            if (aborted or self._hook_expired) and self._only_our_cancel():
                self._hook_expired = False
                self._uncancel()  # one cancel(): abort() does not add one to the hook timer's
                if aborted:
                    self._raise_abort()  # cancel() and the total timeout win over the hook limit
                raise HookTimeout(
                    f"hook {impl.hook_name!r} did not return within timeouts.hook={limit:g}s"
                ) from None
            raise
        finally:
            self.running_hook = None
            self.waiting = waiting
            if self._hook_expired:  # the hook swallowed the cancellation and returned
                self._hook_expired = False
                self._uncancel()

    def _hook_due(self) -> None:
        """The per-stream hook timer: cancel the running hook call if it is over ``timeouts.hook``."""
        self._hook_timer = None
        limit = self.hook_limit
        if self.running_hook is None or limit is None:
            return
        loop = asyncio.get_running_loop()
        due = self._hook_since + limit
        if loop.time() < due:
            self._hook_timer = loop.call_at(due, _hook_due, weakref.ref(self))
            return
        task = self._task
        if task is None or task.done() or self._abort_interrupting or self._hook_expired:
            return
        self._hook_expired = True
        task.cancel(msg=_HOOK_TIMEOUT)

    def _stop_hook_timer(self) -> None:
        if self._hook_timer is not None:
            self._hook_timer.cancel()
            self._hook_timer = None

    # -- delivering events to consumers -----------------------------------------------------------

    def _stamp(self, ev: Event) -> str:
        """Set ``seq``, handle the commit point and counters; return the typed observer hook's name (or "")."""
        self._seq += 1
        ev.seq = self._seq
        self.events_delivered += 1
        tp = type(ev)
        if ev.is_content:
            if not self.committed:
                self.committed = True
                self.first_content_at = time.monotonic()
            if tp is Chunk:
                self.chunks += 1
                return "stream_chunk"
            if tp is ToolCallDelta:
                self.tool_call_deltas += 1
                return "stream_tool_call_delta"
            return ""
        return "stream_reset" if tp is Reset else ""

    def _deliver(self, ev: Event) -> None:
        """Deliver one event when every observer is sync (the hot path)."""
        if type(ev) is Chunk and self.committed:
            # _stamp's common case inlined: one Python call less per event.
            self._seq = seq = self._seq + 1
            ev.seq = seq
            self.events_delivered += 1
            self.chunks += 1
            fns = self._chunk_fns
            hook = "stream_chunk"
        else:
            hook = self._stamp(ev)
            fns = self._typed_fns[hook]
        if self._event_fns:
            self._observe(self._event_fns, "stream_event", ev)
        if fns:
            self._observe(fns, hook, ev)

    def _observe(self, fns: list[Callable[..., Any]], hook: str, ev: Event) -> None:
        """Call sync observers of ``ev``; a failure or an assignment to ``ev`` is reported, not fatal."""
        names, snap = SNAPSHOT[type(ev)]
        before = snap(ev)
        for f in fns:
            try:
                f(self, ev)
            except Exception as exc:
                self._plugin_failed(f, hook, exc)
            if snap(ev) != before:
                self._mutated(f, hook, ev, names, before)

    async def _deliver_async(self, ev: Event) -> None:
        """Deliver one event when some observer is ``async def``: the same steps, awaited."""
        hook = self._stamp(ev)
        t = self._table
        names, snap = SNAPSHOT[type(ev)]
        before = snap(ev)
        for impl in [*t.stream_event, *(t[hook] if hook else ())]:
            await self._call(impl, (self, ev))
            if snap(ev) != before:
                self._mutated(impl.fn, impl.hook_name, ev, names, before)

    async def _deliver_any(self, ev: Event) -> None:
        """Deliver an event off the per-chunk path (a flushed event, a reset)."""
        if self._deliver_sync_ok:
            self._deliver(ev)
        else:
            await self._deliver_async(ev)

    def _mutated(
        self, f: Callable[..., Any], hook: str, ev: Event, names: tuple[str, ...], before: Any
    ) -> None:
        """Undo an observer's assignment to a delivered event and report it (the one place)."""
        values = before if len(names) > 1 else (before,)
        changed = [n for n, v in zip(names, values, strict=True) if getattr(ev, n) != v]
        for n, v in zip(names, values, strict=True):
            object.__setattr__(ev, n, v)
        self._plugin_failed(
            f,
            hook,
            EventMutated(
                f"assigned {', '.join(changed)} of a delivered {type(ev).__name__}; delivered events are "
                "immutable to observers (undone); a transformer (stream_transform) returns event.replace(...)"
            ),
        )

    # -- the transformer chain ----------------------------------------------------------------------

    async def _transform(self, ev: Event, start: int) -> list[Event]:
        """``ev`` through the transformers from position ``start`` on."""
        events: list[Event] = [ev]
        for impl in self._table.stream_transform[start:]:
            out: list[Event] = []
            for e in events:
                if impl.is_async:
                    r = await self._call(impl, (self, e))
                else:
                    try:
                        r = impl.fn(self, e)
                    except Exception as exc:
                        self._plugin_failed(impl.fn, "stream_transform", exc)
                        r = None
                if r is None:
                    out.append(e)
                elif isinstance(r, (list, tuple)):
                    out.extend(r)
                else:
                    out.append(r)
            events = out
            if not events:
                break
        return events

    async def _flush(self) -> list[Event]:
        """Collect held-back events from transformers (each passed through the later ones), delivered."""
        flushers = self._table.stream_flush
        if not flushers:
            return []
        transforms = self._table.stream_transform
        position = {i.plugin_name: n for n, i in enumerate(transforms)}
        delivered: list[Event] = []
        for impl in flushers:
            for e in await self._call(impl, (self,)) or ():
                start = position.get(impl.plugin_name, -1) + 1
                delivered.extend(await self._transform(e, start) if start < len(transforms) else [e])
        for e in delivered:
            await self._deliver_any(e)
        return delivered

    # -- the message ------------------------------------------------------------------------------

    def _build_message(self, *, complete: bool) -> Message:
        """Ask the ``stream_message`` implementations (first non-``None`` wins) for the message."""
        for impl in self._table.stream_message:
            try:
                self._building_complete = complete
                res = impl.fn(self)
            except Exception as exc:
                self._plugin_failed(impl.fn, "stream_message", exc)
                continue
            if res is not None:
                return self._flag_drops(res)
        return self._flag_drops(Message(complete=complete, provider=self.provider, model=self.model))

    @property
    def building_complete(self) -> bool:
        """While ``stream_message`` runs: whether the message being built is the final one.

        Part of the ``stream_message`` contract (docs/hooks.md): any plugin
        building messages reads it.
        """
        return self._building_complete

    def _flag_drops(self, message: Message) -> Message:
        """Mark a message whose events some consumer queue dropped (the content stays exact)."""
        if not self.dropped_events:
            return message
        flags = message.flags if "dropped_events" in message.flags else [*message.flags, "dropped_events"]
        return message.model_copy(update={"dropped_events": self.dropped_events, "flags": flags})


def _hook_due(ref: weakref.ref[HookDelivery]) -> None:
    """The hook timer's callback; holds the stream weakly (a garbage stream has no hook to bound)."""
    stream = ref()
    if stream is not None:
        stream._hook_due()
