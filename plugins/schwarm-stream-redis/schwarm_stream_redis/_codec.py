"""Events to Redis entry fields and back.

Every entry has the fields ``seq`` (decimal), ``type`` and ``data`` (JSON).
Types: ``start`` (seq 0: stream identity), the event types ``chunk``,
``tool_call_delta``, ``usage``, ``finish``, ``response_info``, ``extra``,
``reset``, ``heartbeat``, and ``end`` (the terminal entry, with an extra
``status`` field: ``complete``, ``error``, ``partial``, ``cancelled``, or
``degraded`` when the producer lost Redis and went on without it), and
``events``: several consecutive events in one entry (the batched writer's
layout, :func:`encode_batch`).

The provider's raw chunk (``event.raw``) is never written: it may carry
request echoes or provider internals, and the normalized fields are enough to
rebuild the message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schwarm_stream import (
    Chunk,
    Event,
    Extra,
    Finish,
    Heartbeat,
    Reset,
    ResponseInfo,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "END_STATUSES",
    "End",
    "decode_entry",
    "encode_batch",
    "encode_end",
    "encode_event",
    "encode_event_line",
    "encode_events",
    "encode_start",
    "plain_text",
]

#: Terminal statuses: the producer's ``stream.outcome``, or ``degraded``.
END_STATUSES = frozenset({"complete", "error", "partial", "cancelled", "degraded"})


@dataclass(frozen=True, slots=True)
class End:
    """The terminal entry of a log, as a reader yields it (always last).

    ``status`` is the producer's outcome (``complete``, ``error``, ``partial``,
    ``cancelled``); ``message`` the final (or partial) message summary
    (``Message.to_dict()`` plus ``recovery``); ``error`` the error type and text
    when the stream did not complete.
    """

    seq: int
    status: str
    message: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


# json's own string encoder (C-accelerated), the one json.dumps(ensure_ascii=False) uses
_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def _json_default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # pydantic models (SDK objects in Extra.data)
    if callable(dump):
        return dump(mode="json")
    return repr(value)


def _dumps(obj: Any) -> str:
    """Compact JSON that is always valid UTF-8.

    A lone surrogate (half of a split emoji, ``"\\ud83d"``) cannot be encoded as UTF-8,
    and redis-py would fail on it while sending. Such text is written with
    ``ensure_ascii=True`` instead: every non-ASCII character becomes a ``\\uXXXX``
    escape, which is valid JSON, pure ASCII, and decodes back to exactly the same ``str``.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=True, default=_json_default)
    return text


def _chunk(e: Chunk) -> dict[str, Any]:
    return {"text": e.text, "kind": e.kind, "index": e.index, "choice": e.choice}


def _tool(e: ToolCallDelta) -> dict[str, Any]:
    return {"index": e.index, "id": e.id, "name": e.name, "arguments": e.arguments, "choice": e.choice}


def _usage(e: Usage) -> dict[str, Any]:
    return {"input_tokens": e.input_tokens, "output_tokens": e.output_tokens, "extras": e.extras}


def _finish(e: Finish) -> dict[str, Any]:
    return {"reason": e.reason, "choice": e.choice}


def _info(e: ResponseInfo) -> dict[str, Any]:
    return {"id": e.id, "model": e.model, "extras": e.extras}


def _extra(e: Extra) -> dict[str, Any]:
    return {"kind": e.kind, "index": e.index, "data": e.data}


def _reset(e: Reset) -> dict[str, Any]:
    return {"attempt": e.attempt, "strategy": e.strategy, "reason": e.reason}


def _heartbeat(e: Heartbeat) -> dict[str, Any]:
    return {}


_ENCODERS: dict[type, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    Chunk: ("chunk", _chunk),
    ToolCallDelta: ("tool_call_delta", _tool),
    Usage: ("usage", _usage),
    Finish: ("finish", _finish),
    ResponseInfo: ("response_info", _info),
    Extra: ("extra", _extra),
    Reset: ("reset", _reset),
    Heartbeat: ("heartbeat", _heartbeat),
}

