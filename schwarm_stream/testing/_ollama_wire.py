"""Ollama's native ``POST /api/chat`` stream on the wire: newline-delimited JSON.

One ``ChatResponse`` object per line (``application/x-ndjson``): ``message.thinking`` and
``message.content`` fragments with ``done: false``; tool calls whole, in one line; the last line
``done: true`` with ``done_reason`` and the counts and durations (as the recorded streams in
``tests/data/corpus-ollama`` show). There is no other terminator.

The builders return one line per list element (``\\n`` included), so a test can slice the list to
cut a stream short or put actions of the provider server between lines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["NDJSON", "ollama_chat_lines", "ollama_chat_response", "ollama_error_line", "ollama_line"]

#: The content type of an Ollama stream body.
NDJSON = "application/x-ndjson"
_CREATED = "2026-01-01T00:00:00.000000000Z"


def ollama_line(data: Mapping[str, Any]) -> bytes:
    """One NDJSON line."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _done(done_reason: str | None, prompt: int, output: int) -> dict[str, Any]:
    d: dict[str, Any] = {"done": True}
    if done_reason is not None:
        d["done_reason"] = done_reason
    d.update(
        total_duration=123_000_000,
        load_duration=1_000_000,
        prompt_eval_count=prompt,
        prompt_eval_duration=20_000_000,
        eval_count=output,
        eval_duration=100_000_000,
    )
    return d


def ollama_chat_lines(
    text_chunks: Sequence[str] = (),
    *,
    thinking_chunks: Sequence[str] = (),
    tool_calls: Sequence[Mapping[str, Any]] = (),
    done_reason: str | None = "stop",
    done: bool = True,
    prompt_tokens: int = 12,
    output_tokens: int | None = None,
    model: str = "llama3.2",
) -> list[bytes]:
    """The lines of one streamed ``/api/chat`` answer: thinking, content, one line with every tool
    call (``{"name", "arguments", "id"?}``, arguments an object), then the ``done`` line
    (``done=False`` leaves it out: a stream cut short)."""
    head = {"model": model, "created_at": _CREATED}
    lines = [
        ollama_line({**head, "message": {"role": "assistant", "content": "", "thinking": t}, "done": False})
        for t in thinking_chunks
    ]
    lines += [
        ollama_line({**head, "message": {"role": "assistant", "content": t}, "done": False})
        for t in text_chunks
    ]
    if tool_calls:
        calls = []
        for n, c in enumerate(tool_calls):
            call: dict[str, Any] = {
                "function": {"index": n, "name": c["name"], "arguments": c.get("arguments") or {}}
            }
            if c.get("id"):
                call["id"] = c["id"]
            calls.append(call)
        lines.append(
            ollama_line(
                {**head, "message": {"role": "assistant", "content": "", "tool_calls": calls}, "done": False}
            )
        )
    if done:
        out = output_tokens if output_tokens is not None else max(1, sum(len(t) for t in text_chunks) // 4)
        lines.append(
            ollama_line(
                {
                    **head,
                    "message": {"role": "assistant", "content": ""},
                    **_done(done_reason, prompt_tokens, out),
                }
            )
        )
    return lines


def ollama_chat_response(
    text: str,
    *,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    done_reason: str = "stop",
    prompt_tokens: int = 12,
    output_tokens: int = 5,
    model: str = "llama3.2",
) -> dict[str, Any]:
    """The JSON body of the non-streaming answer (``stream: false``) with the same content."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {"function": {"index": n, "name": c["name"], "arguments": c.get("arguments") or {}}}
            for n, c in enumerate(tool_calls)
        ]
    return {
        "model": model,
        "created_at": _CREATED,
        "message": message,
        **_done(done_reason, prompt_tokens, output_tokens),
    }


def ollama_error_line(message: str = "an error was encountered while running the model") -> bytes:
    """The ``{"error": ...}`` line Ollama sends when generation fails after the stream began."""
    return ollama_line({"error": message})
