"""An in-process event log per channel: a ring buffer that live subscribers follow and resumes replay.

A *channel* is what a browser subscribes to: the delivered events of one stream, or of several streams
in a row (an agent loop's turns). Each appended entry gets the next id (1, 2, 3, ...); an entry holds the
already formatted items (SSE events / WebSocket messages) of one delivered event, so every subscriber
shares one encoding. The log keeps the last ``history`` entries: a subscriber resuming after an id that
has left the window gets :class:`ResumeGone` (HTTP 410), an unknown channel :class:`UnknownChannel`
(HTTP 404), a malformed or future id :class:`InvalidLastEventId` (HTTP 400).

The producer never waits for subscribers: appending is O(1) and wakes the waiting subscribers. A
subscriber that falls more than ``history`` entries behind is cut with :class:`ResumeGone`, like a
reconnect would be.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._errors import SchwarmStreamError

__all__ = [
    "HEARTBEAT",
    "ChannelRegistry",
    "Entry",
    "EventLog",
    "InvalidLastEventId",
    "Item",
    "ResumeError",
    "ResumeGone",
    "UnknownChannel",
    "parse_last_event_id",
]


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` made encodable as UTF-8: a surrogate pair becomes its character, a lone half U+FFFD.

    Python strs may hold surrogate code points (e.g. one JSON ``\\uD83D`` escape per delta); they cannot
    be written as UTF-8, so every sink passes its output through here and never fails on any str.
    """
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def clean_item(item: Item) -> Item:
    """An :class:`Item` whose event name and data are valid UTF-8 text (see :func:`clean_text`)."""
    event = item.event if item.event is None else clean_text(item.event)
    data = clean_text(item.data)
    if event is item.event and data is item.data:
        return item
    return Item(event, data, item.is_json)


class Item(NamedTuple):
    """One formatted output unit: an SSE event or a WebSocket message.

    ``event`` is the SSE event name (``None``: the default ``message``), ``data`` the payload text,
    ``is_json`` whether ``data`` is JSON text (WebSocket messages embed it as a value, not a string).
    """

    event: str | None
    data: str
    is_json: bool = True


@dataclass(frozen=True, slots=True)
class Entry:
    """The items of one delivered event (or of a stream's end), with the id a client resumes after."""

    id: int
    items: tuple[Item, ...]


class _Heartbeat:
    __slots__ = ()

    def __repr__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT: Any = _Heartbeat()
"""Yielded by :meth:`EventLog.follow` when nothing happened for ``heartbeat`` seconds."""


class ResumeError(SchwarmStreamError):
    """A subscription or resume request that cannot be served; ``status`` is the HTTP status to answer."""

    status = 400


class UnknownChannel(ResumeError, LookupError):
    """No channel with that id (never existed, or expired): HTTP 404."""

    status = 404


class ResumeGone(ResumeError):
    """The requested position has left the ring buffer: HTTP 410; the client must start over."""

    status = 410


class InvalidLastEventId(ResumeError, ValueError):
    """``Last-Event-ID`` is not a decimal id this channel has issued: HTTP 400."""

    status = 400


_ID = re.compile(r"[0-9]{1,18}")


def parse_last_event_id(value: str | None) -> int | None:
    """``Last-Event-ID`` as a bounded integer (``None`` or empty: start from the beginning).

    Parsed strictly (1-18 ASCII digits), never interpolated anywhere: anything else is
    :class:`InvalidLastEventId`.
    """
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if not _ID.fullmatch(value):
        raise InvalidLastEventId(f"Last-Event-ID must be a decimal event id, got {value[:40]!r}")
    return int(value)


