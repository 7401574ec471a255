"""Partial JSON while it streams: the value so far, what is still open, in linear total time.

Two pieces, each doing what it is good at:

- a small incremental scanner (:class:`_Scanner`) that reads every delta once and keeps the
  *structure*: which containers are open, under which key or index, and whether the value being
  written right now is a string or a number/literal. It never builds values.
- a well-kept partial-JSON parser (jiter's ``partial_mode="trailing-strings"``; the benchmark
  ``benchmarks/bench_partial.py`` measured it against ``pydantic_core.from_json(allow_partial=...)``)
  that builds the value from the whole text.

Parsing the whole text after every delta is quadratic in the answer length. :class:`PartialJSON`
parses only when the text grew by at least ``1/growth`` since the last parse (and after every delta
while the text is shorter than ``eager_bytes``), so the bytes parsed in total are at most about
``(growth + 1)`` times the answer plus ``eager_bytes`` per delta of the short start: linear.

What is still being written is marked, never guessed: a number or literal without its delimiter
(``12`` may become ``123``) is left out of the value; a string being written is kept (that is what a
UI renders) and its path is listed in :attr:`PartialJSON.incomplete`, with every open container.
"""

from __future__ import annotations

import re
from typing import Any

import jiter

__all__ = ["PartialJSON", "Path", "parse_partial"]

#: A location inside a JSON value: object keys and array indices from the root.
Path = tuple[str | int, ...]

# Outside strings: one structural character, a quote, or a run of scalar characters.
_TOKENS = re.compile(r'[{}\[\]:,"]|[^\s{}\[\]:,"]+')
# Inside strings only quotes and backslashes matter.
_IN_STRING = re.compile(r'["\\]')


def parse_partial(text: str) -> Any:
    """``text`` parsed as partial JSON (trailing strings kept); raises ``ValueError`` when it is not."""
    return jiter.from_json(text.encode(), partial_mode="trailing-strings")


class _Frame:
    """One open container: ``{`` with the current key, or ``[`` with the current index."""

    __slots__ = ("expect", "is_object", "key")

    def __init__(self, is_object: bool) -> None:
        self.is_object = is_object
        # object: "key" | "colon" | "value" | "comma"; array: "value" | "comma"
        self.expect = "key" if is_object else "value"
        self.key: str | int | None = None if is_object else 0


class _Scanner:
    """Tracks the open structure of a JSON text fed in pieces (each character is read once)."""

    __slots__ = ("_escape", "_key_parts", "frames", "in_key", "in_string", "leaf", "root_started")

    def __init__(self) -> None:
        self.frames: list[_Frame] = []
        self.in_string = False
        self.in_key = False
        self._escape = False
        self._key_parts: list[str] = []
        #: the value being written right now: "string", "scalar" (number/literal) or None
        self.leaf: str | None = None
        self.root_started = False

    def feed(self, text: str) -> None:
        pos, end = 0, len(text)
        while pos < end:
            if self.in_string:
                if self._escape:
                    self._escape = False
                    if self.in_key:
                        self._key_parts.append(text[pos])
                    pos += 1
                    continue
                m = _IN_STRING.search(text, pos)
                if m is None:
                    if self.in_key:
                        self._key_parts.append(text[pos:])
                    return
                if self.in_key:
                    self._key_parts.append(text[pos : m.start()])
                if m.group() == "\\":
                    if self.in_key:
                        self._key_parts.append("\\")
                    self._escape = True
                    pos = m.end()
                    continue
                pos = m.end()
                self.in_string = False
                if self.in_key:
                    self._end_key()
                else:
                    self._value_done()
                continue
            m = _TOKENS.search(text, pos)
            if m is None:
                if self.leaf == "scalar":
                    self._value_done()  # trailing whitespace ends a number or literal
                return
            if m.start() > pos and self.leaf == "scalar":
                self._value_done()
            tok = m.group()
            pos = m.end()
            c = tok[0]
            if c == '"':
                top = self.frames[-1] if self.frames else None
                if top is not None and top.is_object and top.expect == "key":
                    self.in_key = True
                    self._key_parts = []
                else:
                    self._value_start("string")
                self.in_string = True
            elif c in "{[":
                self._value_start(None)
                self.frames.append(_Frame(c == "{"))
            elif c in "}]":
                if self.leaf == "scalar":
                    self._value_done()
                if self.frames:
                    self.frames.pop()
                self._value_done()
            elif c == ":":
                if self.frames and self.frames[-1].is_object:
                    self.frames[-1].expect = "value"
            elif c == ",":
                if self.leaf == "scalar":
                    self._value_done()
                if self.frames:
                    top = self.frames[-1]
                    if top.is_object:
                        top.expect, top.key = "key", None
                    else:
                        top.expect = "value"
                        top.key = int(top.key or 0) + 1
            elif self.leaf != "scalar":
                self._value_start("scalar")

    def _value_start(self, leaf: str | None) -> None:
        self.root_started = True
        if self.frames:
            self.frames[-1].expect = "comma"
        self.leaf = leaf

    def _value_done(self) -> None:
        self.leaf = None

    def _end_key(self) -> None:
        self.in_key = False
        raw = "".join(self._key_parts)
        try:
            key = parse_partial(f'"{raw}"') if "\\" in raw else raw
        except ValueError:
            key = raw
        top = self.frames[-1]
        top.key = str(key)
        top.expect = "colon"

    def open_paths(self) -> tuple[Path, ...]:
        """The paths of the open containers, outermost first, then the value being written (if any)."""
        # a container or value inside a frame exists only after its key (or index) is known
        keys: list[str | int] = [-1 if f.key is None else f.key for f in self.frames]
        paths: list[Path] = [tuple(keys[:k]) for k in range(len(keys))]
        if self.leaf is not None:
            paths.append(tuple(keys))
        return tuple(paths)


