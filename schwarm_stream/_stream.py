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
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._delivery import EventMutated, HookTimeout
from ._errors import StreamCancelled, StreamIncomplete
from ._events import Chunk, Event, Partial
from ._loop import TRUNCATION_REASONS, Attempt, AttemptLoop
from ._message import Message
from ._stash import Stash, StashKey
from .cost import Cost, cost_of

if TYPE_CHECKING:
    from ._dispatch import HookTable
    from .config import Config
    from .sources import Source
    from .structured import TypedOutput

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
        output: Any = None,
        tools: Mapping[str, Any] | Sequence[Any] | None = None,
    ) -> None:
        #: the typed side (``output=`` / ``tools=``): partial values, validated ones at the end
        self.typed: TypedOutput | None = None
        if output is not None or tools:
            from .structured import TypedOutput

            source, self.typed = TypedOutput.prepare(source, output, tools)
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
            self._gen = self._run() if self.typed is None else self._typed_run(self.typed)
        return self._gen

    async def _typed_run(self, typed: TypedOutput) -> AsyncGenerator[Event, None]:
        """The events, each followed by the :class:`Partial` it produced (typed streams)."""
        inner = self._run()
        on_event = typed.on_event
        try:
            async for ev in inner:
                yield ev
                partial = on_event(ev)
                if partial is not None:
                    yield partial
        finally:
            await inner.aclose()

    def _check_tool_arguments(self, message: Message) -> None:
        # The attempt's last check before it counts as complete: a typed stream validates here,
        # so an invalid answer is a StreamError of this attempt and stream_error decides about it.
        super()._check_tool_arguments(message)
        if self.typed is not None:
            self.typed.finish(message, self.provider)

    async def aclose(self) -> None:
        """Close the provider stream (if open) and end the stream; idempotent."""
        if self._gen is not None:
            await self._gen.aclose()

    async def collect(self) -> Message:
        """Consume every event and return the final message (raises the stream's error)."""
        async for _ in self:
            pass
        return self.message

    # -- the SDK-shaped helpers (the names the OpenAI and Anthropic SDKs use) -----------------

    @property
    def text_stream(self) -> AsyncIterator[str]:
        """The text deltas only (choice 0), as the SDKs' ``stream.text_stream``; consumes the stream.

        A :class:`~schwarm_stream.Reset` (only with a restart/fallback recovery configured) cannot
        be shown as text: iterate the events when you configure one.
        """
        return self._text_deltas()

    async def _text_deltas(self) -> AsyncGenerator[str, None]:
        async for ev in self:
            if type(ev) is Chunk and ev.kind == "text" and ev.choice == 0:
                yield ev.text

    @property
    def partial_stream(self) -> AsyncIterator[Any]:
        """The typed partial answers (``Partial.value``) of a typed stream; consumes the stream."""
        self._need_typed("partial_stream")
        return self._partials()

    async def _partials(self) -> AsyncGenerator[Any, None]:
        async for ev in self:
            if type(ev) is Partial and ev.tool_index is None:
                yield ev.value

    async def until_done(self) -> Stream:
        """Consume the rest of the stream; raises its error (as the SDKs' ``until_done()``)."""
        if self.outcome is None:
            async for _ in self:
                pass
        self._raise_failure()
        return self

    async def get_final_message(self) -> Message:
        """The final message, after consuming the rest (raises the stream's error)."""
        await self.until_done()
        return self.message

    async def final_text(self) -> str:
        """The final message's text, after consuming the rest (raises the stream's error)."""
        return (await self.get_final_message()).text

    get_final_text = final_text  # the Anthropic SDK's name

    async def get_final_output(self) -> Any:
        """A typed stream's validated answer, after consuming the rest.

        Raises the stream's error: :class:`~schwarm_stream.InvalidOutput` when the answer did not
        validate (or was cut off), the transport's or provider's error when it broke.
        """
        typed = self._need_typed("get_final_output()")
        if typed.output_type is None:
            raise TypeError("this stream has no output type: open(source, output=...) for get_final_output()")
        await self.until_done()
        self._raise_unvalidated(typed)
        return typed.output

    async def get_final_tool_arguments(self) -> dict[int, Any]:
        """Tool call index -> validated arguments of the calls to tools declared with a type (``tools=``)."""
        typed = self._need_typed("get_final_tool_arguments()")
        await self.until_done()
        self._raise_unvalidated(typed)
        return dict(typed.tool_arguments)

    @property
    def partial_output(self) -> Any:
        """A typed stream's best partial answer so far (``None`` before any, or on untyped streams)."""
        return None if self.typed is None else self.typed.partial_output

    def _need_typed(self, what: str) -> TypedOutput:
        if self.typed is None:
            raise TypeError(f"{what} needs a typed stream: open(source, output=...) or tools=...")
        return self.typed

    def _raise_unvalidated(self, typed: TypedOutput) -> None:
        """A stream that ended without a validated answer (``partial`` recovery) has no final value."""
        if not typed.done:
            if self.error is not None:
                raise self.error
            raise StreamIncomplete("the stream ended without a validated answer", provider=self.provider)

    def _raise_failure(self) -> None:
        """After the end: raise what ended the stream, unless it completed (or ended ``partial``)."""
        if self.outcome in ("error", "cancelled"):
            if self.error is not None:
                raise self.error
            err = StreamCancelled("the stream was closed before it ended", provider=self.provider)
            err.partial = self.message
            err.attempts = self.attempt
            err.stream_id = self.id
            raise err

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
        return self._stats(priced=True)

    def _stats(self, *, priced: bool) -> StreamStats:
        # priced=False leaves ``cost`` unset: the price-table lookup is the dearest part of a
        # stream's end, and the metrics built-in only needs the clocks (it prices the span itself).
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
            cost=cost_of(self._message) if priced and self.outcome is not None else None,
        )
