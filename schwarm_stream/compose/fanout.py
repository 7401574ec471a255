"""Fan one stream out to several in-process consumers, each behind its own bounded queue.

::

    async with schwarm_stream.open(source) as stream:
        fan = Fanout(stream, maxsize=64, policy="block")
        ui = fan.subscribe("ui")
        log = fan.subscribe("log", policy="drop_oldest", maxsize=16)
        async with fan:                      # starts the pump task; waits for it on exit
            await asyncio.gather(show(ui), record(log))
        message = fan.message                # stream.message, drops flagged

The pump task is the only reader of the stream. Per consumer, when its queue is full:

- ``block``: the pump waits for that consumer. It stops reading the provider (real backpressure: the
  socket's receive window fills up) and never loses an event. Other consumers keep draining what is
  already queued for them, so a slow ``block`` consumer delays the others by at most its queue size;
- ``drop_oldest``: the oldest queued event is discarded to make room;
- ``drop_newest``: the new event is discarded.

Drops are counted per consumer (:attr:`Subscriber.dropped`), in :meth:`Fanout.stats`, on
``stream.dropped_events`` (so ``stream.stats()`` and ``stream.message.dropped_events`` carry them, with
the flag ``"dropped_events"``). They never touch the accumulator: it observes events before delivery,
so the message stays exact. A consumer that stops reading should :meth:`~Subscriber.close` so a
``block`` policy stops waiting for it. When the stream fails, every consumer receives the events
before the failure and then the same exception.

For sync code, :class:`SyncFanout` does the same with consumers in threads::

    with open_sync(source) as stream:
        fan = SyncFanout(stream, maxsize=64)
        ui, log = fan.subscribe("ui"), fan.subscribe("log", policy="drop_oldest")
        with fan:                            # starts the pump; waits for it on exit
            threads = [threading.Thread(target=show, args=(ui,)), threading.Thread(target=record, args=(log,))]
            ...                              # start and join them; each iterates its subscriber with ``for``
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Literal

from .._events import Event
from .._message import Message
from .._stream import Stream
from .._sync import SyncStream
from ._sync_bridge import Bridged, iterate

__all__ = ["DROP_FLAG", "Fanout", "OverflowPolicy", "Subscriber", "SyncFanout", "SyncSubscriber"]

OverflowPolicy = Literal["block", "drop_oldest", "drop_newest"]
_POLICIES = ("block", "drop_oldest", "drop_newest")

#: The flag set on ``Message.flags`` when any consumer dropped events.
DROP_FLAG = "dropped_events"


class _End:
    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class Subscriber:
    """One consumer's bounded queue; iterate it with ``async for``."""

    def __init__(self, fanout: Fanout, name: str, maxsize: int, policy: OverflowPolicy) -> None:
        self.name = name
        self.maxsize = maxsize
        self.policy = policy
        self.received = 0  # events handed to this consumer
        self.dropped = 0
        self.closed = False
        self._fanout = fanout
        self._items: deque[Event] = deque()
        self._end: _End | None = None
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    # -- producer side (the pump) -----------------------------------------------------------------

    async def _put(self, event: Event) -> None:
        if self.closed:
            return
        if len(self._items) >= self.maxsize:
            if self.policy == "block":
                while len(self._items) >= self.maxsize and not self.closed:
                    self._writable.clear()
                    await self._writable.wait()
                if self.closed:
                    return
            elif self.policy == "drop_newest":
                self._drop()
                return
            else:
                self._items.popleft()
                self._drop()
        self._items.append(event)
        self._readable.set()

    def _drop(self) -> None:
        self.dropped += 1
        self._fanout._dropped(1)

    def _finish(self, error: BaseException | None) -> None:
        self._end = _End(error)
        self._readable.set()

    # -- consumer side ----------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Events waiting in this consumer's queue."""
        return len(self._items)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while not self._items:
            if self._end is not None or self.closed:
                if self._end is not None and self._end.error is not None and not self.closed:
                    raise self._end.error
                raise StopAsyncIteration
            self._readable.clear()
            await self._readable.wait()
        event = self._items.popleft()
        self.received += 1
        self._writable.set()
        return event

    def close(self) -> None:
        """Stop receiving: the queue is emptied and a ``block`` pump no longer waits for it."""
        self.closed = True
        self._items.clear()
        self._writable.set()
        self._readable.set()