_DECODERS: dict[str, Callable[[dict[str, Any], int], Event]] = {
    "chunk": lambda d, s: Chunk(d["text"], d.get("kind", "text"), d.get("index", 0), d.get("choice", 0), s),
    "tool_call_delta": lambda d, s: ToolCallDelta(
        d["index"], d.get("id"), d.get("name"), d.get("arguments", ""), d.get("choice", 0), s
    ),
    "usage": lambda d, s: Usage(d.get("input_tokens"), d.get("output_tokens"), d.get("extras") or {}, s),
    "finish": lambda d, s: Finish(d.get("reason"), d.get("choice", 0), s),
    "response_info": lambda d, s: ResponseInfo(d.get("id"), d.get("model"), d.get("extras") or {}, s),
    "extra": lambda d, s: Extra(d["kind"], d.get("index", 0), d.get("data"), s),
    "reset": lambda d, s: Reset(d["attempt"], d.get("strategy", "restart"), d.get("reason", ""), s),
    "heartbeat": lambda d, s: Heartbeat(s),
}


def _chunk_data(e: Chunk) -> str:
    """``_dumps(_chunk(e))`` without building the dict: chunks are nearly every event (hot path).

    The same text as ``json.dumps(..., separators=(",", ":"), ensure_ascii=False)``, with the
    same ASCII-escape fallback for text that is not valid UTF-8.
    """
    text = _encode_str(e.text)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _dumps(_chunk(e))  # every non-ASCII character escaped, as _dumps does
    if e.kind == "text" and e.index == 0 and e.choice == 0:
        return '{"text":' + text + _PLAIN_TAIL
    return (
        '{"text":' + text + ',"kind":' + _encode_str(e.kind) + f',"index":{e.index:d},"choice":{e.choice:d}}}'
    )


_PLAIN_TAIL = ',"kind":"text","index":0,"choice":0}'


def _plain(event: Event) -> bool:
    """A chunk whose fields the fast path can write (ints that really are ints)."""
    return type(event) is Chunk and type(event.index) is int and type(event.choice) is int


def encode_event(event: Event) -> dict[str, str]:
    """The entry fields of one delivered event (``event.seq`` must be set)."""
    if _plain(event):
        return {"seq": str(event.seq), "type": "chunk", "data": _chunk_data(event)}  # type: ignore[arg-type]
    kind, enc = _ENCODERS[type(event)]
    return {"seq": str(event.seq), "type": kind, "data": _dumps(enc(event))}


def encode_event_line(event: Event) -> str:
    """One event as a line of an ``events`` entry: ``{type}\t{data}\n`` (see :func:`encode_events`)."""
    if type(event) is Chunk:
        text = _encode_str(event.text)
        # the common case inline (ASCII text, defaults); exact ints only, since False == 0 too
        if text.isascii() and event.kind == "text" and type(event.index) is int and type(event.choice) is int:
            if event.index == 0 and event.choice == 0:
                return 'chunk\t{"text":' + text + _PLAIN_TAIL + "\n"
            return "chunk\t" + _chunk_data(event) + "\n"
    if _plain(event):
        return "chunk\t" + _chunk_data(event) + "\n"  # type: ignore[arg-type]
    kind, enc = _ENCODERS[type(event)]
    return kind + "\t" + _dumps(enc(event)) + "\n"


def encode_events(first: int, lines: list[str]) -> dict[str, str]:
    """One entry holding consecutive events ``first``, ``first + 1``, … (their :func:`encode_event_line`).

    Fields: ``seq`` (the last event's seq, also the entry id ``{seq}-1``), ``type = events``,
    ``first`` and ``data``: one line ``{type}\t{data}\n`` per event. Compact JSON never holds
    a raw tab or newline, so the lines split unambiguously. :func:`encode_batch` writes the
    same entry more compactly; readers understand both.
    """
    return {"seq": str(first + len(lines) - 1), "type": "events", "first": str(first), "data": "".join(lines)}


def _texts_line(texts: list[str]) -> str:
    """A run of plain text chunks as one line: their texts as a compact JSON array of strings."""
    line = "[" + ",".join(map(_encode_str, texts)) + "]\n"
    if not line.isascii():
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escape every non-ASCII character, as _dumps does
            line = json.dumps(texts, separators=(",", ":"), ensure_ascii=True) + "\n"
    return line


def plain_text(event: Event) -> str | None:
    """The text of a *plain* chunk (``kind = "text"``, ``index = choice = 0``: nearly every event of a
    stream), else ``None``. Exact ints only: ``False == 0``, but must be read back as ``False``."""
    if (
        type(event) is Chunk
        and event.kind == "text"
        and event.index == 0
        and event.choice == 0
        and type(event.index) is int
        and type(event.choice) is int
    ):
        return event.text
    return None


