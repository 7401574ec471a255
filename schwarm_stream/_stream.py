"""The core event loop and the stream handle.

One :class:`Stream` is one logical stream: it may open several provider
streams (attempts) when plugins decide to retry or recover, but its consumers
see one sequence of events and it ends exactly once: ``stream_complete`` with
the exact message, or a typed error carrying the partial message (or, when a
plugin chose ``partial``, a message with ``complete=False``).

Per provider event the loop does, in order: ``stream_receive`` (accumulate,
metrics), the transformer chain, then delivery: ``seq``, the commit point,
``stream_event`` and the typed notification, and the ``yield`` to the consumer.
All of it walks precomputed lists; nothing per event touches pluggy, pydantic,
logging or a clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._classify import classify
from ._dispatch import HookTable, Impl
from ._errors import (
    InvalidToolArguments,
    PluginError,
    SchwarmStreamError,
    StreamCancelled,
    StreamError,
)
from ._events import SNAPSHOT, Chunk, Event, Reset, ToolCallDelta
from ._message import Message
from ._stash import Stash, StashKey
from .decisions import Recovery

if TYPE_CHECKING:
    from .config import Config
    from .sources import Source

__all__ = ["TOOL_CALLS", "Attempt", "Stream", "StreamStats"]

log = logging.getLogger("schwarm_stream")

#: Finish reasons that mean "cut off by a limit": a tool call with broken JSON
#: is then reported on the tool call, not as a protocol error.
TRUNCATION_REASONS = frozenset(
    {"length", "max_tokens", "max_output_tokens", "incomplete", "model_context_window_exceeded"}
)

#: Where the message-building plugin keeps the tool calls (choice 0) accumulated so far,
#: by index: what :meth:`Stream.tool_call` returns. Any plugin replacing ``accumulate``
#: may fill it with its own per-call objects.
TOOL_CALLS: StashKey[Mapping[int, Any]] = StashKey()

_RECOVERY_FLAG = {
    "restart": "restarted",
    "continue": "continued",
    "fallback": "fallback",
    "resume": "resumed",
}


@dataclass(frozen=True, slots=True)
class Attempt:
    """One provider stream opened inside a logical stream."""

    number: int
    strategy: str | None
    source: Source
    previous_error: StreamError | None = None
    #: seconds the core waits (backoff) before opening this attempt
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class StreamStats:
    """A snapshot of a stream's progress (``stream.stats()``)."""

    state: str
    attempts: int
    chunks: int
    tool_call_deltas: int
    events: int
    output_tokens: int | None
    tokens_per_second: float | None
    elapsed: float
    time_to_first_token: float | None
    committed: bool
    resets: int
    #: input tokens the provider reported (``None`` until usage arrived)
    input_tokens: int | None = None
    #: mean gap between output chunks (text chunks and tool-call deltas), seconds:
    #: ``(now or end - first chunk) / (chunks - 1)``; ``None`` below two chunks
    time_per_output_chunk: float | None = None
    #: events dropped by overflowing consumer queues (``schwarm_stream.fanout``); never accumulated
    dropped_events: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