class EventLog:
    """The ring buffer of one channel. See the module docstring."""

    def __init__(self, channel_id: str, *, history: int = 1024, formatter: Any = None) -> None:
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.id = channel_id
        self.history = history
        self.formatter = formatter
        self.last_id = 0
        self.closed = False
        self._entries: deque[Entry] = deque(maxlen=history)
        self._prefix: list[Item] = []
        self._changed = asyncio.Event()
        self.subscribers = 0

    # -- producer side ----------------------------------------------------------------------------

    def prefix(self, items: list[Item]) -> None:
        """Hold ``items`` and send them with the next entry (keeps ids equal to event sequence numbers)."""
        self._prefix.extend(clean_item(i) for i in items)

    def append(self, items: list[Item] | tuple[Item, ...]) -> int:
        """Append one entry and wake the subscribers; returns its id. Entries may be empty."""
        if self.closed:
            raise RuntimeError(f"channel {self.id!r} is closed")
        if self._prefix:
            items = (*self._prefix, *items)
            self._prefix = []
        self.last_id += 1
        self._entries.append(Entry(self.last_id, tuple(clean_item(i) for i in items)))
        self._wake()
        return self.last_id

    def close(self, items: list[Item] | tuple[Item, ...] = ()) -> None:
        """Append a final entry (if ``items`` or held prefix items) and end every subscription."""
        if self.closed:
            return
        if items or self._prefix:
            self.append(items)
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        # Swap the event so waiters that wake up later still see a fresh one (no lost wake-ups).
        self._changed.set()
        self._changed = asyncio.Event()

    # -- subscriber side --------------------------------------------------------------------------

    @property
    def first_id(self) -> int:
        """The oldest id still in the buffer (``last_id + 1`` when empty)."""
        return self._entries[0].id if self._entries else self.last_id + 1

    def check(self, after: int | None) -> int:
        """Validate a resume position; returns the cursor (0 = from the start)."""
        cursor = after or 0
        if cursor > self.last_id:
            raise InvalidLastEventId(
                f"Last-Event-ID {cursor} is ahead of channel {self.id!r} (last id {self.last_id})"
            )
        if cursor < self.first_id - 1:
            raise ResumeGone(
                f"channel {self.id!r} no longer holds events after id {cursor} "
                f"(oldest kept: {self.first_id}, history={self.history})"
            )
        return cursor

    def entries_after(self, cursor: int) -> list[Entry]:
        """The buffered entries with ids greater than ``cursor`` (raises :class:`ResumeGone` if lost)."""
        cursor = self.check(cursor)
        start = cursor - self.first_id + 1
        if start >= len(self._entries):
            return []
        return [self._entries[i] for i in range(start, len(self._entries))]

    async def follow(
        self, after: int | None = None, *, heartbeat: float | None = None
    ) -> AsyncGenerator[Any, None]:
        """Replay the entries after ``after``, then follow live ones until the channel closes.

        Yields :class:`Entry` objects, and :data:`HEARTBEAT` after ``heartbeat`` idle seconds.
        Raises :class:`ResumeGone` / :class:`InvalidLastEventId` at once for a bad ``after``, and
        :class:`ResumeGone` later if this subscriber falls more than ``history`` entries behind.
        """
        cursor = self.check(after)
        self.subscribers += 1
        try:
            while True:
                changed = self._changed
                batch = self.entries_after(cursor)
                for entry in batch:
                    cursor = entry.id
                    yield entry
                if batch:
                    continue
                if self.closed:
                    return
                try:
                    if heartbeat is None:
                        await changed.wait()
                    else:
                        await asyncio.wait_for(changed.wait(), heartbeat)
                except asyncio.TimeoutError:
                    yield HEARTBEAT
        finally:
            self.subscribers -= 1


class ChannelRegistry:
    """Channels by id. Closed channels are kept (for late resumes) up to ``keep_closed``, oldest evicted."""

    def __init__(self, *, history: int = 1024, keep_closed: int = 256) -> None:
        self.history = history
        self.keep_closed = keep_closed
        self._logs: dict[str, EventLog] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()

    def open(self, channel_id: str | None = None, *, formatter: Any = None) -> EventLog:
        """Create a channel (a random 128-bit id unless given); an existing open one is returned."""
        cid = channel_id or uuid.uuid4().hex
        log = self._logs.get(cid)
        if log is not None and not log.closed:
            return log
        log = EventLog(cid, history=self.history, formatter=formatter)
        self._logs[cid] = log
        self._closed.pop(cid, None)
        return log

    def get(self, channel_id: str) -> EventLog:
        """The channel, or :class:`UnknownChannel`."""
        log = self._logs.get(channel_id)
        if log is None:
            raise UnknownChannel(f"no channel {channel_id[:64]!r}")
        return log

    def closed(self, log: EventLog) -> None:
        """Record that ``log`` closed; evict the oldest closed channels beyond ``keep_closed``."""
        self._closed[log.id] = None
        while len(self._closed) > self.keep_closed:
            old, _ = self._closed.popitem(last=False)
            self._logs.pop(old, None)

    def __contains__(self, channel_id: object) -> bool:
        return channel_id in self._logs

    def __len__(self) -> int:
        return len(self._logs)
