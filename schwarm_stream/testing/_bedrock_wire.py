"""AWS Bedrock ``ConverseStream`` on the wire: binary event-stream frames, as the service sends them.

The body of a ``ConverseStream`` answer is ``application/vnd.amazon.eventstream``: a sequence of
binary messages, each ``prelude (total length, headers length, prelude CRC32) | headers | payload |
message CRC32``, all integers big-endian, both CRCs the IEEE CRC32 of everything before them. botocore
ships only the decoder (``botocore.eventstream.EventStreamBuffer``); :func:`frame` is the encoder,
checked against that decoder by the tests. Headers here are all strings (header value type 7), which
is all the service uses: ``:message-type`` (``event`` or ``exception``), ``:event-type`` /
``:exception-type`` and ``:content-type``; the payload is the event's JSON.

The builders return one frame per list element, so a test can slice the list to cut a stream short
or put actions of the provider server between frames, exactly as with the SSE builders.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "EVENTSTREAM",
    "converse_response",
    "converse_stream_events",
    "decode_frames",
    "error_reply_headers",
    "event_frame",
    "exception_frame",
    "frame",
]

#: The content type of an event-stream body.
EVENTSTREAM = "application/vnd.amazon.eventstream"

_STRING = 7  # header value type "string" (UTF-8, 2-byte length)


def frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message with string ``headers`` and ``payload``, both CRCs computed."""
    head = bytearray()
    for name, value in headers.items():
        n, v = name.encode("utf-8"), value.encode("utf-8")
        head += struct.pack(">B", len(n)) + n + struct.pack(">BH", _STRING, len(v)) + v
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + bytes(head) + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_frame(event_type: str, body: Mapping[str, Any]) -> bytes:
    """A ``:message-type: event`` frame (``messageStart``, ``contentBlockDelta``, ``metadata``, ...)."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, _json(body))


def exception_frame(exception_type: str, message: str, **fields: Any) -> bytes:
    """A ``:message-type: exception`` frame, the service's mid-stream error (``throttlingException``,
    ``modelStreamErrorException`` with ``originalStatusCode``, ...)."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, _json({"message": message, **fields}))


def decode_frames(body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """``(headers, payload)`` of each whole frame in ``body`` (a cut last frame is left out).

    A plain reader for the corpus tools; the tests read bodies with botocore's own decoder.
    """
    out: list[tuple[dict[str, str], bytes]] = []
    pos = 0
    while len(body) - pos >= 12:
        total, head_len, _crc = struct.unpack_from(">III", body, pos)
        if total < 16 or len(body) - pos < total:
            break
        headers: dict[str, str] = {}
        h, end = pos + 12, pos + 12 + head_len
        while h < end:
            n = body[h]
            name = body[h + 1 : h + 1 + n].decode("utf-8")
            kind = body[h + 1 + n]
            h += 2 + n
            if kind != _STRING:  # not used by the service; skip this frame's other headers
                break
            (length,) = struct.unpack_from(">H", body, h)
            headers[name] = body[h + 2 : h + 2 + length].decode("utf-8")
            h += 2 + length
        out.append((headers, body[end : pos + total - 4]))
        pos += total
    return out


def error_reply_headers(error_type: str) -> dict[str, str]:
    """The header botocore reads an HTTP error's code from (``x-amzn-ErrorType``)."""
    return {"x-amzn-errortype": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"}


def converse_stream_events(
    text: Iterable[str],
    *,
    reasoning: Sequence[str] = (),
    signature: str | None = None,
    tool_uses: Sequence[Mapping[str, Any]] = (),
    stop_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
    latency_ms: int = 42,
) -> list[bytes]:
    """The frames of one ``ConverseStream`` answer, in the service's order.

    ``messageStart``; a reasoning block (``reasoning`` pieces, then ``signature``) when given; the
    text block (deltas only: the service sends no ``contentBlockStart`` for text); one block per
    tool use (``{"id", "name", "chunks"}``: ``contentBlockStart`` with ``toolUse``, then the input JSON
    in ``chunks``); ``contentBlockStop`` after each block; ``messageStop``; ``metadata``.
    ``stop_reason`` defaults to ``tool_use`` with tool uses, else ``end_turn``.
    """
    out = [event_frame("messageStart", {"role": "assistant"})]
    index = 0
    if reasoning or signature:
        for piece in reasoning:
            out.append(event_frame("contentBlockDelta", _delta(index, {"reasoningContent": {"text": piece}})))
        if signature:
            out.append(
                event_frame(
                    "contentBlockDelta", _delta(index, {"reasoningContent": {"signature": signature}})
                )
            )
        out.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    pieces = list(text)
    if pieces or not tool_uses:
        for piece in pieces:
            out.append(event_frame("contentBlockDelta", _delta(index, {"text": piece})))
        out.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    for use in tool_uses:
        start = {"toolUse": {"toolUseId": use["id"], "name": use["name"]}}
        out.append(event_frame("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        for piece in use.get("chunks") or ():
            out.append(event_frame("contentBlockDelta", _delta(index, {"toolUse": {"input": piece}})))
        out.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    reason = stop_reason or ("tool_use" if tool_uses else "end_turn")
    out.append(event_frame("messageStop", {"stopReason": reason}))
    u = _usage(usage)
    out.append(event_frame("metadata", {"usage": u, "metrics": {"latencyMs": latency_ms}}))
    return out


_COUNTED = ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")


def _usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    # The service's totalTokens counts the cache reads and writes too: they are beside inputTokens.
    u = dict(usage or {"inputTokens": 10, "outputTokens": 5})
    u.setdefault("totalTokens", sum(int(u.get(k, 0)) for k in _COUNTED))
    return u


def _delta(index: int, delta: Mapping[str, Any]) -> dict[str, Any]:
    return {"contentBlockIndex": index, "delta": dict(delta)}


def converse_response(
    text: str,
    *,
    tool_uses: Sequence[Mapping[str, Any]] = (),
    stop_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
    latency_ms: int = 42,
) -> dict[str, Any]:
    """The JSON body of the non-streaming ``Converse`` answer with the same content
    (``tool_uses``: ``{"id", "name", "input"}`` with ``input`` as a JSON string)."""
    content: list[dict[str, Any]] = [{"text": text}] if text or not tool_uses else []
    for use in tool_uses:
        content.append(
            {"toolUse": {"toolUseId": use["id"], "name": use["name"], "input": json.loads(use["input"])}}
        )
    u = _usage(usage)
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason or ("tool_use" if tool_uses else "end_turn"),
        "usage": u,
        "metrics": {"latencyMs": latency_ms},
    }


def redacted(data: bytes) -> str:
    """How a blob (``redactedContent``) travels in the JSON payload: base64."""
    return base64.b64encode(data).decode("ascii")
