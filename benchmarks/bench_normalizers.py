"""In-process: what each protocol's normalizer costs per text chunk, from SSE events (no network, no JSON framing).

Prebuilt :class:`SSE` events (one text delta each, as the providers send them) go through
``chat_events`` / ``responses_events`` / ``anthropic_events``: JSON decoding, the normalizer
and the surrogate check, per chunk. For before/after comparisons run it on two revisions
(``PYTHONPATH=<other tree> python benchmarks/bench_normalizers.py``).

    python benchmarks/bench_normalizers.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from schwarm_stream.sources._anthropic import anthropic_events
from schwarm_stream.sources._openai_chat import chat_events
from schwarm_stream.sources._openai_responses import ResponsesNormalizer, responses_events
from schwarm_stream.sources._sse import SSE


def _chat(n: int) -> list[SSE]:
    head = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "system_fingerprint": "fp",
    }
    evs = [json.dumps({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    for i in range(n):
        choice = {"index": 0, "delta": {"content": f"tok{i} "}, "logprobs": None, "finish_reason": None}
        evs.append(json.dumps({**head, "choices": [choice]}))
    evs.append(json.dumps({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    evs.append("[DONE]")
    return [SSE("message", d, i) for i, d in enumerate(evs)]


def _responses(n: int) -> list[SSE]:
    resp = {"id": "r1", "model": "m", "status": "in_progress", "output": []}
    evs = [{"type": "response.created", "sequence_number": 0, "response": resp}]
    for i in range(n):
        evs.append(
            {
                "type": "response.output_text.delta",
                "sequence_number": i + 1,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": f"tok{i} ",
            }
        )
    done = {**resp, "status": "completed", "usage": {"input_tokens": 1, "output_tokens": n}}
    evs.append({"type": "response.completed", "sequence_number": n + 1, "response": done})
    return [SSE(e["type"], json.dumps(e), i) for i, e in enumerate(evs)]


def _anthropic(n: int) -> list[SSE]:
    msg = {"id": "m1", "type": "message", "role": "assistant", "model": "m", "content": [], "usage": {}}
    evs: list[dict[str, Any]] = [
        {"type": "message_start", "message": msg},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    for i in range(n):
        evs.append(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"tok{i} "}}
        )
    evs += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": n}},
        {"type": "message_stop"},
    ]
    return [SSE(e["type"], json.dumps(e), i) for i, e in enumerate(evs)]


async def _aiter(items: list[SSE]) -> AsyncIterator[SSE]:
    for it in items:
        yield it


async def _us(make: Callable[[AsyncIterator[SSE]], AsyncIterator[Any]], items: list[SSE], n: int) -> float:
    t = time.process_time()
    async for _ in make(_aiter(items)):
        pass
    return (time.process_time() - t) / n * 1e6


async def measure(quick: bool) -> dict[str, Any]:
    n = 5_000 if quick else 20_000
    cases: dict[str, tuple[Callable[[AsyncIterator[SSE]], AsyncIterator[Any]], list[SSE]]] = {
        "normalize.openai_chat": (lambda s: chat_events(s), _chat(n)),
        "normalize.openai_responses": (lambda s: responses_events(s, ResponsesNormalizer()), _responses(n)),
        "normalize.anthropic": (lambda s: anthropic_events(s), _anthropic(n)),
    }
    res: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(5 if quick else 9):  # interleaved rounds
        for name, (make, items) in cases.items():
            res[name].append(await _us(make, items, n))
    return {f"{k}_us_per_chunk": min(v) for k, v in res.items()}


def cases(quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    """For ``benchmarks/run.py``."""
    return {"normalize": lambda: asyncio.run(measure(quick))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = asyncio.run(measure(args.quick))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, value in result.items():
        print(f"{name:45s} {value:8.2f} µs (min of rounds)")


if __name__ == "__main__":
    main()
