"""Reading the provider: the plain read, and the timed read that lets a due flush through.

A read is ``await anext()`` on the source's iterator with :attr:`waiting`
``"provider"``; whatever it raises goes through :meth:`TimedReads._read_failed`
(the abort's error for our own cancellation, the caller's cancellation as is, a
typed :class:`StreamError` for anything else). The plain read is inlined in the
attempt loop (it runs per event); the same read made timed is
:meth:`TimedReads._timed_read`: once a transformer asked for
:meth:`TimedReads.flush_after`, a read that is still pending when the flush is
due runs on as a task and the loop delivers the flush meanwhile.
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


class TimedReads(HookDelivery):
    """Provider reads of a stream, plain or timed (see the module docstring)."""

    def __init__(self, table: HookTable, config: Config) -> None:
        super().__init__(table, config)
        # Timed flushes (flush_after): once asked for, reads go through a task so a
        # due flush can be delivered while the provider is silent.
        self._timed = False
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flush_at = 0.0
        self._wake: asyncio.Event | None = None  # created by the first flush_after()
        self._read_fut: asyncio.Future[Any] | None = None

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

    def _timed_pending(self) -> bool:
        """Whether the next read must be timed: a flush is pending or due, or a read outlived one."""
        wake = self._wake
        return (
            self._flush_handle is not None
            or self._read_fut is not None
            or (wake is not None and wake.is_set())
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

        The read runs as a task that outlives a flush: the provider stream is
        never interrupted, its next event is picked up by the next call.
        Errors surface exactly as from a plain read.
        """
        wake = self._wake
        if wake is None:  # flush_after() creates it before any timed read
            raise RuntimeError("a timed read without a flush_after() request")
        if wake.is_set():
            wake.clear()
            return FLUSH_DUE
        read = self._read_fut
        if read is None:
            read = self._read_fut = asyncio.ensure_future(_next_or_end(anext_))
        woken = asyncio.ensure_future(wake.wait())
        self.waiting = "provider"
        try:
            await asyncio.wait({read, woken}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if self._interrupted():
                await self._cancel_read()
                self._raise_abort()
            raise
        finally:
            self.waiting = None
            woken.cancel()
        if not read.done():
            wake.clear()
            return FLUSH_DUE
        self._read_fut = None
        try:
            return read.result()
        except Exception as exc:
            self._read_failed(exc)

    async def _cancel_read(self) -> None:
        """Abandon a pending timed read (the attempt is over): cancel it and let it finish unwinding."""
        fut, self._read_fut = self._read_fut, None
        if fut is not None and not fut.done():
            fut.cancel()
            await asyncio.wait({fut})  # returns when it is done; its CancelledError stays inside
        if fut is not None and fut.done() and not fut.cancelled():
            fut.exception()  # retrieved: an error of an abandoned read is not "never retrieved"

    def _stop_flush_timer(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None


async def _next_or_end(anext_: Callable[[], Any]) -> Any:
    try:
        return await anext_()
    except StopAsyncIteration:
        return EXHAUSTED
