"""Replaying a recording as a :class:`~schwarm_stream.Source`.

The replay plays what the recorded stream's consumers received and ends the
way it ended: a completed stream completes, a failed one raises its error type
(``ProviderError`` with its status, ``StreamTimeout`` with its kind, ...), a
cancelled one raises ``StreamCancelled``, and a recording cut off without an
``end`` record (the process died) raises ``StreamIncomplete``.

A recorded stream that was restarted (it contains a ``Reset``) replays from the
last reset on: the attempt its final message came from.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schwarm_stream import Event, Heartbeat, Reset, Source, StreamCancelled, StreamIncomplete

from .format import decode_error, decode_event

if TYPE_CHECKING:
    from schwarm_stream import Attempt, Stream, StreamError

__all__ = ["JsonlReplaySource", "RecordedStream", "jsonl_replay", "read_recording"]


@dataclass
class RecordedStream:
    """One stream read back from a recording."""

    stream_id: str
    provider: str = "replay"
    model: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    outcome: str | None = None  # None: the recording has no end record
    error: dict[str, Any] | None = None

    def replay_events(self) -> list[Event]:
        """The events to play: from the last reset on, without heartbeats."""
        last_reset = max((i for i, e in enumerate(self.events) if isinstance(e, Reset)), default=-1)
        return [e for e in self.events[last_reset + 1 :] if not isinstance(e, Heartbeat)]

    def final_error(self) -> StreamError | None:
        """The error the replay ends with (``None`` when the recorded stream completed)."""
        if self.outcome == "complete":
            return None
        if self.outcome is None:
            return StreamIncomplete(
                f"the recording of stream {self.stream_id!r} ends without an end record",
                provider=self.provider,
            )
        if self.error is not None:
            return decode_error(self.error)
        if self.outcome == "cancelled":
            return StreamCancelled("the recorded stream was cancelled", provider=self.provider)
        return StreamIncomplete(
            f"the recorded stream ended with outcome {self.outcome!r}", provider=self.provider
        )


def read_recording(path: str | Path) -> dict[str, RecordedStream]:
    """Every stream in a recording, by id, in the order they started.

    A line that is not JSON, or not a record, is a ``ValueError`` naming the
    file and the line number.
    """
    p = Path(path)
    streams: dict[str, RecordedStream] = {}
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                sid = record["stream"]
                kind = record["type"]
                rec = streams.get(sid)
                if rec is None:
                    rec = streams[sid] = RecordedStream(sid)
                if kind == "start":
                    rec.provider = record.get("provider") or "replay"
                    rec.model = record.get("model")
                    rec.metadata = record.get("metadata") or {}
                elif kind == "end":
                    rec.outcome = record.get("outcome")
                    rec.error = record.get("error")
                else:
                    rec.events.append(decode_event(record))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{p}:{lineno}: not a schwarm-stream-jsonl record: {exc}") from exc
    return streams


class JsonlReplaySource(Source):
    """A source replaying one recorded stream; re-openable (every opening replays it again)."""

    def __init__(self, recorded: RecordedStream) -> None:
        self.recorded = recorded
        self.provider = recorded.provider
        self.model = recorded.model

    async def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        for event in self.recorded.replay_events():
            yield event.replace()
        error = self.recorded.final_error()
        if error is not None:
            raise error

    def __repr__(self) -> str:
        return f"<JsonlReplaySource stream={self.recorded.stream_id!r} events={len(self.recorded.events)}>"


def jsonl_replay(path: str | Path, stream_id: str | None = None) -> JsonlReplaySource:
    """A source replaying stream ``stream_id`` of the recording at ``path`` (the first one when ``None``)."""
    streams = read_recording(path)
    if not streams:
        raise ValueError(f"{path}: the recording holds no stream")
    if stream_id is None:
        return JsonlReplaySource(next(iter(streams.values())))
    try:
        return JsonlReplaySource(streams[stream_id])
    except KeyError:
        raise ValueError(
            f"{path}: no stream {stream_id!r} in the recording; it holds: {', '.join(streams)}"
        ) from None
