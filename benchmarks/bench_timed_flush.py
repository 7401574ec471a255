"""What a time-limited buffer costs per event: ``Buffer(max_delay=...)`` against a count-only buffer.

With ``max_delay`` the buffer asks the core to flush on time (``Stream.flush_after``), and while such a
flush is pending the core reads the provider through a task, so that a flush can be delivered while the
provider is silent. Both pipelines run side by side over the same prebuilt text chunks, in one run.

    python benchmarks/bench_timed_flush.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from schwarm_stream import Pipeline
from schwarm_stream.builtins.buffer import Buffer
from schwarm_stream.sources import from_iterator


async def _us_per_event(pipeline: Pipeline, items: list[str]) -> float:
    t = time.process_time()
    async with pipeline.open(from_iterator(lambda: iter(items))) as stream:
        async for _ in stream:
            pass
    return (time.process_time() - t) / len(items) * 1e6


async def measure(quick: bool) -> dict[str, Any]:
    items = ["tok"] * (5_000 if quick else 20_000)
    cfg = {"plugins": {"autoload": False}}
    count_only = Pipeline([Buffer(max_events=4)], config=cfg)
    timed = Pipeline([Buffer(max_events=4, max_delay=10.0)], config=cfg)
    a: list[float] = []
    b: list[float] = []
    for _ in range(3 if quick else 7):  # interleaved rounds
        a.append(await _us_per_event(count_only, items))
        b.append(await _us_per_event(timed, items))
    return {
        "buffer.count_only_us_per_event": min(a),
        "buffer.max_delay_us_per_event": min(b),
        "buffer.max_delay_added_us_per_event": min(b) - min(a),
    }


def cases(quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    """For ``benchmarks/run.py``."""
    return {"buffer.timed_flush": lambda: asyncio.run(measure(quick))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = asyncio.run(measure(args.quick))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:40} {value:8.2f} µs (min of rounds)")


if __name__ == "__main__":
    main()
