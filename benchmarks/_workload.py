"""The one streamed answer every benchmark uses, in every shape a contender consumes.

A tool-calling Chat Completions answer of 2005 chunks, shaped like a real one:
a role chunk, 1500 text deltas of 1-6 characters, two parallel tool calls (a
header chunk, then 250 argument fragments of ~3 characters each), a
``finish_reason`` chunk and a usage chunk with ``choices: []``. Every chunk
carries the fields OpenAI sends (``service_tier``, ``system_fingerprint``,
``obfuscation``, ``usage: null``). The same answer exists as an Anthropic
Messages event stream (for the Anthropic SDK's accumulator) and as LangChain
``AIMessageChunk`` objects.

Deterministic (seeded); built once per process and shared by every case.
"""

from __future__ import annotations

import functools
import json
import random
import string
from dataclasses import dataclass
from typing import Any

TEXT_CHUNKS = 1500
ARG_FRAGMENTS = 250
MODEL = "gpt-bench-1"
CHUNK_ID = "chatcmpl-bench0000000000000000000"
_WORDS = (
    "stream chunk token model agent tool call loop plugin metric buffer latency provider retry "
    "resume parse delta schema function argument weather city river mountain the of and to in is"
).split()


@dataclass(frozen=True)
class Workload:
    """The answer as chat chunk dicts, their JSON, the SSE body, and what it must accumulate to."""

    chat_dicts: list[dict[str, Any]]
    chat_json: list[str]
    chat_sse: list[bytes]  # one framed SSE event per chunk, then ``data: [DONE]``
    text: str
    tool_arguments: list[str]
    anthropic_dicts: list[dict[str, Any]]

    @property
    def chunks(self) -> int:
        return len(self.chat_dicts)

    @property
    def sse_body(self) -> bytes:
        return b"".join(self.chat_sse)


def _pieces(rng: random.Random, text: str, n: int) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), n - 1))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def _arguments(rng: random.Random, city: str) -> str:
    notes = " ".join(rng.choice(_WORDS) for _ in range(58))
    return json.dumps(
        {
            "location": city,
            "unit": "celsius",
            "days": 7,
            "notes": notes,
            "filters": [{"field": f"f{i}", "op": "gte", "value": rng.randint(0, 99)} for i in range(8)],
        }
    )


@functools.cache
def workload() -> Workload:
    rng = random.Random(20250101)
    words = " ".join(rng.choice(_WORDS) for _ in range(TEXT_CHUNKS * 2))
    deltas: list[str] = []
    pos = 0
    for _ in range(TEXT_CHUNKS):
        k = rng.randint(1, 6)
        deltas.append(words[pos : pos + k])
        pos += k
    calls = [("call_weather_1", "get_weather", _arguments(rng, "Berlin")),
             ("call_forecast_2", "get_forecast", _arguments(rng, "Paris"))]  # fmt: skip

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> dict[str, Any]:
        return {
            "id": CHUNK_ID,
            "object": "chat.completion.chunk",
            "created": 1750000000,
            "model": MODEL,
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
            "obfuscation": "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(2, 12))),
        }

    dicts = [chunk({"role": "assistant", "content": "", "refusal": None})]
    dicts += [chunk({"content": d}) for d in deltas]
    for index, (cid, name, args) in enumerate(calls):
        head = {"index": index, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
        dicts.append(chunk({"tool_calls": [head]}))
        dicts += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": frag}}]})
            for frag in _pieces(rng, args, ARG_FRAGMENTS)
        ]
    dicts.append(chunk({}, "tool_calls"))
    dicts.append(chunk(None, usage={"prompt_tokens": 420, "completion_tokens": 1850, "total_tokens": 2270}))
    js = [json.dumps(d, separators=(",", ":")) for d in dicts]
    sse = [f"data: {j}\n\n".encode() for j in js] + [b"data: [DONE]\n\n"]
    return Workload(
        chat_dicts=dicts,
        chat_json=js,
        chat_sse=sse,
        text="".join(deltas),
        tool_arguments=[c[2] for c in calls],
        anthropic_dicts=_anthropic(deltas, calls, rng),
    )


def _anthropic(
    deltas: list[str], calls: list[tuple[str, str, str]], rng: random.Random
) -> list[dict[str, Any]]:
    usage = {
        "input_tokens": 420,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    out: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_bench",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage,
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    out += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}}
        for d in deltas
    ]
    out.append({"type": "content_block_stop", "index": 0})
    for i, (cid, name, args) in enumerate(calls, start=1):
        block = {"type": "tool_use", "id": cid, "name": name, "input": {}}
        out.append({"type": "content_block_start", "index": i, "content_block": block})
        out += [
            {
                "type": "content_block_delta",
                "index": i,
                "delta": {"type": "input_json_delta", "partial_json": f},
            }
            for f in _pieces(rng, args, ARG_FRAGMENTS)
        ]
        out.append({"type": "content_block_stop", "index": i})
    out.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 1850},
        }
    )
    out.append({"type": "message_stop"})
    return out


def check_message(message: Any, w: Workload) -> None:
    """Fail loudly if a contender did not accumulate the exact answer (a benchmark of a wrong result is void)."""
    text = getattr(message, "text", None)
    if text is None:
        raise AssertionError(f"no text in {type(message).__name__}")
    if text != w.text:
        raise AssertionError(f"accumulated text differs ({len(text)} vs {len(w.text)} characters)")
    args = [t.arguments for t in message.tool_calls]
    if args != w.tool_arguments:
        raise AssertionError("accumulated tool-call arguments differ")
