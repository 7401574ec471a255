"""A plugin that records every hook call with its arguments (pytest's ``HookRecorder`` idea).

::

    recorder = HookRecorder()
    pipeline = Pipeline([recorder])
    await pipeline.open(ScriptedSource(["Hel", "lo"])).collect()
    assert recorder.names()[0] == "stream_start"
    assert recorder.text() == "Hello"
    (call,) = recorder.getcalls("stream_complete")
    assert call.message.text == "Hello"

Its implementations are ``trylast``, so the recorder sees what the other
plugins made of an event (a transformer's output in ``stream_transform``),
except the two decision hooks ``stream_error`` and ``stream_message``, which are
``tryfirst`` so they are recorded before another plugin's result stops the call.
It never decides (it returns ``None``) and changes nothing.
Events are recorded as copies, so ``seq`` is the value the hook saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._events import Chunk
from ..hookspecs import HOOK_NAMES, hookimpl

if TYPE_CHECKING:
    from .._errors import StreamError
    from .._events import Event, Reset, ToolCallDelta
    from .._message import Message
    from .._stream import Attempt, Stream
    from ..config import Config

__all__ = ["HookCall", "HookRecorder"]


@dataclass
class HookCall:
    """One recorded hook call: the hook's ``name``, the ``stream`` id and the other arguments.

    Arguments are also attributes: ``call.chunk``, ``call.message``, ``call.error``.
    """

    name: str
    stream_id: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, item: str) -> Any:
        try:
            return self.__dict__["kwargs"][item]
        except KeyError:
            raise AttributeError(
                f"hook call {self.__dict__.get('name')!r} has no argument {item!r}; "
                f"it has: {', '.join(self.__dict__.get('kwargs', {})) or '(none)'}"
            ) from None


def _snapshot(value: Any) -> Any:
    replace = getattr(value, "replace", None)
    return replace() if callable(replace) and hasattr(value, "seq") else value


class HookRecorder:
    """Records every hook call of every stream of the pipeline it is registered in."""

    def __init__(self) -> None:
        self.calls: list[HookCall] = []

    # -- queries -------------------------------------------------------------

    def getcalls(self, *names: str) -> list[HookCall]:
        """The calls of the named hooks (all calls when no name is given), in call order."""
        unknown = [n for n in names if n not in HOOK_NAMES]
        if unknown:
            raise ValueError(f"unknown hook name(s) {unknown}; hooks are: {', '.join(HOOK_NAMES)}")
        return [c for c in self.calls if not names or c.name in names]

    def names(self, stream_id: str | None = None) -> list[str]:
        """The sequence of hook names called (for one stream, or all)."""
        return [c.name for c in self.calls if stream_id is None or c.stream_id == stream_id]

    def for_stream(self, stream_id: str) -> list[HookCall]:
        """The calls made for one stream."""
        return [c for c in self.calls if c.stream_id == stream_id]

    def stream_ids(self) -> list[str]:
        """The ids of the streams seen, in the order they started."""
        return [c.stream_id for c in self.calls if c.name == "stream_start" and c.stream_id is not None]

    def events(self, stream_id: str | None = None) -> list[Event]:
        """The events delivered to consumers (``stream_event``), with their ``seq``."""
        return [c.kwargs["event"] for c in self._of("stream_event", stream_id)]

    def text(self, stream_id: str | None = None, kind: str = "text") -> str:
        """The delivered chunk text of ``kind`` (what a consumer showed), concatenated."""
        return "".join(e.text for e in self.events(stream_id) if isinstance(e, Chunk) and e.kind == kind)

    def assert_called(self, name: str, times: int | None = None) -> list[HookCall]:
        """Assert ``name`` was called (exactly ``times`` times, if given); return its calls."""
        calls = self.getcalls(name)
        if times is None and not calls:
            raise AssertionError(f"hook {name} was never called; calls: {self.names()}")
        if times is not None and len(calls) != times:
            raise AssertionError(f"hook {name} was called {len(calls)} time(s), expected {times}")
        return calls

    def clear(self) -> None:
        """Forget every recorded call."""
        self.calls.clear()

    def __iter__(self) -> Iterator[HookCall]:
        return iter(self.calls)

    def __len__(self) -> int:
        return len(self.calls)

    def _of(self, name: str, stream_id: str | None) -> list[HookCall]:
        return [c for c in self.calls if c.name == name and (stream_id is None or c.stream_id == stream_id)]

    def _record(self, name: str, stream: Stream | None, **kwargs: Any) -> None:
        snap = {k: _snapshot(v) for k, v in kwargs.items()}
        self.calls.append(HookCall(name, stream.id if stream is not None else None, snap))

    # -- hook implementations ----------------------------------------------------

    @hookimpl(trylast=True)
    def stream_configure(self, config: Config) -> None:
        self._record("stream_configure", None, config=config)

    @hookimpl(trylast=True)
    def stream_start(self, stream: Stream) -> None:
        self._record("stream_start", stream)

    @hookimpl(trylast=True)
    def stream_attempt(self, stream: Stream, attempt: Attempt) -> None:
        self._record("stream_attempt", stream, attempt=attempt)

    @hookimpl(trylast=True)
    def stream_receive(self, stream: Stream, event: Event) -> None:
        self._record("stream_receive", stream, event=event)

    @hookimpl(trylast=True)
    def stream_transform(self, stream: Stream, event: Event) -> None:
        self._record("stream_transform", stream, event=event)

    @hookimpl(trylast=True)
    def stream_flush(self, stream: Stream) -> None:
        self._record("stream_flush", stream)

    @hookimpl(trylast=True)
    def stream_event(self, stream: Stream, event: Event) -> None:
        self._record("stream_event", stream, event=event)

    @hookimpl(trylast=True)
    def stream_chunk(self, stream: Stream, chunk: Chunk) -> None:
        self._record("stream_chunk", stream, chunk=chunk)

    @hookimpl(trylast=True)
    def stream_tool_call_delta(self, stream: Stream, delta: ToolCallDelta) -> None:
        self._record("stream_tool_call_delta", stream, delta=delta)

    @hookimpl(trylast=True)
    def stream_reset(self, stream: Stream, reset: Reset) -> None:
        self._record("stream_reset", stream, reset=reset)

    @hookimpl(tryfirst=True)  # a decision hook: record before anyone decides
    def stream_message(self, stream: Stream) -> None:
        self._record("stream_message", stream)

    @hookimpl(trylast=True)
    def stream_complete(self, stream: Stream, message: Message) -> None:
        self._record("stream_complete", stream, message=message)

    @hookimpl(tryfirst=True)  # a decision hook: record before anyone decides
    def stream_error(self, stream: Stream, error: StreamError) -> None:
        self._record("stream_error", stream, error=error)

    @hookimpl(trylast=True)
    def stream_end(self, stream: Stream) -> None:
        self._record("stream_end", stream, outcome=stream.outcome)
