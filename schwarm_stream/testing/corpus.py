"""Recorded provider streams as raw SSE bodies: the file formats ``schwarm-stream replay`` reads.

A recording is either a raw HTTP body as a server sent it, used byte for byte, or JSON lines (vercel-ai's
``*.chunks.txt``, or any file whose lines are JSON payloads): one SSE *data payload* per line, no framing.
:func:`to_sse_body` turns either into complete raw SSE bodies a server could send, and
:func:`detect_protocol` tells which wire protocol a body speaks.

Framing of JSON lines: each line becomes ``data: <line>\\n\\n``; Responses and Anthropic lines also get
``event: <type>\\n`` (the Anthropic SDK skips events without an ``event:`` line); chat bodies get a
trailing ``data: [DONE]\\n\\n``.  A file may hold several consecutive responses of one multi-step run;
it is split (chat: a new ``id``; Responses: a new ``response.created``; Anthropic: a new
``message_start``).

Stdlib only.  The loader of this project's recorded-stream corpus, built on these functions, lives with
the project's tests (``tests/support/corpus.py``), not in the installed package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

__all__ = ["PROTOCOLS", "Protocol", "detect_protocol", "to_sse_body"]

Protocol = Literal["openai-chat", "openai-responses", "anthropic-messages"]
PROTOCOLS: tuple[Protocol, ...] = ("openai-chat", "openai-responses", "anthropic-messages")

_JSONL_SUFFIX = ".chunks.txt"
_HTTP_ERROR_SUFFIX = ".http-error.json"

_ANTHROPIC_TYPES = frozenset(
    {
        "message_start",
        "message_delta",
        "message_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "ping",
    }
)
# Used only when a jsonl line is not valid JSON (one vercel fixture has such lines): the first "type" key
# of an event payload is the event type, since every payload starts with it.
_TYPE_RE = re.compile(rb'"type"\s*:\s*"([^"]+)"')
_LINE_SPLIT_RE = re.compile(rb"\r\n|\r|\n")


# --------------------------------------------------------------------------- protocol detection


def _iter_sse(body: bytes) -> Iterator[tuple[str | None, bytes]]:
    """Minimal SSE split into ``(event name, data)``; only used for detection, never for replay."""
    event: str | None = None
    data: list[bytes] = []
    for line in _LINE_SPLIT_RE.split(body):
        if not line:
            if data or event is not None:
                yield event, b"\n".join(data)
            event, data = None, []
        elif line.startswith(b":"):
            continue
        else:
            name, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if name == b"event":
                event = value.decode("utf-8", "replace")
            elif name == b"data":
                data.append(value)
    if data or event is not None:
        yield event, b"\n".join(data)


def _classify(event: str | None, data: bytes) -> Protocol | None:
    if event is not None:
        if event in _ANTHROPIC_TYPES:
            return "anthropic-messages"
        if event.startswith("response."):
            return "openai-responses"
    try:
        payload = json.loads(data)
    except ValueError:
        payload = {"type": _line_type(data[:100])}
    if not isinstance(payload, dict):
        return None
    kind = payload.get("type")
    if isinstance(kind, str):
        if kind in _ANTHROPIC_TYPES:
            return "anthropic-messages"
        if kind.startswith("response."):
            return "openai-responses"
        # `error` is ambiguous: Responses error events carry sequence_number, Anthropic ones never do.
        if kind == "error" and "sequence_number" in payload:
            return "openai-responses"
    if "choices" in payload or payload.get("object") == "chat.completion.chunk":
        return "openai-chat"
    return None


def detect_protocol(body: bytes) -> Protocol:
    """Tell which wire protocol a raw SSE body speaks, from its event names and payload shapes.

    Returns ``"openai-chat"``, ``"openai-responses"`` or ``"anthropic-messages"``; raises ``ValueError``
    naming the event names / payload types it saw when none matches.
    """
    seen: list[str] = []
    for event, data in _iter_sse(body):
        found = _classify(event, data)
        if found is not None:
            return found
        if len(seen) < 8:
            seen.append(f"event={event!r} data={data[:60]!r}")
    raise ValueError(f"cannot detect the stream protocol; saw {len(seen)} event(s): {seen}")


# --------------------------------------------------------------------------- jsonl → SSE


def _line_type(line: bytes) -> str | None:
    try:
        payload = json.loads(line)
    except ValueError:
        match = _TYPE_RE.search(line)
        return match.group(1).decode() if match else None
    kind = payload.get("type") if isinstance(payload, dict) else None
    return kind if isinstance(kind, str) else None


def _chat_id(line: bytes) -> str | None:
    try:
        payload = json.loads(line)
    except ValueError:
        return None
    chunk_id = payload.get("id") if isinstance(payload, dict) else None
    return chunk_id if isinstance(chunk_id, str) and chunk_id else None


def _split_responses(lines: list[bytes], protocol: Protocol) -> list[list[bytes]]:
    """Split a multi-response jsonl file into one line list per response."""
    groups: list[list[bytes]] = []
    current_id: str | None = None  # chat only: id of the response being collected
    first = "response.created" if protocol == "openai-responses" else "message_start"
    for line in lines:
        if protocol == "openai-chat":
            # Empty/missing ids (Azure's prompt-filter chunk has id "") never start a new response.
            chunk_id = _chat_id(line)
            starts = chunk_id is not None and current_id is not None and chunk_id != current_id
            current_id = chunk_id or current_id
        else:
            starts = _line_type(line) == first
        if starts or not groups:
            groups.append([])
        groups[-1].append(line)
    return groups


def _frame(lines: list[bytes], protocol: Protocol) -> bytes:
    parts: list[bytes] = []
    for line in lines:
        if protocol != "openai-chat":
            kind = _line_type(line)
            if kind is not None:
                parts.append(b"event: " + kind.encode() + b"\n")
        parts.append(b"data: " + line + b"\n\n")
    if protocol == "openai-chat":
        parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def to_sse_body(path: Path, protocol: str | None = None, *, json_lines: bool | None = None) -> list[bytes]:
    """Return one raw SSE HTTP body per response recorded in ``path``.

    ``*.chunks.txt`` files are treated as jsonl (framed and split as described in the module docstring),
    ``*.http-error.json`` files raise ``ValueError`` (not streams), anything else is raw SSE returned byte
    for byte as a single body.  ``protocol`` is only needed for jsonl; it is detected when omitted.
    ``json_lines`` overrides the name-based choice (the CLI recognises JSON-lines files by content).
    """
    path = Path(path)
    if path.name.endswith(_HTTP_ERROR_SUFFIX):
        raise ValueError(f"{path.name} is an HTTP error record, not a stream")
    raw = path.read_bytes()
    if not (path.name.endswith(_JSONL_SUFFIX) if json_lines is None else json_lines):
        return [raw]
    lines = [line.strip() for line in _LINE_SPLIT_RE.split(raw)]
    lines = [line for line in lines if line]
    if protocol is None:
        protocol = detect_protocol(b"".join(b"data: " + line + b"\n\n" for line in lines))
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return [_frame(group, protocol) for group in _split_responses(lines, protocol)]