class Fanout:
    """Pump ``stream`` into every subscriber's queue (see the module docstring)."""

    def __init__(
        self, stream: AsyncIterable[Event], *, maxsize: int = 64, policy: OverflowPolicy = "block"
    ) -> None:
        _check(maxsize, policy)
        self.stream = stream
        self.maxsize = maxsize
        self.policy: OverflowPolicy = policy
        self.subscribers: list[Subscriber] = []
        self.events = 0
        self.dropped_events = 0
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    def subscribe(
        self, name: str | None = None, *, maxsize: int | None = None, policy: OverflowPolicy | None = None
    ) -> Subscriber:
        """A new consumer; subscribe before the pump starts to see every event."""
        size = self.maxsize if maxsize is None else maxsize
        pol: OverflowPolicy = self.policy if policy is None else policy
        _check(size, pol)
        sub = Subscriber(self, name or f"consumer-{len(self.subscribers) + 1}", size, pol)
        self.subscribers.append(sub)
        return sub

    def _dropped(self, n: int) -> None:
        self.dropped_events += n
        if hasattr(self.stream, "dropped_events"):
            self.stream.dropped_events += n

    async def run(self) -> None:
        """Read the stream to its end, feeding every subscriber; the stream's error is re-raised."""
        error: BaseException | None = None
        try:
            async for event in self.stream:
                self.events += 1
                for sub in self.subscribers:
                    await sub._put(event)
        except asyncio.CancelledError as exc:
            error = exc
            raise
        except Exception as exc:
            error = self.error = exc
            raise
        finally:
            for sub in self.subscribers:
                sub._finish(error)

    def start(self) -> asyncio.Task[None]:
        """Run the pump in a task (what ``async with fanout`` does)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="schwarm-stream-fanout")
        return self._task

    async def __aenter__(self) -> Fanout:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task = self._task
        if task is None:
            return
        if exc is not None and not task.done():
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if exc is None and not task.cancelled():
                raise
        except Exception:
            if exc is None:
                raise

    @property
    def message(self) -> Message:
        """The stream's message with the drop count and flag applied."""
        msg: Message = self.stream.message  # type: ignore[attr-defined]
        if self.dropped_events and msg.dropped_events != self.dropped_events:
            flags = msg.flags if DROP_FLAG in msg.flags else [*msg.flags, DROP_FLAG]
            msg = msg.model_copy(update={"dropped_events": self.dropped_events, "flags": flags})
        return msg

    def stats(self) -> dict[str, Any]:
        """Events pumped, drops in total and per consumer (received, dropped, queued, policy)."""
        return {
            "events": self.events,
            "dropped_events": self.dropped_events,
            "consumers": {
                s.name: {
                    "received": s.received,
                    "dropped": s.dropped,
                    "queued": s.queued,
                    "policy": s.policy,
                    "maxsize": s.maxsize,
                }
                for s in self.subscribers
            },
        }


class SyncSubscriber:
    """One consumer of a :class:`SyncFanout`: iterate it with ``for``, from any thread.

    Leaving the ``for`` early (``break``, an exception) closes the subscriber, so a ``block`` pump does
    not wait for a consumer that is gone (the async :class:`Subscriber` needs :meth:`Subscriber.close`
    for that).
    """

    def __init__(self, fanout: SyncFanout, subscriber: Subscriber) -> None:
        self._fanout = fanout
        #: The async subscriber behind this one: ``received``, ``dropped``, ``queued``, ``policy``.
        self.subscriber = subscriber

    @property
    def name(self) -> str:
        """The consumer's name (its key in :meth:`SyncFanout.stats`)."""
        return self.subscriber.name

    def __iter__(self) -> Iterator[Event]:
        return iterate(self._fanout._runner, self.subscriber, self._aclose)

    async def _aclose(self) -> None:
        self.subscriber.close()

    def close(self) -> None:
        """Stop receiving (see :meth:`Subscriber.close`)."""
        if self._fanout._runner.alive:
            self._fanout._runner.run(self._aclose)
        else:
            self.subscriber.close()


class SyncFanout(Bridged):
    """A :class:`Fanout` for sync code: one stream, consumers in threads, each behind a bounded queue.

    ``stream`` is a :class:`~schwarm_stream.SyncStream` from :func:`~schwarm_stream.open_sync` that
    nobody iterates itself (or a :class:`~schwarm_stream.Stream`). ``with fan:`` opens the stream and
    starts the pump on a private event loop in a background thread; leaving waits for the pump (an
    exception in the ``with`` body cancels it instead), closes the stream and ends the thread. The
    policies, drop counts and errors are those of :class:`Fanout`.
    """

    def __init__(
        self, stream: SyncStream | Stream, *, maxsize: int = 64, policy: OverflowPolicy = "block"
    ) -> None:
        super().__init__("schwarm-fanout")
        self._stream: Stream = stream.stream if isinstance(stream, SyncStream) else stream
        #: The async fan-out this one drives.
        self.fanout = Fanout(self._stream, maxsize=maxsize, policy=policy)

    def subscribe(
        self, name: str | None = None, *, maxsize: int | None = None, policy: OverflowPolicy | None = None
    ) -> SyncSubscriber:
        """A new consumer (see :meth:`Fanout.subscribe`); subscribe before ``with`` to see every event."""
        return SyncSubscriber(self, self.fanout.subscribe(name, maxsize=maxsize, policy=policy))

    async def _aenter(self) -> None:
        await self._stream.__aenter__()
        self.fanout.start()

    async def _aexit(self, exc: BaseException | None) -> None:
        try:
            await self.fanout.__aexit__(None if exc is None else type(exc), exc, None)
        finally:
            await self._stream.__aexit__(None, None, None)

    @property
    def message(self) -> Message:
        """The stream's message with the drop count and flag applied (:attr:`Fanout.message`)."""
        return self.fanout.message

    def stats(self) -> dict[str, Any]:
        """Events pumped, drops in total and per consumer (:meth:`Fanout.stats`)."""
        return self.fanout.stats()


def _check(maxsize: int, policy: str) -> None:
    if policy not in _POLICIES:
        raise ValueError(f"overflow policy must be one of {', '.join(_POLICIES)}, got {policy!r}")
    if maxsize < 1:
        raise ValueError(f"queue maxsize must be >= 1, got {maxsize}")
