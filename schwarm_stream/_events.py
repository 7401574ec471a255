"""Hot-path event types: the normalized vocabulary every source emits.

Events are created once per provider chunk, millions of times, so they are plain
slotted dataclasses: creating one costs ~0.10 µs here against ~0.37 µs for a
``frozen=True`` dataclass (measured with ``timeit``, Python 3.11; a sealing
``__setattr__`` costs about as much). Treat them as immutable: a transformer
that changes an event returns ``event.replace(...)``.

Delivered events are immutable to observer hooks (``stream_event``,
``stream_chunk``, ``stream_tool_call_delta``, ``stream_reset``): the core takes
a snapshot of the event's fields (:data:`SNAPSHOT`, one C-level ``attrgetter``)
before them and compares it after each; a hook that assigned a field has the
event restored and fails as a :class:`PluginError` under the plugin policy, so
what consumers see is always what ``stream.message`` / ``.partial`` holds.
This costs nothing when no observer is registered (the default). In-place
changes inside a mutable field value (a ``dict`` in ``extras``) are not seen.

``seq`` is the delivery sequence number: the core sets it when the event leaves
the transformer chain, contiguous from 1 across attempts, so it is what SSE ids,
Redis logs and resume cursors use. ``raw`` is the provider's own chunk (an SDK
model, a dict, or ``None``); it is never logged or exported by the core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from operator import attrgetter
from typing import Any, Literal

__all__ = [
    "SNAPSHOT",
    "Chunk",
    "ChunkKind",
    "Event",
    "Extra",
    "Finish",
    "Heartbeat",
    "Partial",
    "Reset",
    "ResponseInfo",
    "ToolCallDelta",
    "Usage",
]

ChunkKind = Literal["text", "reasoning", "refusal"]


class _Replace:
    __slots__ = ()

    def replace(self, **changes: Any) -> Any:
        """Return a copy with ``changes`` applied (events are treated as immutable)."""
        return replace(self, **changes)  # type: ignore[type-var]


@dataclass(slots=True, eq=True, repr=True)
class Chunk(_Replace):
    """A text, reasoning (thinking) or refusal delta.

    ``index`` is the position of the part inside the message (Anthropic content
    block index, Responses output index; 0 for Chat Completions), ``choice`` the
    Chat Completions choice index (0 elsewhere).
    """

    text: str
    kind: ChunkKind = "text"
    index: int = 0
    choice: int = 0
    seq: int = 0
    raw: Any = field(default=None, compare=False, repr=False)

    is_content = True


@dataclass(slots=True, eq=True, repr=True)
class ToolCallDelta(_Replace):
    """A fragment of a tool (function) call.

    ``id`` and ``name`` usually arrive with the first fragment of a call only;
    ``arguments`` is the new fragment of the JSON arguments string (may be
    ``""``). ``index`` identifies the call within the message: the Chat
    Completions ``tool_calls[].index``, the Anthropic content block index or the
    Responses output index.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    choice: int = 0
    seq: int = 0
    raw: Any = field(default=None, compare=False, repr=False)

    is_content = True


@dataclass(slots=True, eq=True, repr=True)
class Usage(_Replace):
    """Token usage as reported by the provider (cumulative totals, not deltas).

    Fields the provider did not send are ``None``, never 0. ``extras`` keeps
    provider-specific counters (cache tokens, reasoning tokens, ...).
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    raw: Any = field(default=None, compare=False, repr=False)

    is_content = False


@dataclass(slots=True, eq=True, repr=True)
class Finish(_Replace):
    """The provider's own finish / stop reason (``stop``, ``tool_calls``, ``end_turn``, ...)."""

    reason: str | None
    choice: int = 0
    seq: int = 0
    raw: Any = field(default=None, compare=False, repr=False)

    is_content = False


@dataclass(slots=True, eq=True, repr=True)
class ResponseInfo(_Replace):
    """Identity of the provider response: its id and the model that answered.

    Emitted once per attempt, before content. ``extras`` holds protocol data an
    accumulator may need (for example the Anthropic role or a Responses status).
    """

    id: str | None = None
    model: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    raw: Any = field(default=None, compare=False, repr=False)

    is_content = False


@dataclass(slots=True, eq=True, repr=True)
class Extra(_Replace):
    """Provider data that is part of the message but not displayable text.

    ``kind`` is one of ``"signature"`` (a thinking block's signature fragment),
    ``"redacted_thinking"``, ``"citation"``, ``"block"`` (a content block of a
    type we do not model, e.g. server tool results; ``data`` is the block) or
    ``"annotation"`` (Responses annotations). Accumulated into
    :attr:`Message.content`.
    """

    kind: str
    index: int = 0
    data: Any = None
    seq: int = 0
    raw: Any = field(default=None, compare=False, repr=False)

    is_content = False


@dataclass(slots=True, eq=True, repr=True)
class Reset(_Replace):
    """Everything delivered before this event is void: discard what you showed.

    Emitted by the core when a recovery strategy restarts the stream after the
    commit point (``strategy`` says which), before the new attempt's content.
    """

    attempt: int
    strategy: str = "restart"
    reason: str = ""
    seq: int = 0
    raw: Any = field(default=None, compare=False, repr=False)

    is_content = False


@dataclass(slots=True, eq=True, repr=True)
class Heartbeat(_Replace):
    """A keep-alive for sinks (SSE comments, WebSocket pings); carries no data."""

    seq: int = 0
    raw: Any = field(default=None, compare=False, repr=False)

    is_content = False


@dataclass(slots=True, eq=True, repr=True)
class Partial(_Replace):
    """A typed stream's best partial value so far (``open(source, output=...)``, ``tools=...``).

    Not from the provider: the stream derives it from the text (or tool-call arguments) just
    delivered and yields it right after that event, to its own consumer only (hooks and sinks see
    the provider's events). ``value`` is the typed value (an instance of the partial model, every
    field optional; for a JSON schema the data), ``data`` the plain JSON parsed so far. Values
    still being written are marked, never guessed: ``incomplete`` lists their paths (object keys
    and array indices from the root, ``()`` being the root), outermost first; a number or literal
    without its delimiter is left out. ``tool_index`` is ``None`` for the answer, else the tool
    call's index, with its ``tool_name``. ``seq`` is the seq of the event it follows.
    """

    value: Any
    data: Any = None
    incomplete: tuple[tuple[str | int, ...], ...] = ()
    tool_index: int | None = None
    tool_name: str | None = None
    seq: int = 0
    raw: Any = field(default=None, compare=False, repr=False)

    is_content = False


Event = Chunk | ToolCallDelta | Usage | Finish | ResponseInfo | Extra | Reset | Heartbeat | Partial
"""Any normalized event (:class:`Partial` only on typed streams, derived by the stream itself)."""


#: Per event type: the fields an observer must not change, as one ``attrgetter``
#: returning a tuple (``raw`` left out: it is the provider's object, compared by identity
#: it would say nothing, and comparing SDK models by value is slow).
def _snapshot(tp: type) -> tuple[tuple[str, ...], Callable[[Any], Any]]:
    names = tuple(f.name for f in fields(tp) if f.name != "raw")
    return names, attrgetter(*names)


SNAPSHOT: dict[type, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    tp: _snapshot(tp) for tp in (Chunk, ToolCallDelta, Usage, Finish, ResponseInfo, Extra, Reset, Heartbeat)
}
