"""Built-in transformers: text smoothing, a partial-JSON view of tool-call arguments, tool-call validators.

- :class:`Smoother` releases text at word, line or sentence boundaries (with a maximum delay and a
  maximum held size), so a UI never shows half a word;
- :func:`arguments_so_far` parses a tool call's arguments while they stream, with jiter's partial
  mode, lazily and in linear total time however often it is called;
- :class:`ToolCallValidator` is the validation hook point: a callable or a pydantic model per tool,
  run once per finished tool call; a rejection fails the attempt with
  :class:`~schwarm_stream.InvalidToolArguments` (which the recovery plugins then handle).

All of them are opt-in plugins: pass them to a :class:`~schwarm_stream.Pipeline`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import jiter
from pydantic import BaseModel, ValidationError

from ._errors import InvalidToolArguments, StreamError
from ._events import Chunk, Event, Finish
from ._stash import StashKey
from .builtins.buffer import Held
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from ._message import ToolCall
    from ._stream import Attempt, Stream

__all__ = ["Smoother", "ToolCallValidator", "arguments_so_far", "validated_arguments"]

SmoothMode = Literal["word", "line", "sentence"]

# A boundary is the last character of what may be released. Searched only in new text (plus one
# character of context for sentences), so smoothing is linear in the text length.
_BOUNDARY: dict[str, re.Pattern[str]] = {
    "word": re.compile(r"\s"),
    "line": re.compile(r"[\n\r]"),
    "sentence": re.compile(r"(?<=[.!?\u2026\u3002])\s|[\n\r]"),
}


class _Smooth:
    __slots__ = ("held", "last")

    def __init__(self) -> None:
        self.held: Held | None = None
        self.last = ""  # last held character (sentence boundaries can straddle two chunks)


class Smoother:
    """Release text at ``word``, ``line`` or ``sentence`` boundaries.

    Text up to and including the last boundary in what is held is released as one chunk; the rest
    waits for the next chunk. Held text is released regardless of boundaries when it reaches
    ``max_chars`` characters or when the oldest held piece is ``max_delay`` seconds old (also while the
    provider is silent: it asks the core to flush in time, like
    :class:`~schwarm_stream.builtins.buffer.Buffer`), before any non-text event, and at the end of the
    stream. ``kinds`` restricts smoothing to those chunk kinds.
    """

    def __init__(
        self,
        mode: SmoothMode = "word",
        *,
        max_delay: float | None = 0.25,
        max_chars: int = 2048,
        kinds: Sequence[str] = ("text", "reasoning", "refusal"),
    ) -> None:
        if mode not in _BOUNDARY:
            raise ValueError(f"Smoother mode must be one of {', '.join(_BOUNDARY)}, got {mode!r}")
        if max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {max_chars}")
        if max_delay is not None and max_delay <= 0:
            raise ValueError(f"max_delay must be > 0 or None, got {max_delay}")
        self.mode = mode
        self.max_delay = max_delay
        self.max_chars = max_chars
        self.kinds = frozenset(kinds)
        self._pattern = _BOUNDARY[mode]
        self._key: StashKey[_Smooth] = StashKey()

    def _state(self, stream: Stream) -> _Smooth:
        st = stream.stash.get(self._key)
        if st is None:
            st = stream.stash[self._key] = _Smooth()
        return st

    @hookimpl
    def stream_transform(self, stream: Stream, event: Event) -> Event | Sequence[Event] | None:
        st = self._state(stream)
        held = st.held
        if type(event) is not Chunk or event.kind not in self.kinds:
            if held is None:
                return None
            st.held = None
            return (held.merged(), event)
        chunk: Chunk = event
        out: list[Event] = []
        if held is not None and not held.same_part(chunk):
            out.append(held.merged())
            held = None
        text = chunk.text
        if held is None:
            held = Held(chunk, time.monotonic() if self.max_delay is not None else 0.0)
            held.nbytes = len(text)
        else:
            held.add(text)
            held.nbytes += len(text)
        cut = self._last_boundary(st.last, text)
        if text:
            st.last = text[-1]
        if cut >= 0:
            before = held.parts[:-1]
            released = "".join(before) + text[: cut + 1]
            rest = text[cut + 1 :]
            out.append(held.chunk(released) if (before or rest) else held.merged())
            held = None
            if rest:
                held = Held(chunk.replace(text=rest, raw=None), time.monotonic() if self.max_delay else 0.0)
                held.nbytes = len(rest)
        elif held.nbytes >= self.max_chars or (
            self.max_delay is not None and time.monotonic() - held.since >= self.max_delay
        ):
            out.append(held.merged())
            held = None
        if held is not None and self.max_delay is not None and held is not st.held:
            # Started holding: released within max_delay even if the provider goes quiet.
            stream.flush_after(self.max_delay)
        st.held = held
        return out

    def _last_boundary(self, last: str, text: str) -> int:
        """Index in ``text`` of the last boundary character, or -1."""
        # Sentences get one character of context so ". " split as "." | " " is still a boundary.
        context = last if self.mode == "sentence" else ""
        found = -1
        for m in self._pattern.finditer(context + text):
            found = m.start()
        return found - len(context) if found >= len(context) else -1

    @hookimpl
    def stream_flush(self, stream: Stream) -> Sequence[Event] | None:
        st = stream.stash.get(self._key)
        if st is None or st.held is None:
            return None
        held, st.held = st.held, None
        st.last = ""
        return [held.merged()]


# -- partial JSON view of tool-call arguments ------------------------------------------------------


class _Parsed:
    __slots__ = ("at", "value")

    def __init__(self, at: int, value: Any) -> None:
        self.at = at
        self.value = value


_PARSED: StashKey[dict[int, _Parsed]] = StashKey()


def arguments_so_far(stream: Stream, index: int, *, exact: bool = False, growth: float = 1.5) -> Any:
    """Tool call ``index``'s arguments parsed so far (partial JSON, via jiter), or ``None``.

    Lazy and linear in total: the arguments are re-parsed only when they have grown by the factor
    ``growth`` since the last parse, so calling this after every fragment costs at most
    ``growth / (growth - 1)`` times one parse of the final arguments (3x for 1.5), never the quadratic
    cost of re-parsing on every fragment. Between re-parses the previous (shorter) view is returned;
    ``exact=True`` parses what has arrived right now. Incomplete strings are kept as their prefix
    (jiter's ``trailing-strings`` mode); ``None`` when nothing parseable arrived yet or the text is
    not JSON. The final, strict parse is ``stream.message.tool_calls[i].parsed``.
    """
    if growth <= 1:
        raise ValueError(f"growth must be > 1, got {growth}")
    state = stream.tool_call(index)
    if state is None:
        return None
    cache = stream.stash.get(_PARSED)
    if cache is None:
        cache = stream.stash[_PARSED] = {}
    size = state.nbytes
    prev = cache.get(index)
    if prev is not None and (prev.at == size or (not exact and size < prev.at * growth)):
        return prev.value
    text = state.arguments
    try:
        value = (
            jiter.from_json(text.encode(), partial_mode="trailing-strings", cache_mode="keys")
            if text.strip()
            else {}
        )
    except ValueError:
        value = None
    cache[index] = _Parsed(size, value)
    return value


# -- validators ------------------------------------------------------------------------------------

ToolValidator = Callable[["ToolCall"], Any] | type[BaseModel]
_VALIDATED: StashKey[dict[int, Any]] = StashKey()


def validated_arguments(stream: Stream) -> dict[int, Any]:
    """What :class:`ToolCallValidator` returned per tool-call index (pydantic instances, ...)."""
    results = stream.stash.get(_VALIDATED)
    return dict(results) if results else {}


class ToolCallValidator:
    """The validation hook point: check each tool call once, when its choice finishes.

    ``validators`` maps a tool name to a pydantic model (the parsed arguments are validated against
    it) or to a callable taking the :class:`~schwarm_stream.ToolCall`; a single callable applies to
    every tool. A validator rejects a call by raising (``ValueError``, ``ValidationError``, or a
    :class:`~schwarm_stream.StreamError` of its choice); that fails the attempt with
    :class:`~schwarm_stream.InvalidToolArguments` naming the tool and the reason. Return values are
    kept: :func:`validated_arguments`. Tools without a validator pass; ``require_known=True``
    rejects them. Subclass and override :meth:`validate` for other rules.
    """

    def __init__(
        self,
        validators: Mapping[str, ToolValidator] | Callable[[ToolCall], Any],
        *,
        require_known: bool = False,
    ) -> None:
        self.validators = validators
        self.require_known = require_known
        self._done: StashKey[bool] = StashKey()

    def validate(self, stream: Stream, call: ToolCall) -> Any:
        """Validate one finished tool call; raise to reject it, return what to keep."""
        v: Any = self.validators
        if isinstance(v, Mapping):
            v = v.get(call.name)
            if v is None:
                if self.require_known:
                    raise ValueError(f"no validator for tool {call.name!r}")
                return call.parsed
        if isinstance(v, type) and issubclass(v, BaseModel):
            if not call.valid:
                raise ValueError(call.error or "arguments are not JSON")
            return v.model_validate(call.parsed)
        return v(call)

    @hookimpl
    def stream_attempt(self, stream: Stream, attempt: Attempt) -> None:
        stream.stash[self._done] = False

    @hookimpl
    def stream_transform(self, stream: Stream, event: Event) -> None:
        # A Finish event means the accumulator (which observes before transformers) has every
        # fragment of this choice's tool calls.
        if type(event) is not Finish or event.choice != 0 or stream.stash.get(self._done):
            return None
        stream.stash[self._done] = True
        results = stream.stash.get(_VALIDATED)
        if results is None:
            results = stream.stash[_VALIDATED] = {}
        for call in stream.message.tool_calls:
            try:
                results[call.index] = self.validate(stream, call)
            except StreamError:
                raise
            except (ValueError, TypeError, ValidationError) as exc:
                raise InvalidToolArguments(
                    f"tool call {call.id!r} ({call.name}) was rejected by its validator: {exc}",
                    provider=stream.provider,
                ) from exc
        return None
