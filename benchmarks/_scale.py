"""Scale: many concurrent paced streams on one event loop, through the default pipeline.

Each stream emits 200 chunks at 50 chunks/s (a chunk is due every 20 ms from
its start; starts are spread over the first interval). The consumer records,
per chunk, how late it arrived relative to when it was due: the delay the
event loop (and everything on it: the sources, the pipeline, the consumers)
added. CPU % is process CPU time over wall time during the run.

Memory per active stream is measured separately with ``tracemalloc`` (which
slows everything down, so never during the timed run): the streams are opened,
each consumes half its chunks and holds there; traced memory growth over the
baseline, divided by the number of streams. The chunk payloads are built
before tracing and shared, so the text the accumulator keeps (the content) is
not in that number; the per-fragment list slots and everything else is.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import _pipelines
from _harness import percentile
from _workload import Workload

from schwarm_stream.sources import Source
from schwarm_stream.sources._openai_chat import ChatNormalizer


def stream_dicts(w: Workload, chunks: int) -> list[dict[str, Any]]:
    """A ``chunks``-chunk answer: the role chunk, text chunks, the finish chunk and the usage chunk."""
    text = w.chat_dicts[: chunks - 2]
    finish = next(d for d in w.chat_dicts if d["choices"] and d["choices"][0]["finish_reason"])
    return [*text, finish, w.chat_dicts[-1]]


class PacedSource(Source):
    """Chunk dicts released on a schedule: chunk ``i`` is due at ``start + i * interval``."""

    provider = "openai"
    model = "gpt-bench-1"

    def __init__(self, dicts: list[dict[str, Any]], interval: float, start: float) -> None:
        self.dicts = dicts
        self.interval = interval
        self.start = start
        self.due = 0.0  # when the event being delivered was due (read by the consumer)

    def open(self, stream: Any, attempt: Any) -> AsyncIterator[Any]:
        return self._events()

    async def _events(self) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        norm = ChatNormalizer()
        for i, d in enumerate(self.dicts):
            due = self.start + i * self.interval
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.due = due
            for ev in norm.feed(d):
                yield ev


async def paced_run(w: Workload, streams: int, chunks: int, rate: float) -> dict[str, Any]:
    pipeline, info = _pipelines.default()
    dicts = stream_dicts(w, chunks)
    loop = asyncio.get_running_loop()
    interval = 1.0 / rate
    delays: list[float] = []
    outcomes: list[str | None] = []

    async def one(k: int, t0: float) -> None:
        src = PacedSource(dicts, interval, t0 + interval * k / streams)
        async with pipeline.open(src) as s:
            async for _ev in s:
                delays.append(loop.time() - src.due)
        outcomes.append(s.outcome)

    gc.collect()
    t0 = loop.time() + 0.05
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(k, t0) for k in range(streams)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    ideal = (chunks - 1) * interval + interval + 0.05
    return {
        "streams": streams,
        "chunks_per_stream": chunks,
        "rate_per_stream": rate,
        "completed": sum(o == "complete" for o in outcomes),
        "all_complete": outcomes.count("complete") == streams,
        "events": len(delays),
        "added_delay_ms_p50": percentile(delays, 50) * 1e3,
        "added_delay_ms_p99": percentile(delays, 99) * 1e3,
        "added_delay_ms_max": max(delays) * 1e3,
        "wall_s": wall,
        "ideal_wall_s": ideal,
        "cpu_percent": 100.0 * cpu / wall,
        "cpu_us_per_chunk": cpu / max(1, len(delays)) * 1e6,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "pipeline": info,
    }


async def memory_per_stream(w: Workload, streams: int, chunks: int) -> dict[str, Any]:
    pipeline, _info = _pipelines.default()
    dicts = stream_dicts(w, chunks)
    half = chunks // 2
    hold = asyncio.Event()
    reached = 0
    all_there = asyncio.Event()

    async def one() -> None:
        nonlocal reached
        src = _pipelines.DictSource(dicts)
        async with pipeline.open(src) as s:
            n = 0
            async for _ev in s:
                n += 1
                if n == half:
                    reached += 1
                    if reached == streams:
                        all_there.set()
                    await hold.wait()

    # Warm up every lazy import and cache on one stream first, outside the measurement.
    await pipeline.open(_pipelines.DictSource(dicts)).collect()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.create_task(one()) for _ in range(streams)]
    await all_there.wait()
    gc.collect()
    active = tracemalloc.get_traced_memory()[0] - base
    hold.set()
    await asyncio.gather(*tasks)
    tracemalloc.stop()
    text_chars = sum(len(d["choices"][0]["delta"].get("content") or "") for d in dicts[:half] if d["choices"])
    return {
        "streams": streams,
        "chunks_consumed_each": half,
        "bytes_per_active_stream": active / streams,
        "kib_per_active_stream": active / streams / 1024,
        "content_chars_each": text_chars,
        "includes": "Stream, stash, accumulator state (incl. one list slot per fragment), the consumer task, generator frames",
    }


async def run(w: Workload, *, streams: int, chunks: int, rate: float) -> dict[str, Any]:
    paced = await paced_run(w, streams, chunks, rate)
    mem = await memory_per_stream(w, streams, chunks)
    return {**paced, "memory": mem}
