"""The stream handle: what you iterate, and the context every hook receives.

One :class:`Stream` is one logical stream: it may open several provider
streams (attempts) when plugins decide to retry or recover, but its consumers
see one sequence of events and it ends exactly once: ``stream_complete`` with
the exact message, or a typed error carrying the partial message (or, when a
plugin chose ``partial``, a message with ``complete=False``).

The handle is thin; the machinery is layered below it, one job per module:
:mod:`._loop` (the attempt loop), :mod:`._reads` (provider reads, timed
flushes), :mod:`._delivery` (calling hooks, delivering events) and
:mod:`._control` (pause, abort, what the stream is waiting for).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._delivery import EventMutated, HookTimeout
from ._events import Event
from ._loop import TRUNCATION_REASONS, Attempt, AttemptLoop
from ._message import Message
from ._stash import Stash, StashKey
from .cost import Cost, cost_of

if TYPE_CHECKING:
    from ._dispatch import HookTable
    from .config import Config
    from .sources import Source

__all__ = [
    "TOOL_CALLS",
    "TRUNCATION_REASONS",
    "Attempt",
    "EventMutated",
    "HookTimeout",
    "Stream",
    "StreamStats",
]

#: Where the message-building plugin keeps the tool calls (choice 0) accumulated so far,
#: by index: what :meth:`Stream.tool_call` returns. Any plugin replacing ``accumulate``
#: may fill it with its own per-call objects.
TOOL_CALLS: StashKey[Mapping[int, Any]] = StashKey()


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
    #: events dropped by overflowing consumer queues (``schwarm_stream.compose.fanout``); never accumulated
    dropped_events: int = 0
    #: what the stream cost, from the provider's usage and the price table (:mod:`schwarm_stream.cost`),
    #: once it ended; unknown (``total is None``, with the reason) never reads as 0; ``None`` while running
    cost: Cost | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict (for JSON); ``cost`` as :meth:`Cost.to_dict`."""
        out = {k: getattr(self, k) for k in self.__slots__}
        if self.cost is not None:
            out["cost"] = self.cost.to_dict()
        return out


class Stream(AttemptLoop):
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
    ``config``, ``outcome`` (after the end), ``error``, ``waiting`` (what the
    stream awaits right now: ``"provider"``, ``"hook"``, ``"backoff"`` or
    ``None``) and ``running_hook`` (the async hook implementation being awaited).
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
        self.current_source = source
        self.provider: str = source.provider
        self.model: str | None = source.model
        self.operation: str = getattr(source, "operation", "chat")
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.config = config
        self.stash = Stash()
        self.dropped_events = 0  # bumped by fanout queues that drop events; flagged on the message
        self._gen: AsyncGenerator[Event, None] | None = None
        super().__init__(table, config)

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
            cost=cost_of(self._message) if self.outcome is not None else None,
        )
