"""Reading the provider: the plain read, and the timed read that lets a due flush through.

A read is ``await anext()`` on the source's iterator with :attr:`waiting`
``"provider"``; whatever it raises goes through :meth:`TimedReads._read_failed`
(the abort's error for our own cancellation, the caller's cancellation as is, a
typed :class:`StreamError` for anything else). The plain read is inlined in the
attempt loop (it runs per event); the same read made timed is
:meth:`TimedReads._timed_read`: once a transformer asked for
:meth:`TimedReads.flush_after`, a read that is still pending when the flush is
due runs on and the loop delivers the flush meanwhile.

Timed reads go through one reader task (a pump), not a task per read. The pump
reads while a timed flush is pending, up to :data:`READ_AHEAD` events ahead of
the loop, into a queue the loop takes from without waiting: events the provider
has already sent (a burst in one socket read, or an SDK's buffered chunks) cost
a queue append and pop, not a task switch each. A handoff per event (a request
future, a result future and two task switches) cost ~35 µs per event over a
socket here, since each switch is a full event-loop iteration. The pump stops
reading ahead (and ends) when no flush is pending any more, when the stream is
paused, or when the queue is full; the loop then drains the queue and goes back
to plain reads. Errors and the end of the provider stream are queued after the
events read before them, so they surface in order, exactly as from a plain read.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from ._classify import classify
from ._delivery import HookDelivery
from ._errors import StreamError

if TYPE_CHECKING:
    from ._dispatch import HookTable
    from .config import Config

__all__ = ["EXHAUSTED", "FLUSH_DUE", "READ_AHEAD", "TimedReads"]

FLUSH_DUE = object()  # a timed flush is due before the next provider event
EXHAUSTED = object()  # the provider stream ended
#: Provider events the pump may read ahead of the loop while a timed flush is pending.
READ_AHEAD = 32


class TimedReads(HookDelivery):
    """Provider reads of a stream, plain or timed (see the module docstring)."""

    def __init__(self, table: HookTable, config: Config) -> None:
        super().__init__(table, config)
        # Timed flushes (flush_after): once asked for, reads go through the pump
        # so a due flush can be delivered while the provider is silent.
        self._timed = False
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flush_at = 0.0
        self._flush_is_due = False
        self._pump: asyncio.Task[None] | None = None
        self._pumping = False  # the pump task runs its loop (it may be inside a read)
        self._ahead: deque[Any] = deque()  # events the pump read, not yet taken by the loop
        self._end: BaseException | None = None  # what ended the pump's reads, after ``_ahead``
        self._room: asyncio.Future[None] | None = None  # the pump waits on it while the queue is full
        self._waiter: asyncio.Future[Any] | None = None  # the loop waits on it (an event or FLUSH_DUE)

    def flush_after(self, delay: float) -> None:
        """Run ``stream_flush`` within ``delay`` seconds, even if the provider sends nothing meanwhile.

        For transformers that hold events for at most some time (buffering,
        smoothing): they call this when they start holding. The earliest
        request wins. While such a flush is pending, the stream reads the
        provider through one reader task, a few events ahead at most, so that
        a due flush is delivered while the provider is silent.
        """
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, delay)
        if self._flush_handle is not None and self._flush_at <= when:
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._timed = True
        self._flush_at = when
        self._flush_handle = loop.call_at(when, self._flush_due)

    def _flush_due(self) -> None:
        self._flush_handle = None
        self._flush_is_due = True
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(FLUSH_DUE)

    def _timed_pending(self) -> bool:
        """Whether the next read must be timed: a flush is pending or due, or the pump has reads."""
        return (
            self._flush_handle is not None
            or self._flush_is_due
            or self._pumping
            or bool(self._ahead)
            or self._end is not None
        )

    def _read_failed(self, exc: BaseException) -> NoReturn:
        """A provider read raised ``exc``: raise what the loop handles instead."""
        if isinstance(exc, asyncio.CancelledError):
            if self._interrupted():
                self._raise_abort()
            raise exc  # the caller cancelled: never retried
        if isinstance(exc, StreamError) or not isinstance(exc, Exception):
            raise exc
        # an unclassified source failure: still typed, with the partial
        raise classify(exc, provider=self.provider) from exc

    async def _timed_read(self, anext_: Callable[[], Any]) -> Any:
        """The next provider event, :data:`FLUSH_DUE` when a flush is due first, :data:`EXHAUSTED` at the end.

        The read runs in the pump and outlives a flush: the provider stream is
        never interrupted, its next event is picked up by the next call.
        Errors surface exactly as from a plain read.
        """
        if self._flush_is_due:
            self._flush_is_due = False
            return FLUSH_DUE
        if self._ahead or self._end is not None:
            return self._take()
        loop = asyncio.get_running_loop()
        w = self._waiter = loop.create_future()
        if not self._pumping:
            self._pumping = True
            self._pump = loop.create_task(self._pump_loop(anext_))
        self.waiting = "provider"
        try:
            res = await w
        except asyncio.CancelledError:
            if self._interrupted():
                await self._cancel_read()
                self._raise_abort()
            raise
        finally:
            self.waiting = None
            self._waiter = None
        if res is FLUSH_DUE:
            self._flush_is_due = False
            return FLUSH_DUE
        return self._take()

    def _take(self) -> Any:
        """The pump's next result: an event, or :data:`EXHAUSTED`, or its error raised."""
        ahead = self._ahead
        if ahead:
            room = self._room
            if room is not None and not room.done():
                room.set_result(None)
            return ahead.popleft()
        exc, self._end = self._end, None
        if isinstance(exc, StopAsyncIteration):
            return EXHAUSTED
        if exc is None:  # the pump wakes the loop only with an event or its end: a broken invariant
            raise RuntimeError("schwarm_stream: the read-ahead pump woke the loop with neither an event nor an end")
        self._read_failed(exc)

    async def _pump_loop(self, anext_: Callable[[], Any]) -> None:
        """The reader task: reads ahead while a timed flush is pending; results queued for the loop."""
        loop = asyncio.get_running_loop()
        ahead = self._ahead
        try:
            while True:
                try:
                    item = await anext_()
                except BaseException as exc:  # handed to the loop, which raises it
                    self._end = exc
                    self._wake_loop()
                    return
                ahead.append(item)
                self._wake_loop()
                if self._flush_handle is None and not self._flush_is_due:
                    return  # no flush to wait for: the loop goes back to plain reads
                if self._paused is not None:
                    return  # paused: read nothing more ahead of the consumer
                while len(ahead) >= READ_AHEAD:
                    room = self._room = loop.create_future()
                    await room
        finally:
            self._pumping = False
            self._room = None

    def _wake_loop(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _cancel_read(self) -> None:
        """Abandon the pump (the attempt is over): cancel it and let it finish unwinding."""
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            await asyncio.wait({pump})  # returns when it is done; its CancelledError stays inside
        if pump is not None and pump.done() and not pump.cancelled():
            pump.exception()  # retrieved
        # after the pump unwound: an abandoned read and what it read ahead leave nothing
        self._pumping = False
        self._ahead.clear()
        self._end = None
        self._room = None

    def _stop_flush_timer(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
