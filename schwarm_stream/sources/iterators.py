"""A source over a plain (async or sync) iterator of strings, for any other agent.

Each string becomes a text :class:`~schwarm_stream.Chunk`; the stream is
complete when the iterator is exhausted. A factory (a callable returning a new
iterator) can be opened again by retry and recovery; a bare iterator cannot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._classify import classify
from .._errors import StreamError
from .._events import Chunk, Event, Finish
from ._base import Source

if TYPE_CHECKING:
    from .._stream import Attempt, Stream

__all__ = ["IteratorSource", "from_iterator"]

StringStream = AsyncIterable[str] | Iterable[str]


class IteratorSource(Source):
    """Text chunks from an iterator; ``finish_reason`` is ``"stop"`` when it is exhausted."""

    provider = "iterator"

    def __init__(
        self,
        iterable: StringStream | Callable[[], StringStream],
        *,
        model: str | None = None,
        provider: str = "iterator",
        offload_sync: bool = False,
    ) -> None:
        self._iterable = iterable
        self._opened = False
        self.model = model
        self.provider = provider
        self.offload_sync = offload_sync

    def _fresh(self) -> StringStream:
        if callable(self._iterable) and not isinstance(self._iterable, (AsyncIterable, Iterable)):
            return self._iterable()
        if self._opened:
            raise StreamError(
                "this iterator source cannot be opened twice (pass a factory: a function returning a new iterator)",
                provider=self.provider,
                retryable=False,
            )
        self._opened = True
        return self._iterable

    async def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        it: Any = None
        try:
            it = self._fresh()
            if isinstance(it, AsyncIterable):
                async for text in it:
                    if text:
                        yield Chunk(_text(text))
            elif self.offload_sync:
                sync_it = iter(it)
                done = object()
                while (text := await asyncio.to_thread(next, sync_it, done)) is not done:
                    if text:
                        yield Chunk(_text(text))
            else:
                for text in it:
                    if text:
                        yield Chunk(_text(text))
        except StreamError:
            raise
        except (GeneratorExit, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise classify(exc, provider=self.provider) from exc
        finally:
            aclose: Any = (
                getattr(it, "aclose", None) or getattr(it, "close", None) if it is not None else None
            )
            if aclose is not None:
                r = aclose()
                if asyncio.iscoroutine(r):
                    await r
        yield Finish("stop")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"iterator sources yield str, got {type(value).__name__}: {value!r:.80}")


def from_iterator(
    iterable: StringStream | Callable[[], StringStream],
    *,
    model: str | None = None,
    provider: str = "iterator",
) -> IteratorSource:
    """A source over an iterator of strings, or over a factory returning one (re-openable)."""
    return IteratorSource(iterable, model=model, provider=provider)
