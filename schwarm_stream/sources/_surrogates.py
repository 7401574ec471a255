"""Split and unpaired UTF-16 surrogates in provider deltas (issue 14, item 2).

Some OpenAI-compatible servers escape one astral character (an emoji) as two
JSON escapes, ``\\uD83D`` and ``\\uDE00``, and send them in *separate* chunks:
a delta then ends in a lone high surrogate and the next one starts with the low
one. Python's JSON decoder keeps such half-characters, and no UTF-8 writer
(SSE sinks, Starlette, Redis, JSONL) can encode them.

:class:`Surrogates` is the one place this is repaired, shared by every source
(SDK-backed and native, all three protocols), for text, reasoning and refusal
chunks and tool-call argument fragments:

- a trailing high surrogate is held back one delta (per part: kind, index and
  choice) and joined with the next delta's leading low surrogate;
- any surrogate left unpaired (either kind, anywhere in a delta, or still held
  when the part finishes or the stream ends) becomes U+FFFD and is counted: an
  :class:`~schwarm_stream.Extra` of kind ``"replaced_surrogates"`` (``data`` =
  how many in that delta) follows the repaired delta, and the message carries
  the flag ``"replaced_surrogates"``.

The cost for ordinary deltas is one ``str.isascii()`` (constant time) per
delta, plus a C regex scan for non-ASCII ones.
"""

from __future__ import annotations

import re
from typing import Any

from .._events import Chunk, Event, Extra, Finish, ToolCallDelta

__all__ = ["REPLACED", "Surrogates"]

#: The Extra kind (and Message flag) that counts replaced surrogates.
REPLACED = "replaced_surrogates"

_ANY = re.compile("[\ud800-\udfff]")
_search = _ANY.search


def _repair(s: str) -> tuple[str, int]:
    """``s`` with surrogate pairs joined and every lone surrogate replaced by U+FFFD; and how many were."""
    fixed = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return fixed, fixed.count("\ufffd") - s.count("\ufffd")


class Surrogates:
    """Per-stream repair state: feed it each payload's events (:meth:`fix`), then :meth:`end`."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held: dict[
            tuple[Any, int, int], tuple[Event, str]
        ] = {}  # part -> (its last event, the high half)

    def fix(self, out: list[Event]) -> list[Event]:
        """The events of one payload, repaired; ``out`` itself (unchanged) in the common case."""
        if self.held:
            return self._slow(out)
        for ev in out:
            tp = type(ev)
            if tp is Chunk:
                s = ev.text  # type: ignore[union-attr]
            elif tp is ToolCallDelta:
                s = ev.arguments  # type: ignore[union-attr]
            else:
                continue
            if not s.isascii() and _search(s) is not None:  # isascii: constant time
                return self._slow(out)
        return out

    def _slow(self, out: list[Event]) -> list[Event]:
        res: list[Event] = []
        held = self.held
        for ev in out:
            tp = type(ev)
            if tp is Chunk:
                key: tuple[Any, int, int] = (ev.kind, ev.index, ev.choice)  # type: ignore[union-attr]
                s = ev.text  # type: ignore[union-attr]
            elif tp is ToolCallDelta:
                key = (None, ev.index, ev.choice)  # type: ignore[union-attr]
                s = ev.arguments  # type: ignore[union-attr]
            else:
                if tp is Finish:  # the part(s) of this choice are over: nothing will pair what is held
                    for k in [k for k in held if k[2] == ev.choice]:  # type: ignore[union-attr]
                        self._flush(k, res)
                res.append(ev)
                continue
            prior = held.pop(key, None)
            if prior is not None:
                s = prior[1] + s
            if s and "\ud800" <= s[-1] <= "\udbff":
                held[key] = (ev, s[-1])
                s = s[:-1]
            n = 0
            if s and not s.isascii() and _ANY.search(s) is not None:
                s, n = _repair(s)
            if tp is Chunk:
                if not s:
                    continue  # all of it held back
                ev.text = s  # type: ignore[union-attr]
            else:
                ev.arguments = s  # type: ignore[union-attr]
            res.append(ev)
            if n:
                res.append(Extra(REPLACED, key[1], n, 0, ev.raw))
        return res

    def _flush(self, key: tuple[Any, int, int], res: list[Event]) -> None:
        ev, _ = self.held.pop(key)
        if type(ev) is Chunk:
            res.append(Chunk("\ufffd", ev.kind, ev.index, ev.choice, 0, ev.raw))
        else:
            res.append(ToolCallDelta(ev.index, None, None, "\ufffd", ev.choice, 0, ev.raw))  # type: ignore[union-attr]
        res.append(Extra(REPLACED, key[1], 1, 0, ev.raw))

    def end(self) -> list[Event]:
        """At the protocol's terminator: every half still held, as U+FFFD (counted)."""
        res: list[Event] = []
        for k in list(self.held):
            self._flush(k, res)
        return res
