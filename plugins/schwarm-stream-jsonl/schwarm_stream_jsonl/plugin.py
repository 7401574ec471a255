"""The ``jsonl`` plugin: write every delivered event of every stream to JSON Lines.

Off until ``[jsonl] path`` is set. ``path`` may contain ``{stream_id}`` (one
file per stream) and ``{pid}``; without ``{stream_id}`` all streams of the
process append to one shared file, each line whole (a lock per file keeps
concurrent streams' lines apart). Records are described in :mod:`.format`.

What is recorded is what consumers received (``stream_event``: after
transformers, with ``seq``), plus a ``start`` and an ``end`` record per stream;
the ``end`` record carries the outcome and the error, so a replay ends the same
way.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schwarm_stream import StashKey, hookimpl

from .format import RECORD_VERSION, encode_error, encode_event

if TYPE_CHECKING:
    from schwarm_stream import Config, Event, Stream

__all__ = [
    "JsonlConfig",
    "stream_active",
    "stream_config_schema",
    "stream_end",
    "stream_event",
    "stream_start",
]


class JsonlConfig(BaseModel):
    """The ``[jsonl]`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str | None = Field(
        None, description="file to append to; {stream_id} and {pid} are replaced. None: recording is off"
    )
    flush: Literal["end", "event"] = Field(
        "end", description="flush after each stream ('end') or after every event ('event', survives crashes)"
    )


def _dumps(record: dict[str, Any]) -> str:
    """One JSON line that is always valid UTF-8, for any Python ``str`` in the record.

    A lone surrogate (half of a split emoji) cannot be written to a UTF-8 file; such a
    record is written with ``ensure_ascii=True`` (``\\ud83d`` escapes: valid JSON that
    reads back as exactly the same ``str``) instead of failing the recorder.
    """
    line = json.dumps(record, ensure_ascii=False, default=str)
    if line.isascii():
        return line
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record, ensure_ascii=True, default=str)
    return line


class _Writer:
    """One open file, shared by every stream writing to it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file: IO[str] = path.open("a", encoding="utf-8")
        self.lock = threading.Lock()
        self.users = 0

    def write(self, record: dict[str, Any], flush: bool) -> None:
        line = _dumps(record) + "\n"
        with self.lock:
            self.file.write(line)
            if flush:
                self.file.flush()


_writers: dict[Path, _Writer] = {}
_writers_lock = threading.Lock()


def _acquire(path: Path) -> _Writer:
    with _writers_lock:
        writer = _writers.get(path)
        if writer is None:
            writer = _writers[path] = _Writer(path)
        writer.users += 1
        return writer


def _release(path: Path, writer: _Writer) -> None:
    with _writers_lock:
        writer.users -= 1
        with writer.lock:
            writer.file.flush()
            if writer.users == 0:
                writer.file.close()
                _writers.pop(path, None)


class _Recording:
    __slots__ = ("flush", "path", "stream_id", "writer")

    def __init__(self, path: Path, writer: _Writer, stream_id: str, flush: bool) -> None:
        self.path = path
        self.writer = writer
        self.stream_id = stream_id
        self.flush = flush


RECORDING = StashKey[_Recording]()


def _config(stream: Stream) -> JsonlConfig:
    section = stream.config.section("jsonl")
    return section if isinstance(section, JsonlConfig) else JsonlConfig.model_validate(section or {})


@hookimpl
def stream_config_schema() -> dict[str, type[BaseModel]]:
    return {"jsonl": JsonlConfig}


@hookimpl(optionalhook=True)  # optional: older schwarm-stream versions have no such hook
def stream_active(config: Config) -> bool:
    # without [jsonl] path no stream hook of this plugin runs (costs nothing per event)
    section = config.section("jsonl")
    cfg = section if isinstance(section, JsonlConfig) else JsonlConfig.model_validate(section or {})
    return cfg.path is not None


@hookimpl
def stream_start(stream: Stream) -> None:
    cfg = _config(stream)
    if cfg.path is None:
        return
    path = Path(cfg.path.format(stream_id=stream.id, pid=os.getpid())).expanduser().resolve()
    rec = _Recording(path, _acquire(path), stream.id, cfg.flush == "event")
    stream.stash[RECORDING] = rec
    rec.writer.write(
        {
            "v": RECORD_VERSION,
            "stream": stream.id,
            "type": "start",
            "provider": stream.provider,
            "model": stream.model,
            "agent_id": stream.agent_id,
            "metadata": stream.metadata,
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        },
        rec.flush,
    )


@hookimpl
def stream_event(stream: Stream, event: Event) -> None:
    rec = stream.stash.get(RECORDING)
    if rec is not None:
        rec.writer.write(encode_event(rec.stream_id, event), rec.flush)


@hookimpl
def stream_end(stream: Stream) -> None:
    rec = stream.stash.get(RECORDING)
    if rec is None:
        return
    del stream.stash[RECORDING]
    try:
        rec.writer.write(
            {
                "stream": rec.stream_id,
                "type": "end",
                "outcome": stream.outcome,
                "error": encode_error(stream.error),
            },
            False,
        )
    finally:
        _release(rec.path, rec.writer)
