"""Built-in plugin ``recovery``: what to do when a stream breaks after the commit point.

The commit point is the first content event delivered to a consumer; before it
the ``retry`` plugin reopens the stream exactly. After it, what the consumer
saw has to be dealt with, and ``[recovery]`` picks one strategy per error
class (first applicable one of a list wins):

``restart``
    open the source again; the core emits a :class:`~schwarm_stream.Reset`
    first so consumers discard what they showed. The final message is the new
    attempt's (``message.recovery == "restarted"``).
``continue``
    ask the model to go on from the partial text (the source's
    ``continuation()``: assistant prefill where the model allows it, a user
    "continue" turn where not). Never with a tool call or a thinking block in
    the partial message. ``message.recovery == "continued"``; not claimed
    equal to an unbroken answer.
``fallback``
    open the next source of :func:`with_fallbacks` (another model or
    provider), after a reset. ``message.recovery == "fallback"``.
``resume``
    provider-native resume (OpenAI Responses background mode, ``starting_after``
    the last ``sequence_number``): exact. ``message.recovery == "resumed"``.
``repair``
    for a typed stream's :class:`~schwarm_stream.InvalidOutput` (``on_error = {invalid_output =
    "repair"}``): ask the model again, after a reset, with its invalid answer and pydantic's errors
    (an assistant turn and a user turn; for an Anthropic forced tool, a ``tool_result`` with
    ``is_error``). Waits and ``max_recoveries`` apply as to every recovery. ``message.recovery ==
    "fallback"`` (the request changed).
``partial``
    end now with the partial message (``complete=False``), no exception.
``raise``
    raise the typed error; ``error.partial`` is exactly what was delivered.

Rules: only errors whose class is worth another try (``error.retryable``:
drops, truncations, timeouts, 408/409/429/5xx and their in-band equivalents)
are recovered, unless ``[recovery] on_error`` names the class; at most
``max_recoveries`` recoveries per stream; a tool call that was already
delivered whole (its arguments complete JSON, or followed by more content) is
never replayed by ``restart``/``fallback``/``continue`` unless
``replay_tool_calls = true`` — the stream raises with it in ``.partial``
instead, so an agent never runs a tool twice without noticing. ``resume``
replays nothing and is always allowed.

Before the commit point, when the retry plugin gave up, this plugin falls back
to the next source of :func:`with_fallbacks` (``fallback_before_commit``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from pydantic import BaseModel, BeforeValidator, Field

from .._errors import (
    InvalidOutput,
    InvalidToolArguments,
    LimitExceeded,
    ProtocolError,
    ProviderError,
    StreamCancelled,
    StreamError,
    StreamIncomplete,
    StreamTimeout,
    TransportError,
)
from .._stash import StashKey
from ..config import ConfigSection, comma_list
from ..decisions import BACKOFF, Action, Recovery, not_retryable_reason
from ..hookspecs import hookimpl
from ..sources import Source
from ..structured import repair_source

if TYPE_CHECKING:
    from .._events import Event
    from .._message import Message, ToolCall
    from .._stream import Attempt, Stream

__all__ = ["FallbackSource", "RecoveryConfig", "error_class", "final_tool_calls", "with_fallbacks"]


def _strategy_list(value: Any) -> Any:
    """``"resume,restart"`` is the list ``["resume", "restart"]``; one name stays one strategy."""
    if isinstance(value, str) and ("," in value or value.strip().startswith("[")):
        return comma_list(value)
    return value


Strategy = Literal["restart", "continue", "fallback", "resume", "repair", "partial", "raise"]
ErrorClass = Literal[
    "incomplete",
    "timeout",
    "transport",
    "provider",
    "protocol",
    "invalid_tool_arguments",
    "invalid_output",
    "limit",
    "other",
]


class RecoveryConfig(ConfigSection):
    """What to do when a stream breaks after content was delivered (the commit point).

    A strategy, or a list of them (the first one applicable wins, e.g.
    ``["resume", "restart"]``). The default ``raise`` never shows a consumer
    anything it has to take back; ``restart`` needs consumers that honour
    :class:`~schwarm_stream.Reset` events.
    """

    mid_stream: Annotated[Strategy | list[Strategy], BeforeValidator(_strategy_list)] = Field(
        "raise", description="strategy for retryable failures after the commit point"
    )
    max_recoveries: int = Field(2, ge=0, le=20, description="recoveries per stream after the commit point")
    on_incomplete: Annotated[Strategy | list[Strategy] | None, BeforeValidator(_strategy_list)] = Field(
        None, description="strategy for a clean end without terminator; default: mid_stream"
    )
    on_error: dict[ErrorClass, Strategy | list[Strategy]] = Field(
        default_factory=dict,
        description="strategy per error class; also recovers classes that are not retryable",
    )
    replay_tool_calls: bool = Field(
        False, description="allow restart/fallback/continue after a tool call was delivered whole"
    )
    fallback_before_commit: Literal["retryable", "any", "never"] = Field(
        "retryable",
        description="use with_fallbacks() sources before content when retries are used up: for "
        "retryable errors, for any error (also 400/401/...), or never",
    )


class FallbackSource(Source):
    """A source with a chain of fallbacks: opens ``primary``; the recovery plugin moves down ``fallbacks``.

    Build it with :func:`with_fallbacks`. It describes itself (provider, model)
    as its primary.
    """

    def __init__(self, primary: Source, fallbacks: Sequence[Source]) -> None:
        if not isinstance(primary, Source) or not all(isinstance(f, Source) for f in fallbacks):
            bad = next(s for s in (primary, *fallbacks) if not isinstance(s, Source))
            raise TypeError(f"with_fallbacks() takes sources, got {type(bad).__name__}: {bad!r:.80}")
        self.primary = primary
        self.fallbacks: tuple[Source, ...] = tuple(fallbacks)
        self.provider = primary.provider
        self.model = primary.model
        self.operation = primary.operation

    def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        return self.primary.open(stream, attempt)

    def continuation(self, partial: Message) -> Source | None:
        return self.primary.continuation(partial)

    def resumption(self, stream: Stream) -> Source | None:
        return self.primary.resumption(stream)

    def __repr__(self) -> str:
        return f"<FallbackSource {self.primary!r} then {list(self.fallbacks)!r}>"


def with_fallbacks(source: Source, *fallbacks: Source) -> FallbackSource:
    """``source``, then ``fallbacks`` in order when it fails (another model or provider).

    Used by the recovery plugin: before the commit point when retries are used
    up (``[recovery] fallback_before_commit``), after it when the strategy is
    ``fallback``. Each fallback source carries its own request (model,
    messages), so build them for the same conversation::

        src = with_fallbacks(
            openai_chat(oai, model="gpt-4o", messages=msgs),
            anthropic_messages(ant, model="claude-sonnet-4-5", max_tokens=1024, messages=msgs),
        )
    """
    if not fallbacks:
        raise TypeError("with_fallbacks() needs at least one fallback source")
    return FallbackSource(source, fallbacks)


def error_class(error: StreamError) -> str:
    """The ``[recovery] on_error`` key for ``error``."""
    if isinstance(error, StreamIncomplete):
        return "incomplete"
    if isinstance(error, StreamTimeout):
        return "timeout"
    if isinstance(error, TransportError):
        return "transport"
    if isinstance(error, ProviderError):
        return "provider"
    if isinstance(error, InvalidToolArguments):
        return "invalid_tool_arguments"
    if isinstance(error, InvalidOutput):
        return "invalid_output"
    if isinstance(error, ProtocolError):
        return "protocol"
    if isinstance(error, LimitExceeded):
        return "limit"
    return "other"


def final_tool_calls(partial: Message) -> list[ToolCall]:
    """Tool calls of ``partial`` that were delivered whole (an agent may already have run them).

    Whole: the arguments are complete JSON, or more content (another block)
    followed the call, or the provider already sent a finish reason.
    """
    calls = partial.tool_calls
    if not calls:
        return []
    if partial.finish_reason is not None:
        return list(calls)
    last_block = partial.content[-1] if partial.content else None
    whole = []
    for call in calls:
        followed = last_block is not None and not (
            last_block.type == "tool_call"
            and last_block.tool_call is not None
            and last_block.tool_call.index == call.index
        )
        if followed or (call.valid and call.arguments.strip()):
            whole.append(call)
    return whole


# -- per-stream state ---------------------------------------------------------------------------


class _State:
    __slots__ = ("fallback_index", "recoveries")

    def __init__(self) -> None:
        self.recoveries = 0
        self.fallback_index = 0


STATE: StashKey[_State] = StashKey()


def _state(stream: Stream) -> _State:
    st = stream.stash.get(STATE)
    if st is None:
        st = stream.stash[STATE] = _State()
    return st


def _next_fallback(stream: Stream, st: _State) -> Source | None:
    src = stream.source
    if not isinstance(src, FallbackSource) or st.fallback_index >= len(src.fallbacks):
        return None
    return src.fallbacks[st.fallback_index]


def _strategies(stream: Stream, error: StreamError) -> tuple[str, ...] | None:
    """The configured strategies for ``error``; ``None`` when the error class is not recovered."""
    cfg: RecoveryConfig = stream.config.section("recovery")
    cls = error_class(error)
    chosen = cfg.on_error.get(cls)  # type: ignore[call-overload]
    if chosen is None and cls == "incomplete" and cfg.on_incomplete is not None:
        chosen = cfg.on_incomplete
    if chosen is None:
        if not_retryable_reason(error) is not None:
            return None  # e.g. a 400 in-band error, a byte cap, broken tool JSON: another try cannot help
        chosen = cfg.mid_stream
    return (chosen,) if isinstance(chosen, str) else tuple(chosen)


# -- hooks -------------------------------------------------------------------------------------


@hookimpl
def stream_config_schema() -> dict[str, type[BaseModel]]:
    return {"recovery": RecoveryConfig}


@hookimpl(trylast=True)
def stream_error(stream: Stream, error: StreamError) -> Recovery | str | None:
    if isinstance(error, StreamCancelled):
        return "raise"
    cfg: RecoveryConfig = stream.config.section("recovery")
    st = _state(stream)
    if not stream.committed and not isinstance(error, InvalidOutput):
        # The retry plugin declined (not retryable, attempts, deadline or budget used up).
        mode = cfg.fallback_before_commit
        if mode == "any" or (mode == "retryable" and not_retryable_reason(error) is None):
            first = _next_fallback(stream, st)
            if first is not None:
                st.fallback_index += 1
                return Recovery("fallback", source=first, reason=f"{type(error).__name__} before content")
        return "raise"

    strategies = _strategies(stream, error)
    if strategies is None or st.recoveries >= cfg.max_recoveries:
        return "raise"
    partial = stream.message
    whole_tools = bool(final_tool_calls(partial)) and not cfg.replay_tool_calls
    out_of_time = isinstance(error, StreamTimeout) and error.kind == "total"
    for strategy in strategies:
        if strategy in ("partial", "raise"):
            return strategy
        if out_of_time:
            continue  # the total timeout bounds the whole stream: only partial or raise are left
        src = stream.current_source
        nxt: Source | None = None
        if strategy == "repair":
            # the answer is the model's own, so asking again replays no tool call an agent ran
            nxt = repair_source(src, error) if isinstance(error, InvalidOutput) else None
            if nxt is None:
                continue
        elif strategy == "resume":
            if src.resumption(stream) is None:
                continue
        elif whole_tools:
            continue  # restart, fallback and continue would replay a tool call delivered whole
        elif strategy == "restart":
            pass
        elif strategy == "continue":
            if partial.tool_calls or partial.reasoning or src.continuation(partial) is None:
                continue
        elif strategy == "fallback":
            nxt = _next_fallback(stream, st)
            if nxt is None:
                continue
        backoff = stream.stash.get(BACKOFF)  # published by the plugin owning the waits (retry)
        delay = backoff(stream, error, st.recoveries + 1) if backoff is not None else 0.0
        if delay is None:
            return "raise"  # the provider asked for a longer wait than retry.max_retry_after
        st.recoveries += 1
        if strategy == "repair":
            return Recovery("fallback", source=nxt, delay=delay, reason=f"repair: {error}")
        if nxt is not None:
            st.fallback_index += 1
            return Recovery("fallback", source=nxt, delay=delay, reason=str(error))
        return Recovery(cast(Action, strategy), delay=delay, reason=str(error))
    return "raise"