class PartialJSON:
    """A JSON text fed in deltas: the best value so far and the paths still incomplete.

    :meth:`feed` returns ``True`` when a new value was parsed (see the module docstring for when);
    :attr:`value` is that value (``None`` before anything parseable), :attr:`incomplete` the paths of
    every value still open at that point, outermost first (the root is ``()``).
    """

    __slots__ = ("_n", "_parsed_n", "_parts", "_scan", "eager_bytes", "growth", "incomplete", "value")

    def __init__(self, *, growth: int = 32, eager_bytes: int = 2048) -> None:
        self.growth = growth
        self.eager_bytes = eager_bytes
        self._parts: list[str] = []
        self._n = 0
        self._parsed_n = 0
        self._scan = _Scanner()
        self.value: Any = None
        self.incomplete: tuple[Path, ...] = ()

    @property
    def text(self) -> str:
        """Everything fed so far."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def feed(self, delta: str) -> bool:
        """Add ``delta``; ``True`` when :attr:`value` was updated."""
        if not delta:
            return False
        self._parts.append(delta)
        self._n += len(delta)
        self._scan.feed(delta)
        grown = self._n - self._parsed_n
        if self._n > self.eager_bytes and grown * self.growth < self._parsed_n:
            return False
        return self.update()

    def update(self) -> bool:
        """Parse what was fed now (whatever the schedule says); ``True`` when the value changed."""
        if self._parsed_n == self._n:
            return False
        self._parsed_n = self._n
        text = self.text.lstrip()
        if not text:
            return False
        try:
            value = parse_partial(text)
        except ValueError:
            return False  # not JSON (yet, or at all): the final validation reports it
        scan = self._scan
        opened = scan.open_paths()
        if scan.leaf == "scalar":
            # a number or literal without its delimiter may still grow: left out, not guessed
            value = _without(value, opened[-1])
            opened = opened[:-1]
        self.value = value
        self.incomplete = tuple(opened)
        return True

    @property
    def complete(self) -> bool:
        """Whether the text fed so far is one whole JSON value (nothing open)."""
        scan = self._scan
        return scan.root_started and not scan.frames and not scan.in_string and scan.leaf is None


def _without(value: Any, path: Path) -> Any:
    """``value`` with the element at ``path`` removed (in place for containers); the root: ``None``."""
    if not path:
        return None
    node = value
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return value
    last = path[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        del node[last:]
    return value
