"""Built-in plugin ``accumulate``: builds the final message from the received events.

It observes events in ``stream_receive`` (before transformers, so redaction or
dropped deliveries never change the message) and builds the message in
``stream_message``. Per event it only appends to lists: linear time in the
stream length; tool-call arguments are joined and strictly parsed once, at the
end.

Rules where providers misbehave (the SDK accumulators crash or corrupt here):

- tool calls are keyed by index; ``id`` and ``name`` are set once, a repeated
  equal ``id``/``name`` on later fragments is ignored (no ``call_acall_a``);
  a fragment carrying a *different* id for an index that already has one
  starts a new call;
- index gaps and out-of-order indices are fine (calls are ordered by index);
- usage fields are cumulative totals: a later report overwrites only the
  fields it carries; usage is ``None`` when the provider sent none;
- after a retry, restart or fallback the state starts afresh; after a
  continuation or a resume it goes on.

Caps from ``[limits]``: one fragment larger than ``max_event_bytes``, one call's
arguments larger than ``max_tool_arguments_bytes`` or a message larger than
``max_message_bytes`` fail the stream with :class:`~schwarm_stream.LimitExceeded`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from .._errors import LimitExceeded
from .._events import Chunk, Event, Extra, Finish, ResponseInfo, ToolCallDelta, Usage
from .._message import ContentBlock, Message, TokenUsage, ToolCall, parse_arguments
from .._stash import StashKey
from .._stream import TOOL_CALLS
from ..config import ConfigSection
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from .._stream import Attempt, Stream

__all__ = ["LimitsConfig", "ToolCallState", "choices", "tool_call_state"]


class LimitsConfig(ConfigSection):
    """Byte caps that keep a hostile or broken provider from exhausting memory."""

    max_event_bytes: int = Field(1 << 20, gt=0, description="largest single text or argument fragment")
    max_tool_arguments_bytes: int = Field(4 << 20, gt=0, description="largest arguments of one tool call")
    max_message_bytes: int = Field(16 << 20, gt=0, description="largest whole message (text+reasoning+args)")


class ToolCallState:
    """A tool call being accumulated: ``id``, ``name`` and the argument fragments so far."""

    __slots__ = ("_parsed_at", "_parsed_value", "fragments", "id", "index", "name", "nbytes")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id: str | None = None
        self.name: str | None = None
        self.fragments: list[str] = []
        self.nbytes = 0
        self._parsed_at = -1
        self._parsed_value: Any = None

    @property
    def arguments(self) -> str:
        """The argument JSON received so far."""
        return "".join(self.fragments)

    def parsed_so_far(self) -> Any:
        """The arguments parsed leniently (partial JSON, via jiter), cached until more arrive."""
        if self._parsed_at != len(self.fragments):
            import jiter

            text = self.arguments
            try:
                self._parsed_value = (
                    jiter.from_json(text.encode(), partial_mode="trailing-strings") if text else {}
                )
            except ValueError:
                self._parsed_value = None
            self._parsed_at = len(self.fragments)
        return self._parsed_value


class _Choice:
    """Accumulation state of one choice (Chat Completions ``n > 1``; otherwise only choice 0)."""

    __slots__ = ("extras", "finish", "order", "parts", "remap", "tools")

    def __init__(self) -> None:
        self.parts: dict[tuple[int, str], list[str]] = {}
        self.tools: dict[int, ToolCallState] = {}
        self.remap: dict[int, int] = {}
        self.order: list[
            tuple[str, int, str]
        ] = []  # ("part", index, kind) | ("tool", index, "") | ("extra", n, "")
        self.extras: list[Extra] = []
        self.finish: str | None = None


class _State:
    __slots__ = (
        "choices",
        "flags",
        "id",
        "limits",
        "main",
        "max_event",
        "max_message",
        "model",
        "nbytes",
        "usage",
        "usage_extras",
    )

    def __init__(self, limits: Any) -> None:
        self.main = _Choice()
        self.choices: dict[int, _Choice] = {0: self.main}
        self.id: str | None = None
        self.model: str | None = None
        self.usage: dict[str, int | None] | None = None
        self.usage_extras: dict[str, Any] = {}
        self.nbytes = 0
        self.flags: dict[str, int] = {}  # source notices kept out of the content (_FLAG_EXTRAS) -> count
        self.limits = limits
        # plain ints: read for every fragment, cheaper than the pydantic model's attributes
        self.max_event: int = limits.max_event_bytes
        self.max_message: int = limits.max_message_bytes


STATE: StashKey[_State] = StashKey()

#: Extra kinds that are notices from the source, not message content: each becomes a
#: ``Message.flags`` entry ("replaced_surrogates": unpaired surrogates replaced by U+FFFD,
#: counted by :func:`flag_count`; "usage_missing": a chat stream's usage chunk was lost
#: after the last finish_reason).
_FLAG_EXTRAS = frozenset({"replaced_surrogates", "usage_missing"})


def _choice(state: _State, index: int) -> _Choice:
    ch = state.choices.get(index)
    if ch is None:
        ch = state.choices[index] = _Choice()
    return ch


# -- hooks -------------------------------------------------------------------


@hookimpl
def stream_config_schema() -> dict[str, type[BaseModel]]:
    return {"limits": LimitsConfig}


def _fresh(stream: Stream) -> None:
    state = stream.stash[STATE] = _State(stream.config.section("limits"))
    # what stream.tool_call(index) reads: the core asks the stash, not this module
    stream.stash[TOOL_CALLS] = state.main.tools


@hookimpl
def stream_start(stream: Stream) -> None:
    _fresh(stream)


@hookimpl
def stream_attempt(stream: Stream, attempt: Attempt) -> None:
    if attempt.strategy in ("retry", "restart", "fallback"):
        _fresh(stream)


@hookimpl
def stream_receive(stream: Stream, event: Event) -> None:
    state: _State = stream.stash._data[STATE]  # type: ignore[assignment]  # the dict itself: runs per event
    tp = type(event)
    if tp is Chunk:
        text = event.text  # type: ignore[union-attr]
        n = len(text)
        state.nbytes += n
        if n > state.max_event or state.nbytes > state.max_message:
            _limit(state, n, stream)
        ch = state.main if event.choice == 0 else _choice(state, event.choice)  # type: ignore[union-attr]
        key = (event.index, event.kind)  # type: ignore[union-attr]
        parts = ch.parts.get(key)
        if parts is None:
            parts = ch.parts[key] = []
            ch.order.append(("part", key[0], key[1]))
        parts.append(text)
    elif tp is ToolCallDelta:
        _tool_delta(state, event, stream)  # type: ignore[arg-type]
    elif tp is Usage:
        u: dict[str, int | None] = (
            state.usage if state.usage is not None else {"input_tokens": None, "output_tokens": None}
        )
        if event.input_tokens is not None:  # type: ignore[union-attr]
            u["input_tokens"] = event.input_tokens  # type: ignore[union-attr]
        if event.output_tokens is not None:  # type: ignore[union-attr]
            u["output_tokens"] = event.output_tokens  # type: ignore[union-attr]
        state.usage = u
        state.usage_extras.update(event.extras)  # type: ignore[union-attr]
    elif tp is Finish:
        _choice(state, event.choice).finish = event.reason  # type: ignore[union-attr]
    elif tp is ResponseInfo:
        if state.id is None:
            state.id = event.id  # type: ignore[union-attr]
        if event.model:  # type: ignore[union-attr]
            state.model = event.model  # type: ignore[union-attr]
    elif tp is Extra:
        if event.kind in _FLAG_EXTRAS:  # type: ignore[union-attr]
            kind = event.kind  # type: ignore[union-attr]
            n = event.data if isinstance(event.data, int) else 1  # type: ignore[union-attr]
            state.flags[kind] = state.flags.get(kind, 0) + n
            return
        ch = state.main
        ch.order.append(("extra", len(ch.extras), ""))
        ch.extras.append(event)  # type: ignore[arg-type]


def _limit(state: _State, n: int, stream: Stream) -> None:
    if n > state.limits.max_event_bytes:
        raise LimitExceeded(
            f"a text fragment of {n} characters exceeds limits.max_event_bytes={state.limits.max_event_bytes}",
            limit="max_event_bytes",
            provider=stream.current_source.provider,
        )
    raise LimitExceeded(
        f"the message exceeds limits.max_message_bytes={state.limits.max_message_bytes}",
        limit="max_message_bytes",
        provider=stream.current_source.provider,
    )


def _tool_delta(state: _State, d: ToolCallDelta, stream: Stream) -> None:
    ch = state.main if d.choice == 0 else _choice(state, d.choice)
    index = ch.remap.get(d.index, d.index)
    tool = ch.tools.get(index)
    if tool is not None and d.id and tool.id and d.id != tool.id:
        # Same index, new id: a server reusing an index for the next call.
        index = max(ch.tools) + 1
        tool = None
        new_index = True
    else:
        new_index = False
    frag = d.arguments
    n = len(frag)
    if n:  # caps first: a refused fragment leaves no trace in the partial message
        if n > state.max_event or state.nbytes + n > state.max_message:
            _limit(state, n, stream)
        limit = state.limits.max_tool_arguments_bytes
        if (tool.nbytes if tool is not None else 0) + n > limit:
            raise LimitExceeded(
                f"tool call {(tool.id if tool is not None else None) or d.id or index!r} arguments exceed "
                f"limits.max_tool_arguments_bytes={limit}",
                limit="max_tool_arguments_bytes",
                provider=stream.current_source.provider,
            )
    if new_index:
        ch.remap[d.index] = index
    if tool is None:
        tool = ch.tools[index] = ToolCallState(index)
        ch.order.append(("tool", index, ""))
    if d.id and tool.id is None:
        tool.id = d.id
    if d.name and tool.name is None:
        tool.name = d.name
    if n:
        tool.nbytes += n
        state.nbytes += n
        tool.fragments.append(frag)


@hookimpl(trylast=True)
def stream_message(stream: Stream) -> Message:
    state = stream.stash.get(STATE)
    complete = stream.building_complete
    if state is None:
        return Message(complete=complete, provider=stream.current_source.provider, model=stream.model)
    return _build(state, state.main, stream, complete=complete, choice=0)


def _build(state: _State, ch: _Choice, stream: Stream, *, complete: bool, choice: int) -> Message:
    text: list[str] = []
    reasoning: list[str] = []
    refusal: list[str] = []
    blocks: list[ContentBlock] = []
    tool_calls: list[ToolCall] = []
    signatures: dict[int, str] = {}
    citations: dict[int, list[Any]] = {}
    for ex in ch.extras:
        if ex.kind == "signature":
            signatures[ex.index] = signatures.get(ex.index, "") + (ex.data or "")
        elif ex.kind in ("citation", "annotation"):
            citations.setdefault(ex.index, []).append(ex.data)
    has_reasoning = {index for what, index, kind in ch.order if what == "part" and kind == "reasoning"}
    for what, index, kind in ch.order:
        if what == "part":
            joined = "".join(ch.parts[(index, kind)])
            if kind == "text":
                text.append(joined)
                blocks.append(
                    ContentBlock(type="text", index=index, text=joined, citations=citations.get(index, []))
                )
            elif kind == "reasoning":
                reasoning.append(joined)
                blocks.append(
                    ContentBlock(type="reasoning", index=index, text=joined, signature=signatures.get(index))
                )
            else:
                refusal.append(joined)
                blocks.append(ContentBlock(type="refusal", index=index, text=joined))
        elif what == "tool":
            t = ch.tools[index]
            args = t.arguments
            parsed, error = parse_arguments(args)
            call = ToolCall(
                id=t.id or f"call_{index}",
                name=t.name or "",
                arguments=args,
                parsed=parsed,
                error=error,
                index=index,
            )
            tool_calls.append(call)
            blocks.append(ContentBlock(type="tool_call", index=index, tool_call=call))
        else:
            ex = ch.extras[index]
            if ex.kind == "signature" and ex.index not in has_reasoning:
                # A thinking block that carried only a signature still needs its block, in its place.
                has_reasoning.add(ex.index)
                blocks.append(ContentBlock(type="reasoning", index=ex.index, signature=signatures[ex.index]))
            elif ex.kind == "redacted_thinking":
                blocks.append(ContentBlock(type="redacted_reasoning", index=ex.index, data=ex.data))
            elif ex.kind == "block":
                data = ex.data if isinstance(ex.data, dict) else {"value": ex.data}
                blocks.append(ContentBlock(type=str(data.get("type", "block")), index=ex.index, data=data))
    tool_calls.sort(key=lambda c: c.index)
    usage = None
    if state.usage is not None:
        usage = TokenUsage(
            input_tokens=state.usage["input_tokens"],
            output_tokens=state.usage["output_tokens"],
            extras=dict(state.usage_extras),
        )
    return Message(
        text="".join(text),
        reasoning="".join(reasoning),
        refusal="".join(refusal) if refusal else None,
        tool_calls=tool_calls,
        finish_reason=ch.finish,
        usage=usage,
        id=state.id,
        model=state.model or stream.model,
        provider=stream.current_source.provider,
        content=blocks,
        complete=complete,
        recovery=stream.recovery,  # type: ignore[arg-type]
        choice=choice,
        flags=sorted(state.flags),
    )


# -- helpers for other plugins and the stream handle ---------------------------------


def flag_count(stream: Stream, flag: str) -> int:
    """How often the source reported ``flag`` (e.g. how many surrogates it replaced) so far."""
    state = stream.stash.get(STATE)
    return 0 if state is None else state.flags.get(flag, 0)


def tool_call_state(stream: Stream, index: int) -> ToolCallState | None:
    """The accumulated state of tool call ``index`` (choice 0) so far, or ``None``."""
    state = stream.stash.get(STATE)
    return None if state is None else state.main.tools.get(index)


def choices(stream: Stream) -> list[Message]:
    """One message per choice (Chat Completions ``n > 1``), ordered by choice index."""
    state = stream.stash.get(STATE)
    if state is None:
        return []
    complete = stream.outcome == "complete"
    return [
        _build(state, state.choices[i], stream, complete=complete, choice=i) for i in sorted(state.choices)
    ]
