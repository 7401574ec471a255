"""One typed stream's state: partial values while it streams, the validated values at its end.

:class:`TypedOutput` follows the events a stream delivers (text chunks of choice 0, or the forced
answer tool's arguments; the arguments of tools declared with a type) and turns them into
:class:`~schwarm_stream.Partial` events. :meth:`TypedOutput.finish` validates exactly, once the
provider ended the stream with its terminator; a failure is an
:class:`~schwarm_stream.InvalidOutput` raised inside the attempt, so ``stream_error`` decides about it
like about any failure. A :class:`~schwarm_stream.Reset` starts everything over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import InvalidOutput
from .._events import Chunk, Finish, Partial, Reset, ToolCallDelta
from ._output import OutputType, error_list, output_type
from ._partial import PartialJSON
from ._request import Shape, shape_source

if TYPE_CHECKING:
    from .._events import Event
    from .._message import Message
    from ..sources import Source

__all__ = ["TypedOutput", "tool_types"]

#: Finish reasons that mean "cut off by a limit" (the same set as the core's).
_CUT = frozenset({"length", "max_tokens", "max_output_tokens", "incomplete", "model_context_window_exceeded"})


def tool_types(tools: Mapping[str, Any] | Sequence[Any] | None) -> dict[str, OutputType]:
    """``{"name": Model}`` or ``[Model, ...]`` (named by the type's name) as name -> :class:`OutputType`."""
    if not tools:
        return {}
    if isinstance(tools, Mapping):
        return {str(name): OutputType(tp, name=str(name)) for name, tp in tools.items()}
    out: dict[str, OutputType] = {}
    for tp in tools:
        t = output_type(tp)
        out[t.name] = t
    return out


class _Track:
    """One JSON value being streamed: its parser and the best typed value so far."""

    __slots__ = ("kind", "name", "parser", "value")

    def __init__(self, kind: OutputType, name: str | None, growth: int) -> None:
        self.kind = kind
        self.name = name
        self.parser = PartialJSON(growth=growth)
        self.value: Any = None

    def feed(self, text: str, index: int | None, seq: int) -> Partial | None:
        """Add ``text``; a :class:`Partial` when the parsed value (or what is still open) changed."""
        before = (self.parser.value, self.parser.incomplete)
        return self._emit(before, index, seq) if self.parser.feed(text) else None

    def flush(self, index: int | None, seq: int) -> Partial | None:
        """Parse what arrived, whatever the schedule skipped."""
        before = (self.parser.value, self.parser.incomplete)
        return self._emit(before, index, seq) if self.parser.update() else None

    def _emit(self, before: tuple[Any, Any], index: int | None, seq: int) -> Partial | None:
        data = self.parser.value
        if data is None or (data, self.parser.incomplete) == before:
            return None
        try:
            self.value = self.kind.validate_partial(data)
        except ValueError:
            pass  # this much does not fit the type yet: the last value that did stays the best
        return Partial(self.value, data, self.parser.incomplete, index, self.name, seq)


class TypedOutput:
    """The typed side of one stream (built by :meth:`prepare`)."""

    def __init__(
        self, output: OutputType | None, tools: dict[str, OutputType], shape: Shape, *, growth: int = 32
    ) -> None:
        self.output_type = output
        self.tools = tools
        self.shape = shape
        self.growth = growth
        #: the validated answer, once the stream completed (``None`` before)
        self.output: Any = None
        self.done = False
        #: tool call index -> validated arguments (typed tools only), once the stream completed
        self.tool_arguments: dict[int, Any] = {}
        self.answer: _Track | None = None
        self._names: dict[int, str | None] = {}
        self._tracks: dict[int, _Track] = {}
        self._start()

    @classmethod
    def prepare(
        cls,
        source: Source,
        output: Any = None,
        tools: Mapping[str, Any] | Sequence[Any] | None = None,
        *,
        growth: int = 32,
    ) -> tuple[Source, TypedOutput]:
        """``source`` shaped to ask for ``output`` and ``tools`` natively, and the state following it."""
        out = None if output is None else output_type(output)
        kinds = tool_types(tools)
        shaped, shape = shape_source(source, out, kinds)
        return shaped, cls(out, kinds, shape, growth=growth)

    def _start(self) -> None:
        self.answer = _Track(self.output_type, None, self.growth) if self.output_type is not None else None
        self._names = {}
        self._tracks = {}

    @property
    def partial_output(self) -> Any:
        """The best partial answer so far (typed), ``None`` before anything parseable arrived."""
        return None if self.answer is None else self.answer.value

    # -- while it streams --------------------------------------------------------------------------

    def on_event(self, ev: Event) -> Partial | None:
        """The :class:`Partial` to deliver after ``ev``, if it changed the value."""
        tp = type(ev)
        if tp is Chunk:
            ch: Chunk = ev  # type: ignore[assignment]
            if self.answer is not None and self.shape.mode == "text" and ch.kind == "text" and ch.choice == 0:
                return self.answer.feed(ch.text, None, ch.seq)
            return None
        if tp is ToolCallDelta:
            d: ToolCallDelta = ev  # type: ignore[assignment]
            if d.choice != 0:
                return None
            if d.name is not None and d.index not in self._names:
                self._names[d.index] = d.name
                if self.shape.mode == "tool" and d.name == self.shape.tool_name and self.answer is not None:
                    self._tracks[d.index] = self.answer
                elif d.name in self.tools:
                    self._tracks[d.index] = _Track(self.tools[d.name], d.name, self.growth)
            track = self._tracks.get(d.index)
            if track is not None:
                return track.feed(d.arguments, None if track is self.answer else d.index, d.seq)
            return None
        if tp is Finish:
            # the answer is whole now: the last value, whatever the parse schedule skipped
            f: Finish = ev  # type: ignore[assignment]
            if f.choice == 0 and self.answer is not None:
                return self.answer.flush(None, f.seq)
            return None
        if tp is Reset:
            self._start()
        return None

    # -- at the end ----------------------------------------------------------------------------------

    def finish(self, message: Message, provider: str | None = None) -> None:
        """Validate the completed message exactly; raises :class:`InvalidOutput`."""
        cut = message.finish_reason in _CUT
        self.tool_arguments = {}  # an earlier attempt's (failed) validation counts no more
        if self.output_type is not None:
            tool_id: str | None = None
            tool_name: str | None = None
            if self.shape.mode == "tool":
                call = next((c for c in message.tool_calls if c.name == self.shape.tool_name), None)
                if call is None:
                    raise InvalidOutput(
                        f"{provider or 'the provider'} answered without calling the output tool "
                        f"{self.shape.tool_name!r}",
                        raw_text=message.text,
                        partial_output=self.partial_output,
                        errors=[{"type": "missing", "loc": [], "msg": "no call of the output tool"}],
                        provider=provider,
                    )
                raw, tool_id, tool_name = call.arguments, call.id, call.name
            else:
                raw = message.text
            self.output = self._validate(
                self.output_type, raw, cut, self.partial_output, tool_name, tool_id, provider
            )
        for call in message.tool_calls:
            kind = self.tools.get(call.name)
            if kind is None or (self.shape.mode == "tool" and call.name == self.shape.tool_name):
                continue
            track = self._tracks.get(call.index)
            partial = track.value if track is not None else None
            self.tool_arguments[call.index] = self._validate(
                kind, call.arguments, cut, partial, call.name, call.id, provider
            )
        self.done = True

    @staticmethod
    def _validate(
        kind: OutputType,
        raw: str,
        cut: bool,
        partial: Any,
        tool_name: str | None,
        tool_id: str | None,
        provider: str | None,
    ) -> Any:
        what = (
            f"tool call {tool_name!r}" if tool_name is not None and tool_name != kind.name else "the answer"
        )
        if cut:
            raise InvalidOutput(
                f"{what} was cut off by the provider's limit: a truncated answer is never a final {kind.name}",
                raw_text=raw,
                partial_output=partial,
                errors=[{"type": "truncated", "loc": [], "msg": "the provider cut the answer off"}],
                tool_call=tool_name,
                tool_call_id=tool_id,
                truncated=True,
                provider=provider,
            )
        try:
            return kind.validate_json(raw)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError too
            errors = error_list(exc)
            first = errors[0]["msg"] if errors else str(exc)
            raise InvalidOutput(
                f"{what} is not a valid {kind.name}: {len(errors)} error(s), first: {first}",
                raw_text=raw,
                partial_output=partial,
                errors=errors,
                tool_call=tool_name,
                tool_call_id=tool_id,
                provider=provider,
            ) from exc
