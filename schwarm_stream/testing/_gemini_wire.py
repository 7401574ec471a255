"""Google Gemini ``streamGenerateContent?alt=sse`` on the wire, as the Gemini API sends it.

Each event is ``data: <GenerateContentResponse JSON, camelCase>`` ended by a blank line with CRLF
line ends (as the recorded streams in ``tests/data/corpus-gemini`` show). Every event carries the
*new* parts of the candidate and the running ``usageMetadata``; the last one carries
``finishReason``. There is no ``[DONE]``.

The builders return one event per list element, so a test can slice the list to cut a stream
short or put actions of the provider server between events. With ``vertex=True`` they add what Vertex AI
fills on every response (``createTime``, ``usageMetadata.trafficType``), as the recorded Vertex streams
show; the SDK's Vertex parser keeps ``createTime`` (``create_time``), its Gemini API parser drops it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "VERTEX_CREATE_TIME",
    "gemini_error_body",
    "gemini_error_event",
    "gemini_event",
    "gemini_response",
    "gemini_stream_events",
]

#: HTTP statuses of the Google API error ``status`` names used in tests.
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def gemini_event(data: Mapping[str, Any]) -> bytes:
    """One SSE event (``data: ...`` and a blank line, CRLF line ends)."""
    return b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\r\n\r\n"


#: What :func:`gemini_stream_events` and :func:`gemini_response` put in ``createTime`` with ``vertex=True``.
VERTEX_CREATE_TIME = "2026-01-01T00:00:00.000000Z"


def _vertex_fields(data: dict[str, Any]) -> dict[str, Any]:
    data["createTime"] = VERTEX_CREATE_TIME
    if "usageMetadata" in data:
        data["usageMetadata"] = {**data["usageMetadata"], "trafficType": "ON_DEMAND"}
    return data


def _usage(prompt: int, candidates: int | None, thoughts: int | None) -> dict[str, Any]:
    u: dict[str, Any] = {"promptTokenCount": prompt}
    total = prompt
    if candidates is not None:
        u["candidatesTokenCount"] = candidates
        total += candidates
    if thoughts:
        u["thoughtsTokenCount"] = thoughts
        total += thoughts
    u["totalTokenCount"] = total
    return u


def gemini_stream_events(
    text_chunks: Sequence[str] = (),
    *,
    thought_chunks: Sequence[str] = (),
    signature: str | None = None,
    function_calls: Sequence[Mapping[str, Any]] = (),
    finish_reason: str | None = "STOP",
    prompt_tokens: int = 12,
    output_tokens: int | None = None,
    model: str = "gemini-2.5-flash",
    response_id: str = "resp-offline",
    blocked: str | None = None,
    vertex: bool = False,
) -> list[bytes]:
    """The events of one streamed answer: thought parts, text parts, then one event per function
    call (``{"name", "args", "id"?}``, whole, as the API sends them); the last event carries
    ``finish_reason`` (``None`` leaves it out: a stream cut short) and the final usage.

    ``signature`` (base64) goes on the first function call if any, else on the last text part,
    as Gemini 2.5+ puts it. ``blocked`` (a block reason) gives the one event of a blocked prompt.
    ``vertex`` adds Vertex AI's ``createTime`` and ``usageMetadata.trafficType`` to every event.
    """
    head = {"modelVersion": model, "responseId": response_id}
    finish = _vertex_fields if vertex else (lambda data: data)
    if blocked is not None:
        feedback = {"blockReason": blocked, "blockReasonMessage": f"The prompt was blocked ({blocked})."}
        return [
            gemini_event(
                finish(
                    {"promptFeedback": feedback, "usageMetadata": _usage(prompt_tokens, None, None), **head}
                )
            )
        ]
    parts: list[dict[str, Any]] = [{"text": t, "thought": True} for t in thought_chunks]
    parts += [{"text": t} for t in text_chunks]
    for call in function_calls:
        fc: dict[str, Any] = {"name": call["name"], "args": call.get("args") or {}}
        if call.get("id"):
            fc["id"] = call["id"]
        parts.append({"functionCall": fc})
    if signature:
        target = next((p for p in parts if "functionCall" in p), None) or (parts[-1] if parts else None)
        if target is None:
            parts.append({"text": "", "thoughtSignature": signature})
        else:
            target["thoughtSignature"] = signature
    if not parts:
        parts = [{"text": ""}]
    out_tokens = output_tokens
    if out_tokens is None:
        out_tokens = max(1, sum(len(t) for t in text_chunks) // 4) if text_chunks or function_calls else 0
    thoughts = max(1, sum(len(t) for t in thought_chunks) // 4) if thought_chunks else None
    events = []
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
        usage = _usage(prompt_tokens, None, None)
        if last and finish_reason is not None:
            candidate["finishReason"] = finish_reason
            usage = _usage(prompt_tokens, out_tokens, thoughts)
        events.append(gemini_event(finish({"candidates": [candidate], "usageMetadata": usage, **head})))
    return events


def gemini_response(
    text: str,
    *,
    function_calls: Sequence[Mapping[str, Any]] = (),
    finish_reason: str = "STOP",
    prompt_tokens: int = 12,
    output_tokens: int = 5,
    model: str = "gemini-2.5-flash",
    response_id: str = "resp-offline",
    vertex: bool = False,
) -> dict[str, Any]:
    """The JSON body of the non-streaming ``generateContent`` answer with the same content (``vertex``:
    with Vertex AI's ``createTime`` and ``trafficType``)."""
    parts: list[dict[str, Any]] = [{"text": text}] if text or not function_calls else []
    parts += [{"functionCall": {"name": c["name"], "args": c.get("args") or {}}} for c in function_calls]
    body = {
        "candidates": [
            {"content": {"parts": parts, "role": "model"}, "finishReason": finish_reason, "index": 0}
        ],
        "usageMetadata": _usage(prompt_tokens, output_tokens, None),
        "modelVersion": model,
        "responseId": response_id,
    }
    return _vertex_fields(body) if vertex else body


def gemini_error_body(
    code: int = 503, message: str = "The model is overloaded.", **extra: Any
) -> dict[str, Any]:
    """A Google API error body (``{"error": {"code", "message", "status"}}``); ``extra`` adds
    fields such as ``details`` (``google.rpc.RetryInfo`` with ``retryDelay``)."""
    return {"error": {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN"), **extra}}


def gemini_error_event(code: int = 503, message: str = "The model is overloaded.", **extra: Any) -> bytes:
    """The error event the API sends inside a 200 stream; the SDK raises ``ServerError``/``ClientError``."""
    return gemini_event(gemini_error_body(code, message, **extra))
