"""Scripted streams: a :class:`~schwarm_stream.Source` that plays back a list of events, faults included.

Plugin authors test their hooks without a server or an SDK::

    from schwarm_stream import ToolCallDelta, TransportError
    from schwarm_stream.testing import Fail, ScriptedSource, Stall

    source = ScriptedSource(
        ["Hel", "lo", Fail(TransportError("connection reset"))],  # first attempt breaks
        ["Hello"],                                                  # the retry succeeds
    )
    async with pipeline.open(source) as stream:
        ...

A script is a list of items, played in order on each opening of the source:

- a ``str`` is a text :class:`~schwarm_stream.Chunk`;
- any event (``Chunk``, ``ToolCallDelta``, ``Usage``, ``Finish``, ...) is
  emitted as is (a fresh copy per opening, since the core sets ``seq``);
- :class:`Fail` raises its error at that position (a
  :class:`~schwarm_stream.StreamError` goes through ``stream_error`` like a
  provider failure; any other exception is classified by the core as it
  classifies what a real source raises: SDK and transport exceptions become
  their typed errors, anything else a ``StreamError`` naming it);
- :class:`Stall` waits (for ``seconds``, or until the stream is aborted or
  cancelled): what timeouts and watchdogs react to;
- :class:`Truncate` ends the stream there without the protocol's terminator
  (:class:`~schwarm_stream.StreamIncomplete`, the silent truncation the SDKs
  report as success).

A script that runs to its end completes: a :class:`~schwarm_stream.Finish`
with ``finish`` (default ``"stop"``) is appended unless the script has one.
With several scripts, opening *n* plays script *n* (retries, recoveries); once
they are used up the last one is played again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import StreamIncomplete
from .._events import Chunk, Event, Finish, ToolCallDelta
from ..sources import Source

if TYPE_CHECKING:
    from .._stream import Attempt, Stream

__all__ = ["Fail", "ScriptItem", "ScriptedSource", "Stall", "Truncate", "scripted", "tool_call_deltas"]


@dataclass(frozen=True)
class Fail:
    """Raise ``error`` at this position of the script."""

    error: BaseException


@dataclass(frozen=True)
class Stall:
    """Wait here: ``seconds``, or (``None``) until the stream is aborted, cancelled or closed."""

    seconds: float | None = None


@dataclass(frozen=True)
class Truncate:
    """End the provider stream here, cleanly but without its terminator."""

    reason: str = "the scripted stream ended without its terminator"


ScriptItem = str | Event | Fail | Stall | Truncate
"""One step of a script."""

_EVENT_TYPES: tuple[type, ...] = tuple(Event.__args__)


def _check(script: Sequence[Any], number: int) -> list[ScriptItem]:
    items = list(script)
    for pos, item in enumerate(items):
        if not isinstance(item, (str, Fail, Stall, Truncate, *_EVENT_TYPES)):
            raise TypeError(
                f"script {number}, item {pos}: expected a str, an event, Fail, Stall or Truncate; "
                f"got {type(item).__name__}: {item!r:.80}"
            )
    return items


class ScriptedSource(Source):
    """A re-openable source playing ``scripts`` (one per opening; the last one repeats).

    ``opens`` counts how many times the core opened it; ``attempts`` keeps the
    :class:`~schwarm_stream.Attempt` of each opening (number, strategy).
    """

    def __init__(
        self,
        *scripts: Iterable[ScriptItem],
        provider: str = "scripted",
        model: str | None = "scripted-model",
        finish: str | None = "stop",
    ) -> None:
        if not scripts:
            scripts = ((),)
        self.scripts = [_check(list(s), n) for n, s in enumerate(scripts, 1)]
        self.provider = provider
        self.model = model
        self.finish = finish
        self.opens = 0
        self.attempts: list[Attempt] = []

    def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        script = self.scripts[min(self.opens, len(self.scripts) - 1)]
        self.opens += 1
        self.attempts.append(attempt)
        return self._play(script)

    async def _play(self, script: list[ScriptItem]) -> AsyncIterator[Event]:
        finished = False
        for item in script:
            if isinstance(item, str):
                yield Chunk(item)
            elif isinstance(item, Fail):
                raise item.error
            elif isinstance(item, Stall):
                if item.seconds is None:
                    await asyncio.Event().wait()  # only an abort, a cancel or aclose() ends this
                else:
                    await asyncio.sleep(item.seconds)
            elif isinstance(item, Truncate):
                raise StreamIncomplete(item.reason, provider=self.provider)
            else:
                finished = finished or isinstance(item, Finish)
                yield item.replace(seq=0)
        if not finished and self.finish is not None:
            yield Finish(self.finish)

    def __repr__(self) -> str:
        return f"<ScriptedSource scripts={len(self.scripts)} opens={self.opens}>"


def scripted(*scripts: Iterable[ScriptItem], **kwargs: Any) -> ScriptedSource:
    """Shorthand for :class:`ScriptedSource`."""
    return ScriptedSource(*scripts, **kwargs)


def tool_call_deltas(
    arguments: str,
    *,
    index: int = 0,
    id: str = "call_0",
    name: str = "tool",
    pieces: int = 3,
) -> list[ToolCallDelta]:
    """A tool call as a provider streams it: ``id`` and ``name`` first, then ``arguments`` in ``pieces``."""
    if pieces < 1:
        raise ValueError(f"pieces must be at least 1, got {pieces}")
    size = max(1, -(-len(arguments) // pieces))
    parts = [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]
    out = [ToolCallDelta(index=index, id=id, name=name, arguments=parts[0])]
    out += [ToolCallDelta(index=index, arguments=p) for p in parts[1:]]
    return out
