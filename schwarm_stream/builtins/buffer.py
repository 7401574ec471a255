"""Built-in plugin ``buffer``: aggregate text deltas by count, bytes or time before delivery.

Providers send many tiny deltas (often one token each); a browser or a log sink is better served by
fewer, larger ones. :class:`Buffer` is a transformer that holds consecutive text chunks of the same part
(same ``kind``, ``index`` and ``choice``) and releases them as one merged :class:`~schwarm_stream.Chunk`
when any configured limit is reached:

- ``max_events``: that many chunks are held;
- ``max_bytes``: the held text reaches that many UTF-8 bytes;
- ``max_delay``: the oldest held chunk is that many seconds old.

Held text is always released *before* the next non-text event (tool-call deltas, usage, finish, ...),
before a chunk of another part, and through ``stream_flush``: at the end of the stream, before an
error is handled and before a reset. So order is preserved and nothing is lost or carried across
attempts. The accumulator observes events before transformers (``stream_receive``), so the final
message is the same with or without the buffer.

**Time.** ``max_delay`` is checked when a chunk arrives (one clock read per chunk, only when it is
set), and when the buffer starts holding it asks the core to flush within ``max_delay``
(:meth:`Stream.flush_after`): if the provider goes quiet, the held text is delivered on time anyway.
Use ``max_events`` or ``max_bytes`` alongside ``max_delay`` to bound how much is held.

Opt-in (it changes what consumers see, so it is not registered by default)::

    pipeline = schwarm_stream.Pipeline([Buffer(max_events=8, max_delay=0.05)])

or configure it from the ``[buffer]`` config section: ``Pipeline([Buffer()], config={"buffer":
{"max_bytes": 256}})``. Keyword arguments given to ``Buffer(...)`` win over the section.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from .._errors import ConfigError
from .._events import Chunk, Event
from .._stash import StashKey
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from .._stream import Stream
    from ..config import Config

__all__ = ["Buffer", "BufferConfig", "Held", "utf8_len"]


class BufferConfig(BaseModel):
    """The ``[buffer]`` config section; at least one limit must be set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_events: int | None = Field(None, ge=1, description="release after this many chunks are held")
    max_bytes: int | None = Field(
        None, ge=1, description="release when held text reaches this many UTF-8 bytes"
    )
    max_delay: float | None = Field(
        None, gt=0, description="release when the oldest held chunk is this old (checked on arrival)"
    )


def utf8_len(text: str) -> int:
    """UTF-8 length without encoding ASCII text (the common case)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class Held:
    """Text chunks of one part held back by a transformer (shared by the buffer and the smoothers)."""

    __slots__ = ("choice", "count", "first", "index", "kind", "nbytes", "parts", "since")

    def __init__(self, chunk: Chunk, since: float) -> None:
        self.kind = chunk.kind
        self.index = chunk.index
        self.choice = chunk.choice
        self.first = chunk
        self.parts: list[str] = [chunk.text]
        self.count = 1
        self.nbytes = 0
        self.since = since

    def same_part(self, chunk: Chunk) -> bool:
        return chunk.kind == self.kind and chunk.index == self.index and chunk.choice == self.choice

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.count += 1

    def text(self) -> str:
        return "".join(self.parts)

    def merged(self) -> Chunk:
        """One chunk for everything held (the original object when only one was held)."""
        if self.count == 1:
            return self.first
        return Chunk(text=self.text(), kind=self.kind, index=self.index, choice=self.choice)

    def chunk(self, text: str) -> Chunk:
        """A chunk of this part with ``text``."""
        return Chunk(text=text, kind=self.kind, index=self.index, choice=self.choice)


_NOTHING: tuple[Event, ...] = ()  # "held: deliver nothing now", shared (an empty tuple is immutable)


class Buffer:
    """The buffer transformer (see the module docstring). One instance per pipeline."""

    def __init__(
        self,
        *,
        max_events: int | None = None,
        max_bytes: int | None = None,
        max_delay: float | None = None,
    ) -> None:
        given = {"max_events": max_events, "max_bytes": max_bytes, "max_delay": max_delay}
        self._explicit = {k: v for k, v in given.items() if v is not None}
        self.settings = BufferConfig.model_validate(self._explicit)
        self._key: StashKey[Held | None] = StashKey()

    # -- configuration ----------------------------------------------------------------------------

    @hookimpl
    def stream_config_schema(self) -> dict[str, type[BaseModel]]:
        return {"buffer": BufferConfig}

    @hookimpl
    def stream_configure(self, config: Config) -> None:
        section = config.section("buffer")
        base = section.model_dump() if isinstance(section, BaseModel) else dict(section or {})
        self.settings = BufferConfig(**{**base, **self._explicit})
        s = self.settings
        if s.max_events is None and s.max_bytes is None and s.max_delay is None:
            raise ConfigError(
                "buffer: set at least one of max_events, max_bytes, max_delay "
                "(Buffer(...) arguments or the [buffer] config section)",
                key="buffer",
            )

    # -- per stream -------------------------------------------------------------------------------

    @hookimpl
    def stream_transform(self, stream: Stream, event: Event) -> Event | Sequence[Event] | None:
        # Runs for every event: one stash lookup, and no new list while chunks are only held.
        key = self._key
        stash = stream.stash
        held = stash.get(key)
        if type(event) is not Chunk:
            if held is None:
                return None
            stash[key] = None
            return (held.merged(), event)
        s = self.settings
        max_delay = s.max_delay
        max_bytes = s.max_bytes
        max_events = s.max_events
        released: Chunk | None = None
        if held is not None and held.same_part(event):
            held.parts.append(event.text)
            held.count += 1
        else:
            released = None if held is None else held.merged()
            held = Held(event, time.monotonic() if max_delay is not None else 0.0)
        if max_bytes is not None:
            held.nbytes += utf8_len(event.text)
        if (
            (max_events is not None and held.count >= max_events)
            or (max_bytes is not None and held.nbytes >= max_bytes)
            or (max_delay is not None and time.monotonic() - held.since >= max_delay)
        ):
            stash[key] = None
            return (held.merged(),) if released is None else (released, held.merged())
        if max_delay is not None and held.count == 1:
            # Started holding: release within max_delay even if the provider goes quiet.
            stream.flush_after(max_delay)
        stash[key] = held
        return _NOTHING if released is None else (released,)

    @hookimpl
    def stream_flush(self, stream: Stream) -> Sequence[Event] | None:
        held = stream.stash.get(self._key)
        if held is None:
            return None
        stream.stash[self._key] = None
        return [held.merged()]

    def stats(self, stream: Stream) -> dict[str, Any]:
        """What this buffer holds for ``stream`` right now (for debugging and tests)."""
        held = stream.stash.get(self._key)
        return {"held_chunks": 0 if held is None else held.count}
