"""What partial parsing of a typed stream costs: a 20 KB JSON answer in 2,000 deltas.

Side by side, in interleaved rounds, CPU time (process time) for the whole answer:

- ``reparse_jiter``: re-parse the whole text from scratch after every delta with jiter's
  ``partial_mode="trailing-strings"`` (quadratic in the answer length);
- ``reparse_pydantic_core``: the same with ``pydantic_core.from_json(allow_partial="trailing-strings")``;
- ``partial_json``: :class:`schwarm_stream.structured.PartialJSON`, what typed streams use (the
  incremental scanner on every delta, jiter on a schedule that keeps the total linear);
- ``typed_stream``: a whole typed stream (``open(source, output=Model)``) over the same deltas,
  minus the same stream untyped: what a user pays for Partial events, typed partial validation
  and the final validation included.

Also checks that both parsers agree on every prefix (the correctness half of "measure which"),
and reports the bytes ``partial_json`` parsed in total against the answer's length (the linearity
claim: a bounded multiple) at 5, 20 and 80 KB. Timing is reported, never asserted.

    python benchmarks/bench_partial.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import jiter
import pydantic_core
from pydantic import BaseModel

import schwarm_stream
from schwarm_stream.structured import PartialJSON
from schwarm_stream.testing import ScriptedSource

OFF: Any = {"plugins": {"autoload": False}}


class Item(BaseModel):
    id: int
    title: str
    tags: list[str]
    score: float


class Answer(BaseModel):
    summary: str
    items: list[Item]


def answer_text(size: int) -> str:
    """A JSON answer of about ``size`` bytes: a long summary string and a list of small objects."""
    items: list[dict[str, Any]] = []
    summary = "A long summary that streams in as the model writes it. " * (size // 4 // 56 + 1)
    doc: dict[str, Any] = {"summary": summary, "items": items}
    n = 0
    while len(json.dumps(doc)) < size:
        items.append({"id": n, "title": f"Item number {n}", "tags": ["alpha", "beta"], "score": n / 7})
        n += 1
    return json.dumps(doc)


def deltas(text: str, count: int) -> list[str]:
    step = max(1, len(text) // count)
    return [text[i : i + step] for i in range(0, len(text), step)]


def reparse_jiter(pieces: list[str]) -> None:
    text = ""
    for p in pieces:
        text += p
        jiter.from_json(text.encode(), partial_mode="trailing-strings")


def reparse_pydantic_core(pieces: list[str]) -> None:
    text = ""
    for p in pieces:
        text += p
        pydantic_core.from_json(text, allow_partial="trailing-strings")


def partial_json(pieces: list[str]) -> None:
    parser = PartialJSON()
    for p in pieces:
        parser.feed(p)
    parser.update()


def _stream(pieces: list[str], typed: bool) -> None:
    async def run() -> None:
        kw: dict[str, Any] = {"output": Answer} if typed else {}
        async with schwarm_stream.open(ScriptedSource(pieces), config=OFF, **kw) as s:
            async for _ in s:
                pass
            if typed:
                await s.get_final_output()

    asyncio.run(run())


def agree(pieces: list[str]) -> bool:
    """Whether jiter and pydantic_core give the same value on every prefix."""
    text = ""
    for p in pieces:
        text += p
        a = jiter.from_json(text.encode(), partial_mode="trailing-strings")
        b = pydantic_core.from_json(text, allow_partial="trailing-strings")
        if a != b:
            return False
    return True


def parsed_bytes(pieces: list[str]) -> int:
    """Bytes PartialJSON handed to jiter in total (counted by wrapping its update)."""
    parser = PartialJSON()
    total = 0
    for p in pieces:
        before = parser._parsed_n
        parser.feed(p)
        if parser._parsed_n != before:
            total += parser._parsed_n
    return total


def _cpu(fn: Callable[[], None]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def cases(quick: bool = False) -> dict[str, Any]:
    rounds = 3 if quick else 9
    text = answer_text(20_000)
    pieces = deltas(text, 2_000)
    runs: dict[str, list[float]] = {
        k: []
        for k in ("reparse_jiter", "reparse_pydantic_core", "partial_json", "stream_untyped", "stream_typed")
    }
    for _ in range(rounds):
        runs["reparse_jiter"].append(_cpu(lambda: reparse_jiter(pieces)))
        runs["reparse_pydantic_core"].append(_cpu(lambda: reparse_pydantic_core(pieces)))
        runs["partial_json"].append(_cpu(lambda: partial_json(pieces)))
        runs["stream_untyped"].append(_cpu(lambda: _stream(pieces, False)))
        runs["stream_typed"].append(_cpu(lambda: _stream(pieces, True)))
    ms = {k: statistics.median(v) * 1000 for k, v in runs.items()}
    ms["typed_stream"] = ms["stream_typed"] - ms["stream_untyped"]
    linear = {}
    for size in (5_000, 20_000, 80_000):
        t = answer_text(size)
        p = deltas(t, size // 10)
        linear[f"{size // 1000}KB"] = round(parsed_bytes(p) / len(t), 1)
    return {
        "answer_bytes": len(text),
        "deltas": len(pieces),
        "total_ms": {k: round(v, 2) for k, v in ms.items()},
        "per_delta_us": {k: round(v * 1000 / len(pieces), 2) for k, v in ms.items()},
        "parsers_agree_on_every_prefix": agree(pieces),
        "partial_json_bytes_parsed_per_answer_byte": linear,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = cases(args.quick)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['answer_bytes']} B answer in {out['deltas']} deltas (CPU ms total, µs per delta)")
    for k, v in out["total_ms"].items():
        print(f"  {k:24} {v:9.2f} ms  {out['per_delta_us'][k]:8.2f} µs/delta")
    print(f"  jiter and pydantic_core agree on every prefix: {out['parsers_agree_on_every_prefix']}")
    print(f"  partial_json bytes parsed per answer byte: {out['partial_json_bytes_parsed_per_answer_byte']}")


if __name__ == "__main__":
    main()
