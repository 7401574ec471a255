"""Compressed SSE replies on the recorded corpus: bytes saved, and the time each event's flush adds.

Every recorded stream of the corpus (``/work/shared/corpus``, or the subset in ``tests/data``) is
replayed as text deltas through a pipeline with the SSE sink (``json`` and ``vercel`` formats); the
SSE frames the sink would send are then compressed the way the Starlette hub sends them: one
compressor per reply, each frame compressed and flushed on its own (``FrameCompressor``). Reported
per coding and format:

- bytes before and after, and the saving (%), summed over the corpus; also the saving of the same
  replies compressed in one piece (no per-event flush): the price of flushing, in bytes;
- the CPU time one frame's compress + flush takes (mean, p50, p99, µs): the latency an event gains
  on the server (the client's decoding is of the same order, usually less).

Numbers are reported, never asserted.

    python benchmarks/bench_compression.py [--corpus DIR] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support (the corpus loader)

from schwarm_stream import Pipeline
from schwarm_stream.sinks import SSESink
from schwarm_stream.sinks.sse import FrameCompressor, available_encodings
from schwarm_stream.sources import from_iterator
from tests.support.corpus import full_corpus_root, load_corpus

FORMATS = ("json", "vercel")


def _sse_data(body: bytes) -> Iterator[dict[str, Any]]:
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = b"".join(line[5:].lstrip() for line in block.split(b"\n") if line.startswith(b"data:"))
        if not data or data == b"[DONE]":
            continue
        try:
            obj = json.loads(data)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj


def deltas(body: bytes) -> list[str]:
    """The text, reasoning and tool-argument deltas of one recorded body, in order."""
    out: list[str] = []
    for obj in _sse_data(body):
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or {}
            for key in ("content", "reasoning_content", "reasoning", "refusal"):
                if isinstance(delta.get(key), str) and delta[key]:
                    out.append(delta[key])
            for call in delta.get("tool_calls") or []:
                args = (call.get("function") or {}).get("arguments")
                if isinstance(args, str) and args:
                    out.append(args)
        delta = obj.get("delta")
        if isinstance(delta, dict):  # anthropic content_block_delta
            for key in ("text", "thinking", "partial_json"):
                if isinstance(delta.get(key), str) and delta[key]:
                    out.append(delta[key])
        elif isinstance(delta, str) and delta:  # responses *.delta events
            out.append(delta)
    return out


async def frames_of(pieces: list[str], fmt: str) -> list[bytes]:
    """The SSE frames the sink sends for a stream of ``pieces`` (the whole reply, frame by frame)."""
    sink = SSESink(format=fmt, heartbeat=None, history=1_000_000)  # the whole reply, however long
    pipe = Pipeline([sink], config={"plugins": {"autoload": False}})

    async def gen() -> AsyncIterator[str]:
        for p in pieces:
            yield p

    async with pipe.open(from_iterator(gen(), model="corpus"), stream_id="s") as stream:
        await stream.collect()
    return [f.encode() async for f in sink.frames("s")]


def measure(replies: list[list[bytes]], coding: str) -> dict[str, Any]:
    raw = packed = whole = 0
    times: list[float] = []
    for frames in replies:
        comp = FrameCompressor(coding)
        for frame in frames:
            t0 = time.perf_counter()
            comp.compress(frame)
            times.append(time.perf_counter() - t0)
        comp.finish()
        raw += comp.bytes_in
        packed += comp.bytes_out
        one = FrameCompressor(coding)
        whole += len(one._compress(b"".join(frames)) + one.finish())  # one piece: no flush per event
    times.sort()
    us = [t * 1e6 for t in times]
    return {
        "coding": coding,
        "frames": len(times),
        "bytes": raw,
        "compressed": packed,
        "saved_pct": round(100 * (1 - packed / raw), 1) if raw else 0.0,
        "saved_pct_unflushed": round(100 * (1 - whole / raw), 1) if raw else 0.0,
        "us_per_frame_mean": round(statistics.fmean(us), 2),
        "us_per_frame_p50": round(us[len(us) // 2], 2),
        "us_per_frame_p99": round(us[min(len(us) - 1, int(len(us) * 0.99))], 2),
    }


async def run(bodies: list[list[str]]) -> list[dict[str, Any]]:
    results = []
    for fmt in FORMATS:
        replies = [await frames_of(pieces, fmt) for pieces in bodies]
        for coding in available_encodings():
            results.append({"format": fmt, "streams": len(replies), **measure(replies, coding)})
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument(
        "--corpus", type=Path, default=None, help="corpus root (default: the full one, else the subset)"
    )
    ap.add_argument("--quick", action="store_true", help="the first 20 recorded streams only")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    streams = load_corpus(args.corpus or full_corpus_root())
    if args.quick:
        streams = streams[:20]
    bodies = [d for d in (deltas(s.body) for s in streams) if d]
    results = asyncio.run(run(bodies))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{len(bodies)} recorded streams with content")
    head = f"{'format':7} {'coding':6} {'frames':>7} {'bytes':>10} {'sent':>9} {'saved':>6} {'1 piece':>7}"
    print(head + f" {'µs/frame mean':>13} {'p50':>6} {'p99':>6}")
    for r in results:
        print(
            f"{r['format']:7} {r['coding']:6} {r['frames']:7d} {r['bytes']:10d} {r['compressed']:9d}"
            f" {r['saved_pct']:5.1f}% {r['saved_pct_unflushed']:6.1f}%"
            f" {r['us_per_frame_mean']:13.2f} {r['us_per_frame_p50']:6.2f} {r['us_per_frame_p99']:6.2f}"
        )


if __name__ == "__main__":
    main()
