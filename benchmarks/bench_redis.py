"""Events per second through Redis Streams: one stream, and 100 concurrent streams.

Starts its own ``redis-server`` on a free loopback port (no persistence), then measures, side by side
in one run:

- ``local``: the same pipeline without the Redis plugin (the floor);
- ``redis write``: with the plugin, the consumer loop ending only after the log and its end entry are
  in Redis (events/s as the producer sees it);
- ``redis read``: a reader following a finished log from seq 0 (``read_stream``);
- ``100 streams``: 100 concurrent producers, each with a reader in the same process following it live
  (aggregate events/s written, and read by the readers).

Sources are in-process iterators, so the numbers are schwarm_stream + redis-py + Redis, not a provider.
Timing is reported, never asserted.

    python benchmarks/bench_redis.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio
from schwarm_stream_redis import RedisSettings, RedisStreamPlugin, read_stream
from schwarm_stream_redis.testing import RedisServer

from schwarm_stream import Pipeline
from schwarm_stream.sources import from_iterator

TENANT = "bench"


def words(n: int) -> Any:
    async def gen() -> AsyncIterator[str]:
        for i in range(n):
            yield f"w{i} "

    return from_iterator(gen)


def pipelines(url: str, client: redis.asyncio.Redis) -> tuple[Pipeline, Pipeline]:
    cfg = {"plugins": {"autoload": False}}
    plugin = RedisStreamPlugin(
        RedisSettings(url=url, tenant=TENANT, maxlen=1_000_000, write_timeout=60.0), client=client
    )
    return Pipeline([], config=cfg), Pipeline([plugin], config=cfg)


async def one_stream(url: str, events: int, rounds: int) -> dict[str, Any]:
    client = redis.asyncio.Redis.from_url(url)
    local, logged = pipelines(url, client)
    best: dict[str, float] = {"local": 0.0, "redis_write": 0.0, "redis_read": 0.0}
    try:
        for _ in range(rounds):  # interleaved: each round measures every case once
            t0 = time.perf_counter()
            await local.open(words(events)).collect()
            best["local"] = max(best["local"], events / (time.perf_counter() - t0))

            stream = logged.open(words(events))
            t0 = time.perf_counter()
            await stream.collect()
            best["redis_write"] = max(best["redis_write"], events / (time.perf_counter() - t0))

            t0 = time.perf_counter()
            n = 0
            async for _ in read_stream(client, TENANT, stream.id, block_ms=1000):
                n += 1
            best["redis_read"] = max(best["redis_read"], n / (time.perf_counter() - t0))
        await client.flushdb()
    finally:
        await client.aclose()
    return {
        "events_per_stream": events,
        "local_events_per_s": round(best["local"]),
        "redis_write_events_per_s": round(best["redis_write"]),
        "redis_read_events_per_s": round(best["redis_read"]),
        "write_cost_ratio": round(best["local"] / best["redis_write"], 2),
    }


async def many_streams(url: str, streams: int, events: int) -> dict[str, Any]:
    client = redis.asyncio.Redis.from_url(url, max_connections=2 * streams + 10)
    _, logged = pipelines(url, client)
    read_counts: list[int] = []

    async def reader(sid: str) -> None:
        n = 0
        async for _ in read_stream(client, TENANT, sid, block_ms=1000):
            n += 1
        read_counts.append(n)

    async def producer() -> None:
        stream = logged.open(words(events))
        it = stream.__aiter__()
        first = await it.__anext__()  # the log exists now: start the live reader
        readers.append(asyncio.create_task(reader(stream.id)))
        del first
        async for _ in it:
            pass

    readers: list[asyncio.Task[None]] = []
    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(streams)))
        written = time.perf_counter() - t0
        await asyncio.gather(*readers)
        read = time.perf_counter() - t0
        await client.flushdb()
    finally:
        await client.aclose()
    total = streams * events
    return {
        "streams": streams,
        "events_per_stream": events,
        "aggregate_write_events_per_s": round(total / written),
        "aggregate_read_events_per_s": round(sum(read_counts) / read),
        "entries_read": sum(read_counts),
    }


async def main_async(quick: bool) -> dict[str, Any]:
    server = RedisServer()
    server.start()
    try:
        single = await one_stream(server.url, 2_000 if quick else 20_000, 2 if quick else 5)
        many = await many_streams(server.url, 100, 100 if quick else 1_000)
    finally:
        server.close()
    return {"redis.one_stream": single, "redis.100_streams": many}


def cases(quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    """For ``benchmarks/run.py``: one case returning both measurements."""
    return {"redis.throughput": lambda: asyncio.run(main_async(quick))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = asyncio.run(main_async(args.quick))
    if args.json:
        print(json.dumps(result))
        return
    one, many = result["redis.one_stream"], result["redis.100_streams"]
    print(f"one stream, {one['events_per_stream']} events:")
    print(f"  local only        {one['local_events_per_s']:>10,} events/s")
    print(
        f"  + Redis log write {one['redis_write_events_per_s']:>10,} events/s  ({one['write_cost_ratio']}x the floor)"
    )
    print(f"  Redis log read    {one['redis_read_events_per_s']:>10,} events/s")
    print(
        f"{many['streams']} concurrent streams x {many['events_per_stream']} events, each with a live reader:"
    )
    print(f"  written           {many['aggregate_write_events_per_s']:>10,} events/s (all streams)")
    print(f"  read              {many['aggregate_read_events_per_s']:>10,} events/s (all readers)")


if __name__ == "__main__":
    main()
