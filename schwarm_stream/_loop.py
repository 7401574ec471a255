"""The attempt loop: one logical stream over as many provider streams as plugins decide.

:meth:`AttemptLoop._run` opens attempts until one ends with the protocol's
terminator or ``stream_error`` says stop; it ends exactly once (``stream_end``).
:meth:`AttemptLoop._run`'s inner loop is the per-event path (inline, not a
generator of its own): read, ``stream_receive``, the transformer chain, delivery,
``yield``. It walks precomputed lists; nothing per event touches pluggy,
pydantic, logging or a clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import InvalidToolArguments, PluginError, SchwarmStreamError, StreamCancelled, StreamError
from ._events import Chunk, Event, Reset, ToolCallDelta
from ._reads import EXHAUSTED, FLUSH_DUE, TimedReads
from .decisions import Recovery

if TYPE_CHECKING:
    from ._dispatch import HookTable
    from ._message import Message
    from .config import Config
    from .sources import Source

__all__ = ["TRUNCATION_REASONS", "Attempt", "AttemptLoop"]

log = logging.getLogger("schwarm_stream")

#: Finish reasons that mean "cut off by a limit": a tool call with broken JSON
#: is then reported on the tool call, not as a protocol error.
TRUNCATION_REASONS = frozenset(
    {"length", "max_tokens", "max_output_tokens", "incomplete", "model_context_window_exceeded"}
)

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


class AttemptLoop(TimedReads):
    """The loop half of a stream (see the module docstring)."""

    source: Source
    current_source: Source

    def __init__(self, table: HookTable, config: Config) -> None:
        super().__init__(table, config)
        self.attempt = 0
        self.recovery: str | None = None
        self.outcome: str | None = None
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.events_received = 0
        self.resets = 0
        self._message: Message | None = None
        self._started = False

    async def _run(self) -> AsyncGenerator[Event, None]:
        self._started = True
        self.started_at = time.monotonic()
        outcome = "cancelled"
        try:
            await self._notify(self._table.stream_start, self)
            source: Source = self.source
            strategy: str | None = None
            previous: StreamError | None = None
            delay = 0.0
            while True:
                self.attempt += 1
                self.current_source = source
                attempt = Attempt(self.attempt, strategy, source, previous, delay)
                await self._notify(self._table.stream_attempt, self, attempt)
                try:
                    if delay > 0:
                        await self._backoff(delay)
                    # One attempt: open the provider stream and deliver its events, inline (not a
                    # generator of its own: one layer less per event). Its finally closes the provider
                    # stream now on a consumer's break/cancel, not at GC; a failure raises StreamError.
                    t = self._table
                    receive = t.stream_receive
                    receive_fns = [i.fn for i in receive]
                    receive_sync = t.all_sync("stream_receive")
                    transforms = t.stream_transform
                    deliver_sync = self._deliver_sync_ok
                    # No observer at all (the default pipeline): a content event after the commit
                    # point is stamped right here, _deliver's own steps without the call.
                    unobserved = deliver_sync and not (
                        self._event_fns or self._chunk_fns or self._typed_fns["stream_tool_call_delta"]
                    )
                    self._task = asyncio.current_task()
                    # self is the Stream
                    events = attempt.source.open(self, attempt)  # type: ignore[arg-type]
                    anext_ = events.__anext__
                    got: Any
                    try:
                        while True:
                            if self._paused is not None:
                                await self._paused.wait()
                            if self._abort_pending:
                                self._raise_abort()
                            # A read through a task only while a timed flush is pending (or a read
                            # outlived one); otherwise the plain, cheaper read.
                            if self._timed and self._timed_pending():
                                got = await self._timed_read(anext_)
                                if got is FLUSH_DUE:
                                    for out in await self._flush():
                                        yield out
                                    continue
                                if got is EXHAUSTED:
                                    break
                            else:
                                self.waiting = "provider"
                                try:
                                    got = await anext_()
                                except StopAsyncIteration:
                                    break
                                except (asyncio.CancelledError, Exception) as exc:
                                    self._read_failed(exc)
                                finally:
                                    self.waiting = None
                            self.events_received += 1
                            if receive_sync:
                                for f in receive_fns:
                                    try:
                                        f(self, got)
                                    except Exception as exc:
                                        self._plugin_failed(f, "stream_receive", exc)
                            else:
                                await self._notify(receive, self, got)
                            if not transforms:  # the common case: no chain, no list per event
                                if unobserved and self.committed:
                                    tp = type(got)
                                    if tp is Chunk:
                                        self._seq = seq = self._seq + 1
                                        got.seq = seq
                                        self.events_delivered += 1
                                        self.chunks += 1
                                        yield got
                                        continue
                                    if tp is ToolCallDelta:
                                        self._seq = seq = self._seq + 1
                                        got.seq = seq
                                        self.events_delivered += 1
                                        self.tool_call_deltas += 1
                                        yield got
                                        continue
                                if deliver_sync:
                                    self._deliver(got)
                                else:
                                    await self._deliver_async(got)
                                yield got
                                continue
                            for out in await self._transform(got, 0):
                                if deliver_sync:
                                    self._deliver(out)
                                else:
                                    await self._deliver_async(out)
                                yield out
                    finally:
                        self.waiting = None
                        await self._cancel_read()
                        aclose = getattr(events, "aclose", None)
                        if aclose is not None:
                            await aclose()
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
                        await self._deliver_any(reset)
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
                    await self._notify(self._table.stream_complete, self, message)
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
            self._stop_flush_timer()
            self._stop_hook_timer()
            self.outcome = outcome
            self.ended_at = time.monotonic()
            if outcome == "cancelled" and self._message is None:
                self._message = self._build_message(complete=False)
            await self._notify_end()


    async def _backoff(self, seconds: float) -> None:
        """Wait before the next attempt; :meth:`abort` (cancel, total timeout) ends the wait at once."""
        if self._abort_pending:
            self._raise_abort()
        self._task = asyncio.current_task()
        self.waiting = "backoff"
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            if self._interrupted():
                self._raise_abort()
            raise
        finally:
            self.waiting = None

    async def _decide(self, err: StreamError) -> Recovery:
        """Ask ``stream_error`` (first non-``None`` wins); nobody deciding means ``raise``."""
        if isinstance(err, StreamCancelled):
            return Recovery("raise")
        for impl in self._table.stream_error:
            res = await self._call(impl, (self, err))
            if res is None:
                continue
            try:
                return res if isinstance(res, Recovery) else Recovery(res)
            except (ValueError, TypeError) as exc:
                self._plugin_failed(impl.fn, "stream_error", exc)
        return Recovery("raise")

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
            nxt: Source | None = cont(self._build_message(complete=False)) if cont is not None else None
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
