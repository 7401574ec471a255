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

Gemini recordings other than raw SSE (JSON lines of ``GenerateContentResponse``, a JSON array of them,
googleapis/js-genai's replay JSON) are read by :func:`gemini_recordings` into SSE bodies, each marked as
a Gemini API or a Vertex AI answer.

Stdlib only.  The loader of this project's recorded-stream corpus, built on these functions, lives with
the project's tests (``tests/support/corpus.py``), not in the installed package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "PROTOCOLS",
    "GeminiRecording",
    "Protocol",
    "detect_protocol",
    "gemini_recordings",
    "is_gemini_response",
    "is_vertex_response",
    "to_sse_body",
]

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


# --------------------------------------------------------------------------- Gemini / Vertex AI recordings

#: The top-level fields of a ``GenerateContentResponse`` (camelCase, as on the wire); a JSON object with none
#: of them is not one.
_GEMINI_FIELDS = frozenset(
    {"candidates", "promptFeedback", "usageMetadata", "modelVersion", "responseId", "createTime", "error"}
)


@dataclass(frozen=True)
class GeminiRecording:
    """One recorded Gemini ``streamGenerateContent`` answer, as :func:`gemini_recordings` reads it.

    ``body`` is the answer as SSE (``data: <json>`` and a CRLF blank line per response, as the API frames
    it) or, when ``status`` is not 200, the error body. ``vertex`` says the answer came from Vertex AI
    (its responses carry ``createTime``, or the recorded request went to a ``publishers/.../models`` path),
    which google-genai parses with its Vertex parser. ``where`` names it in the file (``line 3``,
    ``interactions[1]``).
    """

    body: bytes
    vertex: bool
    where: str
    status: int = 200


def is_gemini_response(payload: Any) -> bool:
    """Whether ``payload`` (parsed JSON) has the shape of a ``GenerateContentResponse`` or a Google error."""
    if not isinstance(payload, dict) or not (_GEMINI_FIELDS & payload.keys()):
        return False
    error = payload.get("error")
    return error is None or isinstance(error, dict)  # Ollama's errors are strings


def is_vertex_response(payload: Any) -> bool:
    """Whether a response carries what only Vertex AI fills: ``createTime``, ``usageMetadata.trafficType``."""
    if not isinstance(payload, dict):
        return False
    usage = payload.get("usageMetadata")
    return "createTime" in payload or (isinstance(usage, dict) and "trafficType" in usage)


def _sse(responses: list[bytes]) -> bytes:
    return b"".join(b"data: " + r + b"\r\n\r\n" for r in responses)


def _compact(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def gemini_recordings(path: Path) -> list[GeminiRecording] | None:
    """The Gemini answers recorded in ``path``, or ``None`` when it holds none of these forms:

    - JSON lines: one ``GenerateContentResponse`` a line (vercel/ai's ``*.chunks.txt``); a new non-empty
      ``responseId`` starts a new answer;
    - a JSON array of ``GenerateContentResponse`` objects (``streamGenerateContent`` without ``alt=sse``);
    - a googleapis/js-genai replay recording: ``{"interactions": [{"request": {"url"}, "response":
      {"statusCode", "bodySegments"}}]}``, each interaction one answer (its segments the SSE events' JSON).

    Raw SSE bodies are not read here (they are served as they are). Raises ``ValueError`` naming the file
    and the line or the interaction when the file is one of these forms but broken: a line that is not
    JSON or not a response, an interaction without its response.
    """
    path = Path(path)
    raw = path.read_bytes()
    text = raw.removeprefix(b"\xef\xbb\xbf")
    if not text.lstrip(b" \t\r\n").startswith((b"{", b"[")):
        return None
    name = path.name
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and "interactions" in whole:
        return _genai_replay(name, whole)
    if isinstance(whole, list):
        if not whole or not all(is_gemini_response(r) for r in whole):
            return None
        return [
            GeminiRecording(_sse([_compact(r) for r in whole]), any(map(is_vertex_response, whole)), "array")
        ]
    if isinstance(whole, dict) and b"\n" in text.strip() and is_gemini_response(whole):
        # one response, pretty-printed over several lines
        return [GeminiRecording(_sse([_compact(whole)]), is_vertex_response(whole), "the file")]
    lines = [(n, line.strip()) for n, line in enumerate(_LINE_SPLIT_RE.split(text), start=1)]
    lines = [(n, line) for n, line in lines if line]
    first = lines[0][1]
    try:
        head = json.loads(first)
    except ValueError:
        return None  # not recognisably Gemini: the caller's other readers say what is wrong with it
    if not is_gemini_response(head):
        return None
    groups: list[tuple[int, list[bytes], bool]] = []
    current_id: str | None = None
    for number, line in lines:
        try:
            payload = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{name}: line {number} is not valid JSON ({exc})") from None
        if not is_gemini_response(payload):
            found = sorted(payload)[:6] if isinstance(payload, dict) else type(payload).__name__
            raise ValueError(
                f"{name}: line {number} is not a Gemini GenerateContentResponse (found {found}; expected "
                f"one of {', '.join(sorted(_GEMINI_FIELDS))})"
            )
        rid = payload.get("responseId")
        rid = rid if isinstance(rid, str) and rid else None
        if not groups or (rid is not None and current_id is not None and rid != current_id):
            groups.append((number, [], False))
        current_id = rid or current_id
        start, members, vertex = groups[-1]
        members.append(line)
        groups[-1] = (start, members, vertex or is_vertex_response(payload))
    return [GeminiRecording(_sse(members), vertex, f"line {start}") for start, members, vertex in groups]


def _genai_replay(name: str, recording: dict[str, Any]) -> list[GeminiRecording]:
    interactions = recording["interactions"]
    if not isinstance(interactions, list) or not interactions:
        raise ValueError(f"{name}: 'interactions' is not a non-empty list of recorded requests")
    out = []
    for i, interaction in enumerate(interactions):
        where = f"interactions[{i}]"
        if not isinstance(interaction, dict):
            raise ValueError(f"{name}: {where} is not a recorded request and response")
        response = interaction.get("response")
        segments = response.get("bodySegments") if isinstance(response, dict) else None
        if not isinstance(response, dict) or not isinstance(segments, list):
            raise ValueError(f"{name}: {where}.response has no 'bodySegments' list")
        request = interaction.get("request")
        url = request.get("url") if isinstance(request, dict) else None
        if not isinstance(url, str) or ":streamGenerateContent" not in url:
            raise ValueError(f"{name}: {where}.request.url is {url!r}, not a streamGenerateContent request")
        status = response.get("statusCode", 200)
        if not isinstance(status, int):
            raise ValueError(f"{name}: {where}.response.statusCode is {status!r}, not a number")
        for j, segment in enumerate(segments):
            if not is_gemini_response(segment):
                raise ValueError(
                    f"{name}: {where}.response.bodySegments[{j}] is not a GenerateContentResponse"
                )
        vertex = "/publishers/" in url or "/endpoints/" in url or any(map(is_vertex_response, segments))
        if status == 200:
            body = _sse([_compact(s) for s in segments])
        else:  # an error answer: its (first) segment is the error body
            body = _compact(
                segments[0] if segments else {"error": {"code": status, "message": "", "status": ""}}
            )
        out.append(GeminiRecording(body, vertex, where, status))
    return out
