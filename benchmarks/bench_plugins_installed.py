"""What installed-but-unconfigured plugins cost per chunk, before and after ``stream_active``.

Three pipelines over the same prebuilt text chunks, interleaved in one run:

- ``autoload_off``: no entry-point plugins (the floor);
- ``installed``: ``Pipeline()`` as installed (autoload on, this repository's plugins installed,
  none configured): with ``stream_active`` their stream hooks are not in the table;
- ``installed_all_hooks``: the same pipeline with the hook table rebuilt without asking
  ``stream_active`` (what every stream ran before: each plugin's hooks, returning early).

    python benchmarks/bench_plugins_installed.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from schwarm_stream import Pipeline
from schwarm_stream._dispatch import HookTable
from schwarm_stream.sources import from_iterator


async def _us_per_chunk(pipeline: Pipeline, items: list[str]) -> float:
    t = time.process_time()
    async with pipeline.open(from_iterator(lambda: iter(items))) as stream:
        async for _ in stream:
            pass
    return (time.process_time() - t) / len(items) * 1e6


async def measure(quick: bool) -> dict[str, Any]:
    items = ["tok"] * (5_000 if quick else 20_000)
    floor = Pipeline(config={"plugins": {"autoload": False}})
    installed = Pipeline()
    everything = Pipeline()
    pm = everything.plugin_manager
    everything._table = HookTable(pm)  # no config: nobody is asked, every impl is in the table
    res: dict[str, list[float]] = {"autoload_off": [], "installed": [], "installed_all_hooks": []}
    for _ in range(5 if quick else 9):  # interleaved rounds
        res["autoload_off"].append(await _us_per_chunk(floor, items))
        res["installed"].append(await _us_per_chunk(installed, items))
        res["installed_all_hooks"].append(await _us_per_chunk(everything, items))
    best = {k: min(v) for k, v in res.items()}
    return {
        "plugins.autoload_off_us_per_chunk": best["autoload_off"],
        "plugins.installed_us_per_chunk": best["installed"],
        "plugins.installed_all_hooks_us_per_chunk": best["installed_all_hooks"],
        "plugins.installed_added_us_per_chunk": best["installed"] - best["autoload_off"],
        "plugins.all_hooks_added_us_per_chunk": best["installed_all_hooks"] - best["autoload_off"],
        "plugins.inactive": sorted(getattr(installed._ensure()[1], "inactive", ())),
    }


def cases(quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    """For ``benchmarks/run.py``."""
    return {"plugins.installed": lambda: asyncio.run(measure(quick))}


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
        if isinstance(value, float):
            print(f"{name:45s} {value:8.2f} µs (min of rounds)")
        else:
            print(f"{name:45s} {value}")


if __name__ == "__main__":
    main()