class Stream:
    """A logical stream: the handle you iterate and the context plugins receive.

    Use it as an async context manager (it owns and always closes the provider
    stream) and iterate it for normalized events::

        async with schwarm_stream.open(source) as stream:
            async for event in stream:
                ...
        message = stream.message

    Attributes plugins read: ``id``, ``agent_id``, ``provider``, ``model``,
    ``operation``, ``metadata``, ``stash`` (per-plugin state), ``attempt`` (the
    current attempt number), ``committed`` (content reached a consumer),
    ``config``, ``outcome`` (after the end), ``error``.
    """

    def __init__(
        self,
        source: Source,
        *,
        table: HookTable,
        config: Config,
        metadata: Mapping[str, Any] | None = None,
        agent_id: str | None = None,
        stream_id: str | None = None,
    ) -> None:
        self.id: str = stream_id or uuid.uuid4().hex
        self.agent_id = agent_id
        self.source = source
        self.provider: str = source.provider
        self.model: str | None = source.model
        self.operation: str = getattr(source, "operation", "chat")
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.config = config
        self.stash = Stash()
        self.attempt = 0
        self.committed = False
        self.recovery: str | None = None
        self.outcome: str | None = None
        self.error: BaseException | None = None
        self.plugin_errors: list[PluginError] = []
        #: failures per (plugin, hook); each pair is logged and listed once per stream
        self.plugin_failures: dict[tuple[str, str], int] = {}
        self.current_source: Source = source

        # live counters (read by stats(), metrics and timeouts; cheap to bump)
        self.started_at: float | None = None
        self.first_content_at: float | None = None
        self.ended_at: float | None = None
        self.chunks = 0
        self.tool_call_deltas = 0
        self.events_received = 0
        self.events_delivered = 0
        self.resets = 0
        self.dropped_events = 0  # bumped by fanout queues that drop events; flagged on the message
        self.reading = False  # awaiting the provider right now (timeouts look at this)
        self.running_hook: Impl | None = None  # an async hook implementation being awaited right now
        self._in_backoff = False  # sleeping before the next attempt (abort interrupts it)
        self._abort_interrupting = False  # abort() has cancelled the task; not yet delivered

        self._table = table
        self._strict = config.plugins.policy == "strict"
        self._hook_limit: float | None = getattr(config.timeouts, "hook", None)
        self._hook_timer: asyncio.TimerHandle | None = None  # see _await_hook
        self._hook_since = 0.0
        self._hook_expired = False  # the hook timer has cancelled the task; not yet delivered
        self._message: Message | None = None
        self._seq = 0
        self._abort_error: StreamError | None = None
        self._abort_pending = False
        self._task: asyncio.Task[Any] | None = None
        self._paused: asyncio.Event | None = None
        # Timed flushes (flush_after): once asked for, reads go through a task so a
        # due flush can be delivered while the provider is silent.
        self._timed = False
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flush_at = 0.0
        self._wake: asyncio.Event | None = None
        self._read_fut: asyncio.Future[Any] | None = None
        self._gen: AsyncGenerator[Event, None] | None = None
        self._started = False
        self._plugin_names = {i.fn: i.plugin_name for impls in table.impls.values() for i in impls}
        self._event_fns = table.fns("stream_event")
        self._chunk_fns = table.fns("stream_chunk")
        self._tool_fns = table.fns("stream_tool_call_delta")
        self._reset_fns = table.fns("stream_reset")
        self._deliver_sync_ok = all(
            table.all_sync(h)
            for h in ("stream_event", "stream_chunk", "stream_tool_call_delta", "stream_reset")
        )

    # -- the consumer's side ------------------------------------------------

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[Event]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    async def aclose(self) -> None:
        """Close the provider stream (if open) and end the stream; idempotent."""
        if self._gen is not None:
            await self._gen.aclose()

    async def collect(self) -> Message:
        """Consume every event and return the final message (raises the stream's error)."""
        async for _ in self:
            pass
        return self.message

    @property
    def message(self) -> Message:
        """The final message after completion; mid-stream or after a failure, the partial message."""
        if self._message is not None:
            return self._message
        return self._build_message(complete=False)

    def tool_call(self, index: int) -> Any:
        """The state of tool call ``index`` (choice 0) accumulated so far, or ``None``.

        Read from ``stash[TOOL_CALLS]``, which the message-building plugin (the
        built-in ``accumulate``) keeps up to date.
        """
        calls = self.stash.get(TOOL_CALLS)
        return None if calls is None else calls.get(index)

    def stats(self) -> StreamStats:
        """State, attempts, chunks, tokens, tokens/s, elapsed and time to first token."""
        now = self.ended_at or time.monotonic()
        start = self.started_at or now
        ttft = None if self.first_content_at is None else self.first_content_at - start
        usage = self._message.usage if self._message is not None else None
        out = usage.output_tokens if usage is not None else None
        gen_time = now - self.first_content_at if self.first_content_at is not None else None
        rate_base = out if out is not None else self.chunks
        tps = rate_base / gen_time if gen_time and rate_base else None
        state = self.outcome or (
            "paused" if self._paused is not None else ("running" if self._started else "new")
        )
        n_out = self.chunks + self.tool_call_deltas
        tpoc = gen_time / (n_out - 1) if gen_time is not None and n_out > 1 else None
        return StreamStats(
            state=state,
            attempts=self.attempt,
            chunks=self.chunks,
            tool_call_deltas=self.tool_call_deltas,
            events=self.events_delivered,
            output_tokens=out,
            tokens_per_second=tps,
            elapsed=now - start,
            time_to_first_token=ttft,
            committed=self.committed,
            resets=self.resets,
            input_tokens=usage.input_tokens if usage is not None else None,
            time_per_output_chunk=tpoc,
            dropped_events=self.dropped_events,
        )

    # -- control -------------------------------------------------------------

    def flush_after(self, delay: float) -> None:
        """Run ``stream_flush`` within ``delay`` seconds, even if the provider sends nothing meanwhile.

        For transformers that hold events for at most some time (buffering,
        smoothing): they call this when they start holding. The earliest
        request wins. From the first call on, the stream reads the provider
        through a task (a few µs per event) so that a due flush is delivered
        while the provider is silent.
        """
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, delay)
        if self._flush_handle is not None and self._flush_at <= when:
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._timed = True
        if self._wake is None:
            self._wake = asyncio.Event()
        self._flush_at = when
        self._flush_handle = loop.call_at(when, self._flush_due)

    def _flush_due(self) -> None:
        self._flush_handle = None
        if self._wake is not None:
            self._wake.set()

    def pause(self) -> None:
        """Stop pulling from the provider after the current event (backpressure)."""
        if self._paused is None:
            self._paused = asyncio.Event()

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        if self._paused is not None:
            ev, self._paused = self._paused, None
            ev.set()

    @property
    def paused(self) -> bool:
        return self._paused is not None

    def cancel(self, reason: str = "cancelled by caller") -> None:
        """Close the provider connection now and end the stream with :class:`StreamCancelled`.

        Never retried. Safe to call from another task or from a hook.
        """
        self.abort(StreamCancelled(reason, provider=self.provider))

    def abort(self, error: StreamError) -> None:
        """Fail the current attempt with ``error`` (timeouts and control plugins use this).

        If the loop is waiting for the provider, that wait is interrupted at
        once; otherwise the error is raised before the next read. ``error`` then
        goes through ``stream_error`` like any failure.
        """
        if self.outcome is not None:
            return
        if self._abort_pending and isinstance(self._abort_error, StreamCancelled):
            return  # the caller's cancel wins over a later timeout
        self._abort_error = error
        self._abort_pending = True
        if self._paused is not None:
            self.resume()
        if self._abort_interrupting or self._hook_expired:
            return  # the task is already being interrupted: a second cancel() would look like the caller's
        waiting = self.reading or self._in_backoff or self.running_hook is not None
        if waiting and self._task is not None and not self._task.done():
            self._abort_interrupting = True
            self._task.cancel(msg=_ABORT)

    # -- the loop ---------------------------------------------------------------

    async def _run(self) -> AsyncGenerator[Event, None]:
        self._started = True
        self.started_at = time.monotonic()
        outcome = "cancelled"
        try:
            await self._notify("stream_start", self)
            source: Source = self.source
            strategy: str | None = None
            previous: StreamError | None = None
            delay = 0.0
            while True:
                self.attempt += 1
                self.current_source = source
                attempt = Attempt(self.attempt, strategy, source, previous, delay)
                await self._notify("stream_attempt", self, attempt)
                try:
                    if delay > 0:
                        await self._backoff(delay)
                    # aclosing: a consumer's break/cancel closes the provider stream now, not at GC
                    async with aclosing(self._attempt(attempt)) as attempt_events:
                        async for ev in attempt_events:
                            yield ev
                    for ev in await self._flush():
                        yield ev
                    message = self._build_message(complete=True)
                    self._check_tool_arguments(message)
                except StreamError as err:
                    err = self._annotate(err)
                    for ev in await self._flush():
                        yield ev
                    decision = await self._decide(err)
                    action = decision.action
                    if action == "raise":
                        self.error = err
                        self._message = err.partial
                        outcome = "cancelled" if isinstance(err, StreamCancelled) else "error"
                        raise err
                    if action == "partial":
                        self.error = err
                        self._message = err.partial
                        outcome = "partial"
                        return
                    # another attempt
                    if action == "retry" and self.committed:
                        action = "restart"  # content was delivered: a plain retry would duplicate it
                    next_source = self._next_source(decision, err)
                    if next_source is None:
                        self.error = err
                        self._message = err.partial
                        outcome = "error"
                        raise err
                    reset_sent = False
                    if self.committed and action in ("restart", "fallback"):
                        reset = Reset(attempt=self.attempt + 1, strategy=action, reason=str(err))
                        self.resets += 1
                        if self._deliver_sync_ok:
                            self._deliver(reset)
                        else:
                            await self._deliver_async(reset)
                        yield reset
                        reset_sent = True
                    if action in _RECOVERY_FLAG and (self.committed or action == "fallback"):
                        self.recovery = _RECOVERY_FLAG[action]
                    if reset_sent:
                        # Consumers discarded everything: the stream is back before the commit point.
                        self.committed = False
                    delay = decision.delay  # slept at the next attempt, interruptibly
                    strategy = action
                    source = next_source
                    previous = err
                    continue
                else:
                    self._message = message
                    outcome = "complete"
                    await self._notify("stream_complete", self, message)
                    return
        except (PluginError, SchwarmStreamError) as exc:
            if self.error is None:  # not decided above: a strict plugin failure or a raising hook
                outcome = "cancelled" if isinstance(exc, StreamCancelled) else "error"
                self.error = exc
                if getattr(exc, "partial", None) is None and isinstance(exc, (PluginError, StreamError)):
                    # strict plugin failures carry the message delivered so far, like stream errors
                    exc.partial = self._build_message(complete=False)
                    exc.committed = self.committed
                    exc.attempts = self.attempt
                    exc.stream_id = self.id
                if self._message is None:
                    self._message = exc.partial if isinstance(exc, (PluginError, StreamError)) else None
            raise
        finally:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
            if self._hook_timer is not None:
                self._hook_timer.cancel()
                self._hook_timer = None
            self.outcome = outcome
            self.ended_at = time.monotonic()
            if outcome == "cancelled" and self._message is None:
                self._message = self._build_message(complete=False)
            await self._notify_end()

    async def _attempt(self, attempt: Attempt) -> AsyncGenerator[Event, None]:
        """Open one provider stream and deliver its events. Raises StreamError on failure."""
        t = self._table
        receive = t["stream_receive"]
        receive_fns = [i.fn for i in receive]
        receive_sync = t.all_sync("stream_receive")
        transforms = t["stream_transform"]
        deliver_sync = self._deliver_sync_ok
        self._task = asyncio.current_task()
        events = attempt.source.open(self, attempt)
        anext_ = events.__anext__
        try:
            while True:
                if self._paused is not None:
                    await self._paused.wait()
                if self._abort_pending:
                    self._raise_abort()
                # A read through a task only while a timed flush is pending (or a read
                # outlived one); otherwise the plain, cheaper read.
                timed = self._timed and (
                    self._flush_handle is not None or self._read_fut is not None or self._wake.is_set()  # type: ignore[union-attr]
                )
                if timed:
                    ev = await self._timed_read(anext_)
                    if ev is _FLUSH_DUE:
                        for out in await self._flush():
                            yield out
                        continue
                    if ev is _EXHAUSTED:
                        break
                self.reading = True
                try:
                    if not timed:
                        ev = await anext_()
                except StopAsyncIteration:
                    break
                except asyncio.CancelledError:
                    if self._abort_pending and self._only_our_cancel():
                        self._uncancel()
                        self._raise_abort()
                    raise  # the caller cancelled: never retried
                except StreamError:
                    raise
                except Exception as exc:  # an unclassified source failure: still typed, with the partial
                    raise classify(exc, provider=self.provider) from exc
                finally:
                    self.reading = False
                self.events_received += 1
                if receive_sync:
                    for f in receive_fns:
                        try:
                            f(self, ev)
                        except Exception as exc:
                            self._plugin_failed(f, "stream_receive", exc)
                else:
                    await self._call_each(receive, (self, ev))
                if not transforms:  # the common case: no chain, no list per event
                    if deliver_sync:
                        self._deliver(ev)
                    else:
                        await self._deliver_async(ev)
                    yield ev
                    continue
                for out in await self._transform(ev, 0):
                    if deliver_sync:
                        self._deliver(out)
                    else:
                        await self._deliver_async(out)
                    yield out
        finally:
            self.reading = False
            await self._cancel_read()
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _timed_read(self, anext_: Callable[[], Any]) -> Any:
        """The next provider event, or ``_FLUSH_DUE`` when a timed flush is due first.

        The read runs as a task that outlives a flush: the provider stream is
        never interrupted, its next event is picked up by the next call.
        Errors (and the end of the stream) surface exactly as from a plain read.
        """
        wake_ev = self._wake
        if wake_ev is None:  # flush_after() creates it before any timed read
            raise RuntimeError("timed read without a flush_after() request")
        if wake_ev.is_set():
            wake_ev.clear()
            return _FLUSH_DUE
        if self._read_fut is None:
            self._read_fut = asyncio.ensure_future(_next_or_end(anext_))
        wake = asyncio.ensure_future(wake_ev.wait())
        self.reading = True
        try:
            await asyncio.wait({self._read_fut, wake}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if self._abort_pending and self._only_our_cancel():
                self._uncancel()
                await self._cancel_read()
                self._raise_abort()
            raise
        finally:
            self.reading = False
            wake.cancel()
        if not self._read_fut.done():
            wake_ev.clear()
            return _FLUSH_DUE
        fut, self._read_fut = self._read_fut, None
        try:
            return fut.result()
        except StreamError:
            raise
        except Exception as exc:
            raise classify(exc, provider=self.provider) from exc

    async def _cancel_read(self) -> None:
        """Abandon a pending timed read (the attempt is over): cancel it and let it finish unwinding."""
        fut, self._read_fut = self._read_fut, None
        if fut is not None and not fut.done():
            fut.cancel()
            await asyncio.wait({fut})  # returns when it is done; its CancelledError stays inside
        if fut is not None and fut.done() and not fut.cancelled():
            fut.exception()  # retrieved: an error of an abandoned read is not "never retrieved"

    def _classify(self, ev: Event) -> list[Callable[..., Any]]:
        """Set ``seq``, handle the commit point and counters; return the typed hook's callables."""
        self._seq += 1
        ev.seq = self._seq
        self.events_delivered += 1
        if ev.is_content:
            if not self.committed:
                self.committed = True
                self.first_content_at = time.monotonic()
            tp = type(ev)
            if tp is Chunk:
                self.chunks += 1
                return self._chunk_fns
            if tp is ToolCallDelta:
                self.tool_call_deltas += 1
                return self._tool_fns
            return _NO_FNS
        if type(ev) is Reset:
            return self._reset_fns
        return _NO_FNS

    def _deliver(self, ev: Event) -> None:
        """Deliver one event when every delivery hook is sync (the hot path)."""
        # _classify's common case inlined: one Python call less per event.
        tp = type(ev)
        if tp is Chunk and self.committed:
            self._seq = seq = self._seq + 1
            ev.seq = seq
            self.events_delivered += 1
            self.chunks += 1
            fns = self._chunk_fns
        else:
            fns = self._classify(ev)
        if self._event_fns:
            self._observe(self._event_fns, "stream_event", ev)
        if fns:
            self._observe(fns, _HOOK_OF[type(ev)], ev)

    def _observe(self, fns: list[Callable[..., Any]], hook: str, ev: Event) -> None:
        """Call sync observers; one that assigned a field of ``ev`` has it undone and fails (item 9)."""
        names, snap = SNAPSHOT[type(ev)]
        before = snap(ev)
        for f in fns:
            try:
                f(self, ev)
            except Exception as exc:
                self._plugin_failed(f, hook, exc)
            if snap(ev) != before:
                self._mutated(f, hook, ev, names, before)

    def _mutated(
        self, f: Callable[..., Any], hook: str, ev: Event, names: tuple[str, ...], before: Any
    ) -> None:
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

    async def _deliver_async(self, ev: Event) -> None:
        self._classify(ev)
        t = self._table
        names, snap = SNAPSHOT[type(ev)]
        before = snap(ev)
        hook = _HOOK_OF.get(type(ev))
        impls = [*t["stream_event"], *(t[hook] if hook is not None else ())]
        for impl in impls:
            await self._call_each((impl,), (self, ev))
            if snap(ev) != before:
                self._mutated(impl.fn, impl.hook_name, ev, names, before)

    # -- helpers -----------------------------------------------------------------

    async def _backoff(self, seconds: float) -> None:
        """Wait before the next attempt; :meth:`abort` (cancel, total timeout) ends the wait at once."""
        if self._abort_pending:
            self._raise_abort()
        self._task = asyncio.current_task()
        self._in_backoff = True
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            if self._abort_pending and self._only_our_cancel():
                self._uncancel()
                self._raise_abort()
            raise
        finally:
            self._in_backoff = False

    def _only_our_cancel(self) -> bool:
        # An abort cancels the task once; more requests mean the caller cancelled it too.
        cancelling = getattr(self._task, "cancelling", None)
        return cancelling is None or cancelling() <= 1

    def _raise_abort(self) -> None:
        err = self._abort_error or StreamCancelled("aborted", provider=self.provider)
        self._abort_pending = False
        self._abort_interrupting = False
        raise err

    def _uncancel(self) -> None:
        task = self._task
        uncancel = getattr(task, "uncancel", None)
        if uncancel is not None:
            uncancel()

    def _annotate(self, err: StreamError) -> StreamError:
        err.partial = self._build_message(complete=False)
        err.committed = self.committed
        err.attempts = self.attempt
        err.stream_id = self.id
        if err.provider is None:
            err.provider = self.provider
        return err

    def _check_tool_arguments(self, message: Message) -> None:
        if message.finish_reason in TRUNCATION_REASONS:
            return
        for tc in message.tool_calls:
            if not tc.valid:
                raise InvalidToolArguments(
                    f"tool call {tc.id!r} ({tc.name}) finished with arguments that are not JSON: {tc.error}",
                    provider=self.provider,
                )

    def _next_source(self, decision: Recovery, err: StreamError) -> Source | None:
        action = decision.action
        src = self.current_source
        if isinstance(err, StreamCancelled):
            return None
        if action in ("retry", "restart"):
            return src
        if action == "fallback":
            return decision.source
        if action == "continue":
            cont = getattr(src, "continuation", None)
            nxt = cont(self.message) if cont is not None else None
            if nxt is None:
                log.warning("stream %s: source %s cannot continue; raising", self.id, type(src).__name__)
            return nxt
        if action == "resume":
            res = getattr(src, "resumption", None)
            nxt = res(self) if res is not None else None
            if nxt is None:
                log.warning("stream %s: source %s cannot resume; raising", self.id, type(src).__name__)
            return nxt
        return None

    async def _decide(self, err: StreamError) -> Recovery:
        if isinstance(err, StreamCancelled):
            return Recovery("raise")
        for impl in self._table["stream_error"]:
            try:
                res = impl.fn(self, err)
                if impl.is_async:
                    res = await self._await_hook(impl, res)
            except StreamError:
                raise
            except Exception as exc:
                self._plugin_failed(impl.fn, "stream_error", exc)
                continue
            if res is None:
                continue
            try:
                return res if isinstance(res, Recovery) else Recovery(res)
            except (ValueError, TypeError) as exc:
                self._plugin_failed(impl.fn, "stream_error", exc)
        return Recovery("raise")

    async def _transform(self, ev: Event, start: int) -> list[Event]:
        events: list[Event] = [ev]
        for impl in self._table["stream_transform"][start:]:
            out: list[Event] = []
            for e in events:
                try:
                    r = impl.fn(self, e)
                    if impl.is_async:
                        r = await self._await_hook(impl, r)
                except Exception as exc:
                    if isinstance(exc, StreamError):
                        raise
                    self._plugin_failed(impl.fn, "stream_transform", exc)
                    r = None
                if r is None:
                    out.append(e)
                elif isinstance(r, (list, tuple)):
                    out.extend(r)
                else:
                    out.append(r)  # type: ignore[arg-type]
            events = out
            if not events:
                break
        return events

    async def _flush(self) -> list[Event]:
        """Collect held-back events from transformers (each passed through the later ones)."""
        flushers = self._table["stream_flush"]
        if not flushers:
            return []
        transforms = self._table["stream_transform"]
        position = {i.plugin_name: n for n, i in enumerate(transforms)}
        delivered: list[Event] = []
        for impl in flushers:
            try:
                r = impl.fn(self)
                if impl.is_async:
                    r = await self._await_hook(impl, r)
            except Exception as exc:
                if isinstance(exc, StreamError):
                    raise
                self._plugin_failed(impl.fn, "stream_flush", exc)
                continue
            for e in r or ():
                start = position.get(impl.plugin_name, -1) + 1
                delivered.extend(await self._transform(e, start) if start < len(transforms) else [e])
        for e in delivered:
            if self._deliver_sync_ok:
                self._deliver(e)
            else:
                await self._deliver_async(e)
        return delivered

    def _build_message(self, *, complete: bool) -> Message:
        for impl in self._table["stream_message"]:
            try:
                self._complete_flag = complete
                res = impl.fn(self)
            except Exception as exc:
                self._plugin_failed(impl.fn, "stream_message", exc)
                continue
            if res is not None:
                return self._flag_drops(res)  # type: ignore[arg-type]
        return self._flag_drops(Message(complete=complete, provider=self.provider, model=self.model))

    def _flag_drops(self, message: Message) -> Message:
        """Mark a message whose events some consumer queue dropped (the content stays exact)."""
        if not self.dropped_events:
            return message
        flags = message.flags if "dropped_events" in message.flags else [*message.flags, "dropped_events"]
        return message.model_copy(update={"dropped_events": self.dropped_events, "flags": flags})

    @property
    def building_complete(self) -> bool:
        """While ``stream_message`` runs: whether the message being built is the final one."""
        return getattr(self, "_complete_flag", False)

    async def _notify(self, name: str, *args: Any) -> None:
        impls = self._table[name]
        if impls:
            await self._call_each(impls, args)

    async def _notify_end(self) -> None:
        # stream_end must run even when the task is being cancelled; impls are
        # called one by one and a failing one does not stop the others.
        for impl in self._table["stream_end"]:
            try:
                r = impl.fn(self)
                if impl.is_async:
                    await self._await_hook(impl, r)
            except Exception as exc:
                try:
                    self._plugin_failed(impl.fn, "stream_end", exc)
                except PluginError as perr:  # strict: report, the stream is over anyway
                    log.error("%s", perr)

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
        limit = self._hook_limit
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
            if self._hook_expired:  # the hook swallowed the cancellation and returned
                self._hook_expired = False
                self._uncancel()

    def _hook_due(self) -> None:
        """The per-stream hook timer: cancel the running hook call if it is over ``timeouts.hook``."""
        self._hook_timer = None
        limit = self._hook_limit
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

    async def _call_each(self, impls: Sequence[Impl], args: tuple[Any, ...]) -> None:
        for impl in impls:
            try:
                r = impl.fn(*args)
                if impl.is_async:
                    await self._await_hook(impl, r)
            except Exception as exc:
                if isinstance(exc, StreamError):
                    raise
                self._plugin_failed(impl.fn, impl.hook_name, exc)

    def _plugin_failed(self, fn: Callable[..., Any], hook: str, exc: BaseException) -> None:
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


class EventMutated(Exception):
    """An observer hook assigned a field of a delivered event (reported as a :class:`PluginError`)."""


class HookTimeout(Exception):
    """An async hook call outlived ``timeouts.hook`` (reported as a :class:`PluginError`)."""


def _hook_due(ref: weakref.ref[Stream]) -> None:
    """The hook timer's callback; holds the stream weakly (a garbage stream has no hook to bound)."""
    stream = ref()
    if stream is not None:
        stream._hook_due()


_ABORT = "schwarm_stream.abort"
_HOOK_TIMEOUT = "schwarm_stream.hook_timeout"
_FLUSH_DUE = object()  # a timed flush is due before the next provider event
_EXHAUSTED = object()  # the provider stream ended


async def _next_or_end(anext_: Callable[[], Any]) -> Any:
    try:
        return await anext_()
    except StopAsyncIteration:
        return _EXHAUSTED


_NO_FNS: list[Callable[..., Any]] = []
_HOOK_OF: dict[type, str] = {
    Chunk: "stream_chunk",
    ToolCallDelta: "stream_tool_call_delta",
    Reset: "stream_reset",
}
