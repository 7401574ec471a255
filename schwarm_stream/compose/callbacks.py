"""Callback-style handlers, for code coming from LangChain or LiteLLM callbacks.

Subclass :class:`CallbackHandler`, override the callbacks you need (each may
be ``def`` or ``async def``) and pass an instance as a plugin::

    class Printer(CallbackHandler):
        def on_token(self, text, stream):
            print(text, end="", flush=True)

        def on_complete(self, message, stream):
            print(f"\\n[{message.finish_reason}]")

    async with schwarm_stream.open(source, plugins=[Printer()]) as stream:
        await stream.collect()

Under the hood a handler *is* a plugin: when the subclass is created, hook
implementations are generated for the overridden callbacks only. A handler
that overrides nothing per chunk adds nothing to the per-chunk path, and a
sync ``on_token`` keeps the core's all-sync fast path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from .._errors import StreamError
    from .._events import ToolCallDelta
    from .._message import Message
    from .._stream import Stream

__all__ = ["CALLBACKS", "CallbackHandler"]

#: Every callback a handler may override.
CALLBACKS: tuple[str, ...] = (
    "on_stream_start",
    "on_token",
    "on_reasoning",
    "on_refusal",
    "on_tool_call_delta",
    "on_complete",
    "on_error",
    "on_end",
)

# Chunk kind -> the callback that receives it.
_CHUNK_CALLBACKS = {"text": "on_token", "reasoning": "on_reasoning", "refusal": "on_refusal"}


class CallbackHandler:
    """Base class for callback-style handlers; every callback is a no-op until overridden.

    Callbacks receive the :class:`~schwarm_stream.Stream` last, so one handler
    instance can serve many concurrent streams (keep per-stream state keyed by
    ``stream.id``, or in ``stream.stash``). An exception raised by a callback
    is isolated like any plugin failure (see :mod:`schwarm_stream.hookspecs`).
    """

    def on_stream_start(self, stream: Stream) -> Any:
        """The stream starts, before the provider is contacted."""

    def on_token(self, text: str, stream: Stream) -> Any:
        """A text delta was delivered (after transformers)."""

    def on_reasoning(self, text: str, stream: Stream) -> Any:
        """A reasoning (thinking) delta was delivered."""

    def on_refusal(self, text: str, stream: Stream) -> Any:
        """A refusal delta was delivered."""

    def on_tool_call_delta(self, delta: ToolCallDelta, stream: Stream) -> Any:
        """A fragment of a tool call was delivered (``delta.index``, ``id``, ``name``, ``arguments``)."""

    def on_complete(self, message: Message, stream: Stream) -> Any:
        """The stream completed with the exact final message."""

    def on_error(self, error: StreamError, stream: Stream) -> Any:
        """The stream ended without completing: called once, with the final error.

        Failures that a retry or recovery plugin handled are not reported here;
        ``error.partial`` is what was delivered before the failure.
        """

    def on_end(self, stream: Stream) -> Any:
        """The stream is over, whatever happened (after ``on_complete`` / ``on_error``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = {name for name in CALLBACKS if getattr(cls, name) is not getattr(CallbackHandler, name)}
        for hook, make in _FACTORIES.items():
            impl = make(cls, overridden)
            if impl is not None:
                setattr(cls, hook, impl)


def _is_async(cls: type, name: str) -> bool:
    return inspect.iscoroutinefunction(getattr(cls, name))


def _start(cls: type, overridden: set[str]) -> Callable[..., Any] | None:
    if "on_stream_start" not in overridden:
        return None
    if _is_async(cls, "on_stream_start"):

        async def stream_start(self: CallbackHandler, stream: Stream) -> None:
            await self.on_stream_start(stream)

    else:

        def stream_start(self: CallbackHandler, stream: Stream) -> None:  # type: ignore[misc]
            self.on_stream_start(stream)

    return hookimpl(stream_start)


def _chunk(cls: type, overridden: set[str]) -> Callable[..., Any] | None:
    wanted = {kind: name for kind, name in _CHUNK_CALLBACKS.items() if name in overridden}
    if not wanted:
        return None
    if any(_is_async(cls, name) for name in wanted.values()):

        async def stream_chunk(self: CallbackHandler, stream: Stream, chunk: Any) -> None:
            name = wanted.get(chunk.kind)
            if name is not None:
                result = getattr(self, name)(chunk.text, stream)
                if inspect.isawaitable(result):
                    await result

        return hookimpl(stream_chunk)

    if list(wanted) == ["text"]:  # the common case: one comparison per chunk

        def stream_chunk(self: CallbackHandler, stream: Stream, chunk: Any) -> None:  # type: ignore[misc]
            if chunk.kind == "text":
                self.on_token(chunk.text, stream)

    else:

        def stream_chunk(self: CallbackHandler, stream: Stream, chunk: Any) -> None:  # type: ignore[misc]
            name = wanted.get(chunk.kind)
            if name is not None:
                getattr(self, name)(chunk.text, stream)

    return hookimpl(stream_chunk)


def _tool(cls: type, overridden: set[str]) -> Callable[..., Any] | None:
    if "on_tool_call_delta" not in overridden:
        return None
    if _is_async(cls, "on_tool_call_delta"):

        async def stream_tool_call_delta(self: CallbackHandler, stream: Stream, delta: Any) -> None:
            await self.on_tool_call_delta(delta, stream)

    else:

        def stream_tool_call_delta(self: CallbackHandler, stream: Stream, delta: Any) -> None:  # type: ignore[misc]
            self.on_tool_call_delta(delta, stream)

    return hookimpl(stream_tool_call_delta)


def _complete(cls: type, overridden: set[str]) -> Callable[..., Any] | None:
    if "on_complete" not in overridden:
        return None

    async def stream_complete(self: CallbackHandler, stream: Stream, message: Message) -> None:
        result = self.on_complete(message, stream)
        if inspect.isawaitable(result):
            await result

    return hookimpl(stream_complete)


def _end(cls: type, overridden: set[str]) -> Callable[..., Any] | None:
    # on_error is reported from stream_end: stream_error runs once per failed attempt
    # (retries included) and is a decision hook; users want the final failure.
    if not {"on_error", "on_end"} & overridden:
        return None
    error_wanted, end_wanted = "on_error" in overridden, "on_end" in overridden

    async def stream_end(self: CallbackHandler, stream: Stream) -> None:
        error = stream.error
        if error_wanted and error is not None and stream.outcome != "complete":
            result = self.on_error(error, stream)  # type: ignore[arg-type]
            if inspect.isawaitable(result):
                await result
        if end_wanted:
            result = self.on_end(stream)
            if inspect.isawaitable(result):
                await result

    return hookimpl(stream_end)


# Hook name -> factory building its implementation for a subclass (or None).
_FACTORIES: dict[str, Callable[[type, set[str]], Callable[..., Any] | None]] = {
    "stream_start": _start,
    "stream_chunk": _chunk,
    "stream_tool_call_delta": _tool,
    "stream_complete": _complete,
    "stream_end": _end,
}
