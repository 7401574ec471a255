"""Reading the provider: the plain read, and the timed read that lets a due flush through.

A read is ``await anext()`` on the source's iterator with :attr:`waiting`
``"provider"``; whatever it raises goes through :meth:`TimedReads._read_failed`
(the abort's error for our own cancellation, the caller's cancellation as is, a
typed :class:`StreamError` for anything else). The plain read is inlined in the
attempt loop (it runs per event); the same read made timed is
:meth:`TimedReads._timed_read`: once a transformer asked for
:meth:`TimedReads.flush_after`, a read that is still pending when the flush is
due runs on and the loop delivers the flush meanwhile.

Timed reads go through one long-lived reader task per attempt (a pump), not a
task per read: the loop hands it a read request and waits on a single future
that either the read's result or the flush timer resolves. Per event that is
two futures and two task switches (a task plus ``asyncio.wait`` per read cost
~65 µs/event here). The pump reads only when asked, so the provider is never
read ahead of the consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from ._classify import classify
from ._delivery import HookDelivery
from ._errors import StreamError

if TYPE_CHECKING:
    from ._dispatch import HookTable
    from .config import Config

__all__ = ["EXHAUSTED", "FLUSH_DUE", "TimedReads"]

FLUSH_DUE = object()  # a timed flush is due before the next provider event
EXHAUSTED = object()  # the provider stream ended
_NOTHING = object()  # no read result parked


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
        self._pump_anext: Callable[[], Any] | None = None
        self._pump_req: asyncio.Future[None] | None = None  # the pump waits on it for the next request
        self._reading = False  # the pump is inside a read
        self._parked: Any = _NOTHING  # a result that arrived after the loop took a flush instead
        self._parked_exc: BaseException | None = None
        self._waiter: asyncio.Future[Any] | None = None  # the loop waits on it (result or FLUSH_DUE)

    def flush_after(self, delay: float) -> None:
        """Run ``stream_flush`` within ``delay`` seconds, even if the provider sends nothing meanwhile.

        For transformers that hold events for at most some time (buffering,
        smoothing): they call this when they start holding. The earliest
        request wins. While such a flush is pending, the stream reads the
        provider through one reader task (a few µs per event) so that a due
        flush is delivered while the provider is silent.
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
        """Whether the next read must be timed: a flush is pending or due, or a read outlived one."""
        return (
            self._flush_handle is not None
            or self._flush_is_due
            or self._reading
            or self._parked is not _NOTHING
            or self._parked_exc is not None
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
        if self._parked is not _NOTHING or self._parked_exc is not None:
            return self._take_parked()
        loop = asyncio.get_running_loop()
        w = self._waiter = loop.create_future()
        if not self._reading:
            self._request(anext_, loop)
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
        return self._take_parked()

    def _take_parked(self) -> Any:
        exc, self._parked_exc = self._parked_exc, None
        res, self._parked = self._parked, _NOTHING
        if exc is not None:
            if isinstance(exc, StopAsyncIteration):
                return EXHAUSTED
            self._read_failed(exc)
        return res

    def _request(self, anext_: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> None:
        """Ask the pump for one read (starting the pump for this attempt's iterator if needed)."""
        self._reading = True
        if self._pump is None or self._pump_anext is not anext_ or self._pump.done():
            self._pump_anext = anext_
            self._pump_req = None
            self._pump = loop.create_task(self._pump_loop(anext_))  # reads at once
            return
        req = self._pump_req
        if req is not None and not req.done():
            req.set_result(None)

    async def _pump_loop(self, anext_: Callable[[], Any]) -> None:
        """The reader task: one read per request, its result (or error) parked for the loop."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._parked = await anext_()
            except BaseException as exc:  # handed to the loop, which raises it
                self._parked_exc = exc
                self._reading = False
                self._wake_loop()
                return
            self._reading = False
            req = self._pump_req = loop.create_future()
            self._wake_loop()
            await req

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
        # after the pump unwound (it parks its own cancellation): an abandoned read leaves nothing
        self._pump_anext = None
        self._pump_req = None
        self._reading = False
        self._parked = _NOTHING
        self._parked_exc = None

    def _stop_flush_timer(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
