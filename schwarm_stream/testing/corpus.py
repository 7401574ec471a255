"""Loader for the recorded LLM stream corpus (``shared/corpus``).

The corpus holds real (and a few hand-made) provider streams collected from public SDK test fixtures;
``manifest.json`` describes every file.  This module turns each file into complete raw SSE HTTP bodies,
byte-exact where the source is a raw recording, so tests can replay them through a mock transport.

Stdlib only: no SDK imports here (the SDK-based oracle lives in :mod:`schwarm_stream.testing.oracle`).

File formats (manifest ``fmt``):

* ``sse``: a raw HTTP body as recorded; used byte for byte as one body.
* ``jsonl`` (vercel-ai ``*.chunks.txt``): one SSE *data payload* per line, no framing.  Each line becomes
  ``data: <line>\\n\\n``; Responses and Anthropic lines also get ``event: <type>\\n`` (the Anthropic SDK skips
  events without an ``event:`` line); chat bodies get a trailing ``data: [DONE]\\n\\n``.  Some files hold
  several consecutive responses of one multi-step run; they are split (chat: a new ``id``; Responses: a new
  ``response.created``; Anthropic: a new ``message_start``).
* ``http-error``: a recorded non-200 reply; not a stream, see :func:`load_http_errors`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

__all__ = [
    "CORPUS_ENV",
    "PROTOCOLS",
    "CorpusStream",
    "Protocol",
    "corpus_root",
    "detect_protocol",
    "load_corpus",
    "load_http_errors",
    "to_sse_body",
]

CORPUS_ENV = "SCHWARM_STREAM_CORPUS"
"""Environment variable overriding the corpus root directory."""

Protocol = Literal["openai-chat", "openai-responses", "anthropic-messages"]
PROTOCOLS: tuple[Protocol, ...] = ("openai-chat", "openai-responses", "anthropic-messages")

_MANIFEST = "manifest.json"
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


@dataclass(frozen=True)
class CorpusStream:
    """One complete recorded response, as the raw SSE body a server would send."""

    file: str
    """Path relative to the corpus root (the manifest's ``file``)."""
    index: int
    """Which response within the file (0-based); >0 only for multi-response jsonl files."""
    protocol: Protocol
    body: bytes = field(repr=False)
    manifest: dict[str, Any] = field(repr=False, compare=False)
    """The manifest row of ``file`` (shared by all streams of that file)."""

    @property
    def id(self) -> str:
        """Stable test id, ``"<file>#<index>"``."""
        return f"{self.file}#{self.index}"


def _is_corpus(path: Path) -> bool:
    return (path / _MANIFEST).is_file()


def _walk_up(start: Path) -> Iterator[Path]:
    start = start.resolve()
    for directory in (start, *start.parents):
        # "../shared/corpus" of every ancestor == "<ancestor's parent>/shared/corpus"; checking
        # "<dir>/shared/corpus" for every dir on the way up covers exactly those.
        yield directory / "shared" / "corpus"


def corpus_root(start: Path | None = None) -> Path | None:
    """Locate the corpus directory (the one holding ``manifest.json``).

    Order: ``$SCHWARM_STREAM_CORPUS`` if set (authoritative: if it does not point at a corpus, ``None``
    is returned rather than silently falling back to another copy), else the first ``../shared/corpus``
    found walking up from ``start`` (default: the current directory), else the same walk from this file's
    location.  Returns ``None`` when no corpus is found.
    """
    env = os.environ.get(CORPUS_ENV)
    if env:
        path = Path(env).expanduser()
        return path.resolve() if _is_corpus(path) else None
    for origin in (start or Path.cwd(), Path(__file__).parent):
        for candidate in _walk_up(origin):
            if _is_corpus(candidate):
                return candidate.resolve()
    return None


def _read_manifest(root: Path) -> list[dict[str, Any]]:
    with (root / _MANIFEST).open(encoding="utf-8") as fh:
        rows: list[dict[str, Any]] = json.load(fh)
    return rows


def _require_root(root: Path | None) -> Path:
    found = root if root is not None else corpus_root()
    if found is None or not _is_corpus(found):
        raise FileNotFoundError(
            f"stream corpus not found (looked for {root or '../shared/corpus'}; set ${CORPUS_ENV} to override)"
        )
    return found


def load_corpus(root: Path | None = None, *, protocols: Iterable[str] | None = None) -> list[CorpusStream]:
    """Load every stream of the corpus, in manifest order.

    ``root`` defaults to :func:`corpus_root`; raises ``FileNotFoundError`` when there is no corpus.
    ``protocols`` restricts the result to those protocols.  ``http-error`` records are excluded (see
    :func:`load_http_errors`).
    """
    base = _require_root(root)
    wanted = set(protocols) if protocols is not None else None
    if wanted is not None and not wanted <= set(PROTOCOLS):
        raise ValueError(f"unknown protocol(s): {sorted(wanted - set(PROTOCOLS))}")
    streams: list[CorpusStream] = []
    for row in _read_manifest(base):
        if row["fmt"] == "http-error" or (wanted is not None and row["protocol"] not in wanted):
            continue
        bodies = to_sse_body(base / row["file"], row["protocol"])
        streams.extend(
            CorpusStream(file=row["file"], index=i, protocol=row["protocol"], body=body, manifest=row)
            for i, body in enumerate(bodies)
        )
    return streams


def load_http_errors(root: Path | None = None) -> list[dict[str, Any]]:
    """Load the recorded non-200 replies (``fmt == "http-error"``).

    Each item: ``{"file", "protocol", "status", "headers", "body", "manifest"}``.  ``headers`` is a
    ``dict[str, str]`` with lower-case names (VCR cassettes store list values; they are joined with
    ``", "``); ``body`` is the decoded JSON body as stored.  The manifest ``note`` says whether the
    request was ``stream=true``.
    """
    base = _require_root(root)
    out: list[dict[str, Any]] = []
    for row in _read_manifest(base):
        if row["fmt"] != "http-error":
            continue
        with (base / row["file"]).open(encoding="utf-8") as fh:
            record = json.load(fh)
        headers = {
            str(k).lower(): ", ".join(map(str, v)) if isinstance(v, list) else str(v)
            for k, v in record.get("headers", {}).items()
        }
        out.append(
            {
                "file": row["file"],
                "protocol": row["protocol"],
                "status": int(record["status"]),
                "headers": headers,
                "body": record.get("body"),
                "manifest": row,
            }
        )
    return out


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
        raise ValueError(f"{path.name} is an HTTP error record, not a stream; use load_http_errors()")
    raw = path.read_bytes()
    if not (path.name.endswith(_JSONL_SUFFIX) if json_lines is None else json_lines):
        return [raw]
    lines = [line.strip() for line in _LINE_SPLIT_RE.split(raw)]
    lines = [line for line in lines if line]
    if protocol is None:
        protocol = detect_protocol(b"".join(b"data: " + line + b"\n\n" for line in lines))
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    proto = cast(Protocol, protocol)  # validated just above
    return [_frame(group, proto) for group in _split_responses(lines, proto)]
