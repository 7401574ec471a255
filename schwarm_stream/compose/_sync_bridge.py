"""The one way the sync forms of ``compose`` drive their async objects: a private event loop in a thread.

Each sync object (``SyncAgentLoop``, ``SyncMerged``, ``SyncRaced``, ``SyncFanout``) owns one
:class:`LoopThread`. Every step -- entering, each next event, leaving -- is a coroutine run on that loop
while the calling thread waits for it. Nothing is read ahead, so the async object sees exactly what an
``async for`` would: the same events, the same backpressure, the same exceptions (the very objects, with
their ``partial`` messages). An early ``break``, an exception in the caller or a ``KeyboardInterrupt``
while waiting closes the async iteration on its own loop (its ``async with`` blocks exit, streams end
``cancelled``, connections close), and closing the sync object ends the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Bridged", "BridgedContext", "LoopThread", "iterate", "run_once"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
R = TypeVar("R")
B = TypeVar("B", bound="Bridged")


class LoopThread:
    """A private event loop running in a daemon thread; :meth:`run` runs a coroutine on it and waits."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        """Whether the loop's thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> asyncio.AbstractEventLoop:
        """Start the thread (once); the running loop."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._serve, args=(loop,), name=self.name, daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Whatever is still running (a producer nobody closed) is cancelled and awaited, so its
            # streams end; then async generators and the default executor (asyncio.to_thread's workers:
            # sync tools, sync SDK clients) are shut down, or their threads would outlive us.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def run(self, step: Callable[[], Awaitable[R]]) -> R:
        """Run ``step()`` on the loop and return its result (or raise its exception) here.

        When the wait is interrupted (``KeyboardInterrupt``), the step is cancelled on the loop and
        unwound before the interruption propagates.
        """
        loop = self.start()
        done = threading.Event()
        box: list[asyncio.Task[R]] = []

        async def call() -> R:
            return await step()

        def begin() -> None:  # on the loop thread: the task exists before any cancel can be scheduled
            task = loop.create_task(call())
            task.add_done_callback(lambda _: done.set())
            box.append(task)

        loop.call_soon_threadsafe(begin)
        try:
            done.wait()
        except BaseException:
            loop.call_soon_threadsafe(lambda: box[0].cancel())
            done.wait()
            raise
        return box[0].result()

    def stop(self) -> None:
        """Stop the loop (cancelling what still runs on it) and join the thread; idempotent."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("a sync stream object cannot be closed from its own loop")
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def iterate(
    runner: LoopThread, source: AsyncIterator[T], close: Callable[[], Awaitable[None]] | None = None
) -> Iterator[T]:
    """``source``'s items, pulled one at a time on ``runner``'s loop.

    If the caller stops early (``break``, an exception, the generator collected), ``close`` runs on the
    loop: by default ``source.aclose()``, which unwinds an async generator's ``async with`` blocks.
    """
    finished = False
    try:
        while True:
            try:
                item = runner.run(source.__anext__)
            except StopAsyncIteration:
                finished = True
                return
            except BaseException:
                # The source raised (its generator is over) or the wait was interrupted (the step was
                # cancelled and unwound): there is nothing left to close on this side.
                finished = True
                raise
            yield item
    finally:
        closer = close if close is not None else getattr(source, "aclose", None)
        if not finished and closer is not None and runner.alive:
            runner.run(closer)


class Bridged:
    """What every sync form shares: its loop thread, ``with`` support and :meth:`close`.

    Subclasses say what entering and leaving mean on the loop (``_aenter`` / ``_aexit``, both optional)
    and iterate through :meth:`_events`. Iterating without ``with`` enters on the first event and
    closes at the end of the iteration (also after ``break``), so a plain ``for`` loop leaves no thread
    behind.
    """

    def __init__(self, name: str) -> None:
        self._runner = LoopThread(name)
        self._entered = False

    async def _aenter(self) -> None:
        return None

    async def _aexit(self, exc: BaseException | None) -> None:
        return None

    def __enter__(self: B) -> B:
        self._enter()
        return self

    def _enter(self) -> None:
        if not self._entered:
            self._runner.run(self._aenter)
            self._entered = True

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close(exc)

    def close(self) -> None:
        """Leave (closing every stream still open) and end the background thread; idempotent."""
        self._close(None)

    def _close(self, exc: BaseException | None) -> None:
        try:
            if self._entered:
                self._entered = False
                self._runner.run(lambda: self._aexit(exc))
        finally:
            self._runner.stop()

    def _events(
        self, make: Callable[[], AsyncIterator[T]], close: Callable[[], Awaitable[None]] | None = None
    ) -> Iterator[T]:
        auto = not self._entered
        self._enter()
        try:
            yield from iterate(self._runner, make(), close)
        except BaseException as exc:
            if auto:
                self._close(exc)
                auto = False
            raise
        finally:
            if auto:
                self._close(None)


class _AsyncContextIterable(Protocol[T_co]):
    """What ``merge()`` and ``race()`` return: entered with ``async with``, then iterated."""

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc_info: Any) -> Any: ...

    def __aiter__(self) -> AsyncIterator[T_co]: ...


class BridgedContext(Bridged, Generic[T]):
    """A sync form of an async context manager that is iterated inside it (:class:`Merged`, :class:`Raced`)."""

    def __init__(self, inner: _AsyncContextIterable[T], name: str) -> None:
        super().__init__(name)
        self._inner = inner

    async def _aenter(self) -> None:
        await self._inner.__aenter__()

    async def _aexit(self, exc: BaseException | None) -> None:
        await self._inner.__aexit__(None if exc is None else type(exc), exc, None)

    def __iter__(self) -> Iterator[T]:
        return self._events(self._inner.__aiter__)


def run_once(name: str, step: Callable[[], Awaitable[R]]) -> R:
    """Run ``step()`` on a fresh loop thread, return its result, end the thread (the sync ``await``)."""
    runner = LoopThread(f"schwarm-{name}")
    try:
        return runner.run(step)
    finally:
        runner.stop()