def encode_batch(items: Sequence[Event | str], first: int | None = None) -> dict[str, str]:
    """One ``events`` entry holding consecutive events (as :func:`encode_events`), compactly.

    ``items`` are events, or for a plain text chunk (:func:`plain_text`) its text alone (what the
    batched writer queues: a ``str`` is not tracked by the garbage collector, a held event is);
    ``first`` is the first one's seq (default: ``items[0].seq``). Every event's own seq must be its
    position's, else ``ValueError``: a hole is never written.

    A run of consecutive plain text chunks is one line, a JSON array of their texts
    (``["w1 ","w2 "]``); every other event is its :func:`encode_event_line`. So a batch costs one
    C-level string encode per text, and its entry is a few bytes per event instead of a JSON
    object each (what redis-py sends and the server stores). A line starting with ``[`` is such a
    run: no event type starts with ``[``.
    """
    if first is None:
        head = items[0]
        if isinstance(head, str):
            raise ValueError("encode_batch: first is required when the first item is a text")
        first = head.seq
    lines: list[str] = []
    run: list[str] = []
    seq = first
    for item in items:
        if type(item) is str:
            run.append(item)
            continue
        text = plain_text(item)  # type: ignore[arg-type]
        if text is not None:
            run.append(text)
            continue
        here = seq + len(run)
        if item.seq != here:  # type: ignore[union-attr]
            raise ValueError(f"an event with seq {item.seq} queued at seq {here}")  # type: ignore[union-attr]
        if run:
            lines.append(_texts_line(run))
            run = []
        lines.append(encode_event_line(item))  # type: ignore[arg-type]
        seq = here + 1
    if run:
        lines.append(_texts_line(run))
    return {
        "seq": str(first + len(items) - 1),
        "type": "events",
        "first": str(first),
        "data": "".join(lines),
    }


def encode_start(info: Mapping[str, Any]) -> dict[str, str]:
    """The entry fields of the start entry (seq 0)."""
    return {"seq": "0", "type": "start", "data": _dumps(dict(info))}


def encode_end(
    seq: int,
    status: str,
    *,
    message: Mapping[str, Any] | None,
    error: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The entry fields of the terminal entry."""
    if status not in END_STATUSES:
        raise ValueError(f"unknown end status {status!r}; expected one of {sorted(END_STATUSES)}")
    body = {
        "message": dict(message) if message is not None else None,
        "error": dict(error) if error else None,
    }
    return {"seq": str(seq), "type": "end", "status": status, "data": _dumps(body)}


def decode_entry(
    fields: Mapping[str, str],
) -> tuple[int, str, Event | End | dict[str, Any] | list[Event]]:
    """``(seq, type, value)`` of one entry: an event, an :class:`End`, the start entry's dict, or
    the list of events of an ``events`` entry (then ``seq`` is the last one's).

    Raises ``ValueError`` (``KeyError``/``JSONDecodeError`` included) for an entry
    this package did not write.
    """
    seq = int(fields["seq"])
    kind = fields["type"]
    if kind == "events":
        return seq, kind, _decode_events(int(fields["first"]), seq, fields["data"])
    data = json.loads(fields.get("data") or "{}")
    if kind == "end":
        return seq, kind, End(seq, fields["status"], data.get("message"), data.get("error"))
    if kind == "start":
        return seq, kind, data
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ValueError(f"unknown entry type {kind!r} at seq {seq}")
    return seq, kind, decoder(data, seq)


def _decode_events(first: int, last: int, data: str) -> list[Event]:
    """The events of one ``events`` entry (:func:`encode_batch`, :func:`encode_events`), checked to be
    ``first``..``last``."""
    lines = data.split("\n")
    if lines.pop() != "":
        raise ValueError(f"an events entry for seq {first}..{last} does not end with a newline")
    out: list[Event] = []
    decoders = _DECODERS
    loads = json.loads
    seq = first
    for line in lines:
        if line[:1] == "[":  # a run of plain text chunks
            texts = loads(line)
            if type(texts) is not list:
                raise ValueError(f"a malformed run of chunks at seq {seq}")
            out.extend([Chunk(t, "text", 0, 0, s) for s, t in enumerate(texts, seq)])
            seq += len(texts)
            continue
        kind, _, body = line.partition("\t")
        decoder = decoders.get(kind)
        if decoder is None:
            raise ValueError(f"unknown entry type {kind!r} at seq {seq}")
        out.append(decoder(loads(body), seq))
        seq += 1
    if seq != last + 1:
        raise ValueError(f"an events entry for seq {first}..{last} holds {seq - first} events")
    return out
