"""The sync wrapper: the same stream for sync agent loops.

The async stream runs on a private event loop in a background thread; events
cross over through a bounded queue, so a slow sync consumer applies
backpressure instead of buffering the whole answer. ``break`` or an exception
in the consumer (KeyboardInterrupt included) closes the provider stream, and
``stream_end`` still fires exactly once.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ._events import Chunk, Event, Partial
from ._message import Message
from ._stream import Stream, StreamStats

__all__ = ["SyncStream", "open_sync"]

_END = object()


class SyncStream:
    """A :class:`~schwarm_stream.Stream` for sync code: ``with open_sync(src) as s: for ev in s: ...``."""

    def __init__(self, stream: Stream, *, max_pending: int = 64) -> None:
        self.stream = stream
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()

    def __enter__(self) -> SyncStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        self._start()
        finished = False
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    finished = True
                    break
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                yield item
        finally:
            # The iterator was closed early (``break`` without ``with``, generator close, garbage
            # collection, an exception in the consumer): close the provider stream now, so it ends
            # as ``cancelled`` instead of reading the whole answer in the background.
            if not finished:
                self.close()

    def collect(self) -> Message:
        """Consume every event and return the final message (raises the stream's error)."""
        for _ in self:
            pass
        return self.message

    @property
    def message(self) -> Message:
        return self.stream.message

    # -- the SDK-shaped helpers, as on the async stream -------------------------------------

    @property
    def text_stream(self) -> Iterator[str]:
        """The text deltas only (choice 0), as the SDKs' ``stream.text_stream``; consumes the stream."""
        return (ev.text for ev in self if type(ev) is Chunk and ev.kind == "text" and ev.choice == 0)

    @property
    def partial_stream(self) -> Iterator[Any]:
        """The typed partial answers (``Partial.value``) of a typed stream; consumes the stream."""
        self.stream._need_typed("partial_stream")
        return (ev.value for ev in self if type(ev) is Partial and ev.tool_index is None)

    def until_done(self) -> SyncStream:
        """Consume the rest of the stream; raises its error."""
        if self.stream.outcome is None:
            for _ in self:
                pass
        self.stream._raise_failure()
        return self

    def get_final_message(self) -> Message:
        """The final message, after consuming the rest (raises the stream's error)."""
        self.until_done()
        return self.stream.message

    def final_text(self) -> str:
        """The final message's text, after consuming the rest (raises the stream's error)."""
        return self.get_final_message().text

    get_final_text = final_text  # the Anthropic SDK's name

    def get_final_output(self) -> Any:
        """A typed stream's validated answer, after consuming the rest (raises the stream's error)."""
        typed = self.stream._need_typed("get_final_output()")
        if typed.output_type is None:
            raise TypeError(
                "this stream has no output type: open_sync(source, output=...) for get_final_output()"
            )
        self.until_done()
        self.stream._raise_unvalidated(typed)
        return typed.output

    def get_final_tool_arguments(self) -> dict[int, Any]:
        """Tool call index -> validated arguments of the calls to tools declared with a type."""
        typed = self.stream._need_typed("get_final_tool_arguments()")
        self.until_done()
        self.stream._raise_unvalidated(typed)
        return dict(typed.tool_arguments)

    @property
    def partial_output(self) -> Any:
        """A typed stream's best partial answer so far."""
        return self.stream.partial_output

    def stats(self) -> StreamStats:
        return self.stream.stats()

    def __getattr__(self, name: str) -> Any:  # id, provider, outcome, error, ...
        return getattr(self.stream, name)

    def cancel(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.stream.cancel)

    def close(self) -> None:
        """Stop the stream (closing the provider connection) and wait for ``stream_end``."""
        self._stop.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop closed in between: the stream is already over
                pass
        while self._thread is not None and self._thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(0.01)
        self._thread = None

    # -- the background loop ---------------------------------------------

    def _start(self) -> None:
        if self._thread is not None:
            return
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._task = loop.create_task(self._pump())
                ready.set()
                loop.run_until_complete(self._task)
            except asyncio.CancelledError:
                pass
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"schwarm-stream-{self.stream.id[:8]}", daemon=True)
        self._thread.start()
        ready.wait()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    async def _pump(self) -> None:
        try:
            async with self.stream as s:
                async for ev in s:
                    # A blocking put would stall the loop; hand off in a thread only when full.
                    try:
                        self._queue.put_nowait(ev)
                    except queue.Full:
                        if not await asyncio.to_thread(self._put, ev):
                            return
            self._put(_END)
        except asyncio.CancelledError:
            self._queue.put_nowait(_END) if not self._queue.full() else None
            raise
        except BaseException as exc:
            self._put(exc)
            self._put(_END)


def open_sync(
    source: Any,
    *,
    plugins: Any = None,
    config: Any = None,
    metadata: Mapping[str, Any] | None = None,
    agent_id: str | None = None,
    output: Any = None,
    tools: Mapping[str, Any] | Sequence[Any] | None = None,
) -> SyncStream:
    """Like :func:`schwarm_stream.open`, for sync code (``output=`` / ``tools=`` as there)."""
    from ._pipeline import open as open_async

    return SyncStream(
        open_async(
            source,
            plugins=plugins,
            config=config,
            metadata=metadata,
            agent_id=agent_id,
            output=output,
            tools=tools,
        )
    )
