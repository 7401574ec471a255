"""The ``redact`` plugin: a transformer replacing secrets and personal data in delivered text.

Chunk boundaries are arbitrary, so ``sk-ant-api03-…`` may arrive as ``"sk-a"``
+ ``"nt-api03-…"``. The plugin therefore holds back the last ``window``
characters of the text (and the whole of any match that reaches into them)
until more text shows whether they belong to a secret; ``stream_flush``
releases what is held when the attempt ends, and any other event (a tool call,
the finish, a chunk of another part) releases it first, so the order of events
is kept.

What it does not change: the accumulated message. The built-in ``accumulate``
plugin reads events *before* transformers (``stream_receive``), so
``stream.message`` and ``stream_complete``'s ``message`` keep the unredacted
text; redact that yourself with :func:`schwarm_stream_redact.redact_message`
before storing or showing it. Tool-call arguments are not redacted (a
replacement could break their JSON).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schwarm_stream import Chunk, StashKey, hookimpl

from .patterns import BUILTIN_PATTERNS, Redactor

if TYPE_CHECKING:
    from schwarm_stream import Config, Event, Stream

__all__ = [
    "RedactConfig",
    "stream_active",
    "stream_config_schema",
    "stream_flush",
    "stream_start",
    "stream_transform",
]


class RedactConfig(BaseModel):
    """The ``[redact]`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="redact delivered text; off until you turn it on")
    builtin: tuple[str, ...] = Field(
        tuple(BUILTIN_PATTERNS), description="built-in patterns to use (all by default)"
    )
    patterns: dict[str, str] = Field(default_factory=dict, description="your own patterns: name = regex")
    replacement: str = Field("[REDACTED:{name}]", description="what a match becomes; {name} is the pattern")
    window: int = Field(
        64, ge=8, le=4096, description="characters held back to catch a secret split across chunks"
    )
    kinds: tuple[str, ...] = Field(("text", "reasoning", "refusal"), description="chunk kinds redacted")
    max_hold: int = Field(
        8192, ge=64, description="characters one growing match may hold back before it is released, redacted"
    )

    @field_validator("builtin")
    @classmethod
    def _known_builtins(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in names if n not in BUILTIN_PATTERNS]
        if unknown:
            raise ValueError(
                f"unknown built-in pattern(s) {unknown}; available: {', '.join(BUILTIN_PATTERNS)}"
            )
        return names

    @field_validator("patterns")
    @classmethod
    def _compilable(cls, patterns: dict[str, str]) -> dict[str, str]:
        for name, regex in patterns.items():
            if not name.isidentifier():
                raise ValueError(f"pattern name {name!r} must be an identifier")
            try:
                compiled = re.compile(regex)
            except re.error as exc:
                raise ValueError(f"pattern {name!r} is not a valid regular expression: {exc}") from None
            if compiled.match(""):
                raise ValueError(f"pattern {name!r} matches the empty string")
        return patterns

    @field_validator("replacement")
    @classmethod
    def _formattable(cls, replacement: str) -> str:
        try:
            replacement.format(name="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"replacement may only use {{name}}: {exc}") from None
        return replacement

    def redactor(self) -> Redactor:
        """The compiled redactor for this configuration (cached: compiled once per distinct config)."""
        return _compiled(self.builtin, tuple(self.patterns.items()), self.replacement)


@functools.lru_cache(maxsize=32)
def _compiled(builtin: tuple[str, ...], patterns: tuple[tuple[str, str], ...], replacement: str) -> Redactor:
    return Redactor.from_config(builtin, dict(patterns), replacement)


class _State:
    """Per stream: the text held back for one part (kind, index, choice) of the message."""

    __slots__ = ("context", "held", "key", "kinds", "limit", "redactor", "template", "window")

    def __init__(self, cfg: RedactConfig) -> None:
        self.redactor = cfg.redactor()
        self.window = cfg.window
        self.limit = max(cfg.max_hold, cfg.window)
        self.kinds = frozenset(cfg.kinds)
        self.held = ""
        self.context = ""  # the last characters released: word boundaries at the held text look at them
        self.key: tuple[str, int, int] | None = None
        self.template: Chunk | None = None

    def feed(self, chunk: Chunk) -> list[Event]:
        out: list[Event] = []
        if self.key not in (None, (chunk.kind, chunk.index, chunk.choice)):
            out = self.release()
            self.context = ""  # another part of the message: a new text
        self.key = (chunk.kind, chunk.index, chunk.choice)
        self.template = chunk
        offset = len(self.context)
        text = self.context + self.held + chunk.text
        matches = self.redactor.matches(text, offset)
        cut = len(text) - self.window
        crossing: tuple[int, int, str] | None = None
        for m in matches:
            if m[0] < cut < m[1]:  # a match reaching into the held tail may still grow: hold all of it
                crossing = m
                break
        if crossing is not None:
            if len(text) - crossing[0] <= self.limit:
                cut = crossing[0]
            else:  # a runaway match: release its start, redacted, to bound memory and latency
                before = [m for m in matches if m[1] <= crossing[0]]
                emitted = self.redactor.redact(text, before, crossing[0], offset)
                emitted += self.redactor.replacement.format(name=crossing[2])
                self._keep(text, cut)
                out.append(chunk.replace(text=emitted))
                return out
        if cut <= offset:
            self.held = text[offset:]
            return out
        emitted = self.redactor.redact(text, matches, cut, offset)
        self._keep(text, cut)
        out.append(chunk.replace(text=emitted))
        return out

    def _keep(self, text: str, cut: int) -> None:
        self.held = text[cut:]
        self.context = text[max(0, cut - 16) : cut]

    def release(self) -> list[Event]:
        if not self.held or self.template is None:
            self.held = ""
            return []
        text = self.context + self.held
        released = self.redactor.redact(text, start=len(self.context))
        self.context = text[-16:]
        self.held = ""
        return [self.template.replace(text=released, seq=0)]


STATE = StashKey[_State]()


def _config(stream: Stream) -> RedactConfig:
    section: Any = stream.config.section("redact")
    return section if isinstance(section, RedactConfig) else RedactConfig.model_validate(section or {})


@hookimpl
def stream_config_schema() -> dict[str, type[BaseModel]]:
    return {"redact": RedactConfig}


@hookimpl(optionalhook=True)  # optional: older schwarm-stream versions have no such hook
def stream_active(config: Config) -> bool:
    # not enabled: no stream hook of this plugin runs (costs nothing per event)
    section: Any = config.section("redact")
    cfg = section if isinstance(section, RedactConfig) else RedactConfig.model_validate(section or {})
    return cfg.enabled


@hookimpl
def stream_start(stream: Stream) -> None:
    cfg = _config(stream)
    if cfg.enabled:
        stream.stash[STATE] = _State(cfg)


@hookimpl
def stream_transform(stream: Stream, event: Event) -> Event | list[Event] | None:
    state = stream.stash.get(STATE)
    if state is None:
        return None
    if type(event) is Chunk and event.kind in state.kinds:
        return state.feed(event)
    if state.held:
        return [*state.release(), event]  # keep the order: held text before what follows it
    return None


@hookimpl
def stream_flush(stream: Stream) -> list[Event] | None:
    state = stream.stash.get(STATE)
    if state is None:
        return None
    released = state.release()
    state.context = ""  # the attempt is over; a next one starts a new text
    return released
