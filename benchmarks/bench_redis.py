"""The Redis log, batched against unbatched, side by side in one run.

Starts its own ``redis-server`` on a free loopback port (no persistence) and measures, for both write
modes of the ``redis`` plugin:

- ``batched`` (the default): the events of one write share one Redis entry, flushed by size
  (``batch_max``), by timer (``flush_interval``, 2 ms) and at the end;
- ``per_event`` with ``flush_interval = 0``: one ``XADD`` per event in a pipeline, written as soon as
  the writer is free — the plugin's only path before batching.

Rows (``rows(quick)``, also printed by ``python benchmarks/bench_redis.py``):

- ``one stream``: events/s of one stream through the pipeline, the consumer loop ending only after
  the log and its end entry are in Redis; ``local`` is the same pipeline without the plugin, and
  ``noop_hook`` the pipeline with one plugin whose ``stream_event`` does nothing: the floor of any
  per-event plugin (the core's observer call), which the batched writer cannot go below;
- ``added latency``: a paced stream (one event every 0.5 ms): for each event, the time from its
  delivery to Redis acknowledging it, p50 / p99 (what a reader in another process waits on top);
- ``read``: a reader following a finished log from seq 0 (``read_stream``), events/s;
- ``100 streams``: 100 concurrent producers, each followed live by a reader in the same process.

Sources are in-process iterators (unpaced: a plain iterator over texts made before the timing, the
cheapest source the core has, so every row measures the pipeline and the log rather than the text
generator; the same source for every row), so the numbers are schwarm_stream + redis-py + Redis, not
a provider. Timing is reported, never asserted.

    python benchmarks/bench_redis.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio
from schwarm_stream_redis import RedisSettings, RedisStreamPlugin, read_stream, redis_log
from schwarm_stream_redis.testing import RedisServer

from schwarm_stream import Pipeline, hookimpl
from schwarm_stream.sources import from_iterator

TENANT = "bench"
CFG = {"plugins": {"autoload": False}}

#: The two write modes compared: today's default, and the path the plugin had before batching.
MODES: dict[str, dict[str, Any]] = {
    "batched": {},
    "per_event": {"write_mode": "per_event", "flush_interval": 0.0},
}


_TEXTS: dict[int, list[str]] = {}


def words(n: int, pace: float = 0.0) -> Any:
    """A source of ``n`` text chunks; unpaced, a plain iterator over texts made once (outside the timing)."""
    texts = _TEXTS.get(n)
    if texts is None:
        texts = _TEXTS[n] = [f"w{i} " for i in range(n)]
    if not pace:
        return from_iterator(lambda: iter(texts))

    async def gen() -> AsyncIterator[str]:
        for text in texts:
            await asyncio.sleep(pace)
            yield text

    return from_iterator(gen)


def pipeline(url: str, client: redis.asyncio.Redis, mode: str, *extra: Any) -> Pipeline:
    settings = RedisSettings(url=url, tenant=TENANT, maxlen=1_000_000, write_timeout=60.0, **MODES[mode])
    return Pipeline([RedisStreamPlugin(settings, client=client), *extra], config=CFG)


class Latency:
    """Per event: delivery time, and the time Redis acknowledged a write that included it."""

    def __init__(self) -> None:
        self.delivered: dict[int, float] = {}
        self.acks: list[tuple[int, float]] = []

    @hookimpl(trylast=True)
    def stream_start(self, stream: Any) -> None:
        writer = redis_log(stream)
        if writer is not None:  # the redis plugin's stream_start (tryfirst) opened it already
            writer.on_ack = lambda seq: self.acks.append((seq, time.perf_counter()))

    @hookimpl(trylast=True)
    def stream_event(self, stream: Any, event: Any) -> None:
        self.delivered[event.seq] = time.perf_counter()

    def added_ms(self) -> list[float]:
        seqs = [seq for seq, _ in self.acks]
        out = []
        for seq, t in self.delivered.items():
            i = bisect.bisect_left(seqs, seq)
            if i < len(seqs):
                out.append((self.acks[i][1] - t) * 1000)
        return out


class NoopHook:
    """A plugin observing every event and doing nothing: the per-event floor of any sink plugin."""

    @hookimpl
    def stream_event(self, stream: Any, event: Any) -> None:
        pass


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_stream(url: str, events: int, rounds: int) -> list[dict[str, Any]]:
    client = redis.asyncio.Redis.from_url(url)
    local = Pipeline([], config=CFG)
    noop = Pipeline([NoopHook()], config=CFG)
    best = {"local": 0.0, "noop_hook": 0.0, **{m: 0.0 for m in MODES}}
    lat: dict[str, list[float]] = {m: [] for m in MODES}
    read = {m: 0.0 for m in MODES}
    try:
        for _ in range(rounds):  # interleaved: each round measures every case once
            t0 = time.perf_counter()
            await local.open(words(events)).collect()
            best["local"] = max(best["local"], events / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            await noop.open(words(events)).collect()
            best["noop_hook"] = max(best["noop_hook"], events / (time.perf_counter() - t0))
            for mode in MODES:
                stream = pipeline(url, client, mode).open(words(events))
                t0 = time.perf_counter()
                await stream.collect()
                best[mode] = max(best[mode], events / (time.perf_counter() - t0))

                t0 = time.perf_counter()
                n = 0
                async for _ in read_stream(client, TENANT, stream.id, block_ms=1000):
                    n += 1
                read[mode] = max(read[mode], n / (time.perf_counter() - t0))
        for mode in MODES:  # once more with the latency probe (its hook costs a little per event)
            probe = Latency()
            await pipeline(url, client, mode, probe).open(words(events)).collect()
            lat[mode] = probe.added_ms()
        await client.flushdb()
    finally:
        await client.aclose()
    rows = [
        {"case": "redis.one_stream", "mode": floor, "events": events, "events_per_s": round(best[floor])}
        for floor in ("local", "noop_hook")
    ]
    for mode in MODES:
        rows.append(
            {
                "case": "redis.one_stream",
                "mode": mode,
                "events": events,
                "events_per_s": round(best[mode]),
                "vs_per_event": round(best[mode] / best["per_event"], 1),
                "of_noop_hook": round(best[mode] / best["noop_hook"], 2),  # 1.0: the plugin costs nothing more
                # at full speed the queue is the backlog (bounded by max_pending): the latency of a flood
                "flood_p50_ms": round(pct(lat[mode], 0.5), 2),
                "flood_p99_ms": round(pct(lat[mode], 0.99), 2),
            }
        )
        rows.append({"case": "redis.read", "mode": mode, "events": events, "events_per_s": round(read[mode])})
    return rows


async def paced(url: str, events: int) -> list[dict[str, Any]]:
    client = redis.asyncio.Redis.from_url(url)
    rows = []
    try:
        for mode in MODES:
            probe = Latency()
            await pipeline(url, client, mode, probe).open(words(events, pace=0.0005)).collect()
            added = probe.added_ms()
            rows.append(
                {
                    "case": "redis.added_latency",
                    "mode": mode,
                    "events": len(added),
                    "p50_ms": round(statistics.median(added), 2),
                    "p99_ms": round(pct(added, 0.99), 2),
                    "max_ms": round(max(added), 2),
                }
            )
        await client.flushdb()
    finally:
        await client.aclose()
    return rows


async def many_streams(url: str, streams: int, events: int, mode: str) -> dict[str, Any]:
    client = redis.asyncio.Redis.from_url(url, max_connections=4 * streams + 10)
    logged = pipeline(url, client, mode)
    read_counts: list[int] = []
    readers: list[asyncio.Task[None]] = []

    async def reader(sid: str) -> None:
        n = 0
        async for _ in read_stream(client, TENANT, sid, block_ms=1000):
            n += 1
        read_counts.append(n)

    async def producer() -> None:
        stream = logged.open(words(events))
        it = stream.__aiter__()
        await it.__anext__()  # the log exists now: start the live reader
        readers.append(asyncio.create_task(reader(stream.id)))
        async for _ in it:
            pass

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(streams)))
        written = time.perf_counter() - t0
        await asyncio.gather(*readers)
        read = time.perf_counter() - t0
        await client.flushdb()
    finally:
        await client.aclose()
    return {
        "case": "redis.100_streams",
        "mode": mode,
        "streams": streams,
        "events": events,
        "write_events_per_s": round(streams * events / written),
        "read_events_per_s": round(sum(read_counts) / read),
    }


async def main_async(quick: bool) -> list[dict[str, Any]]:
    server = RedisServer()
    server.start()
    try:
        # best of several interleaved rounds: a busy machine slows single rounds of either mode
        rows = await one_stream(server.url, 10_000 if quick else 20_000, 5 if quick else 7)
        rows += await paced(server.url, 300 if quick else 2_000)
        for mode in MODES:
            rows.append(await many_streams(server.url, 100, 100, mode))
    finally:
        server.close()
    return rows


def rows(quick: bool) -> list[dict[str, Any]]:
    """Every row of this benchmark (for ``benchmarks/run.py``): one dict per case and mode."""
    return asyncio.run(main_async(quick))


def cases(quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    """For ``benchmarks/run.py``'s ``extra`` section: one case returning every row."""
    return {"redis.batched_vs_per_event": lambda: {"rows": rows(quick)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = rows(args.quick)
    if args.json:
        print(json.dumps(result))
        return
    for row in result:
        case, mode = row.pop("case"), row.pop("mode")
        print(f"{case:<22} {mode:<10} " + "  ".join(f"{k}={v:,}" for k, v in row.items()))


if __name__ == "__main__":
    main()
