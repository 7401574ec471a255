"""Hedged requests against a provider whose time to first chunk has a heavy tail.

A simulated provider (in process, so only scheduling is measured) answers after
a first-chunk latency drawn from a mixture: 95 % fast (5-15 ms), 5 % from a
Pareto tail (≥ 80 ms, capped at 1.5 s) — the shape of real provider queues.
The same seeded sequence of draws is replayed without and with hedging
(``HedgePolicy(percentile=90, max_extra_share=0.10)``), side by side in one run.

Two latency models for the backup request:

- ``independent``: the backup's latency is a fresh draw from the same mixture,
  independent of the primary's (the best case for hedging: a slow primary says
  nothing about the backup);
- ``correlated``: with probability ``RHO`` (0.7) the backup shares the primary's
  condition (the same overloaded region or queue): its latency is the primary's
  times a factor in [0.8, 1.25]; otherwise a fresh draw. A slow primary then
  mostly means a slow backup, and hedging helps far less.

Reports p50/p95/p99 time to first chunk, the speed-up factor at p99, and the
share of requests that started a backup, per model.

    python benchmarks/bench_hedge.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from schwarm_stream import Pipeline
from schwarm_stream.compose.multi import HedgePolicy, hedge
from schwarm_stream.sources import from_iterator

FAST = (0.005, 0.015)
TAIL_SHARE = 0.05
TAIL_MIN, TAIL_ALPHA, TAIL_CAP = 0.080, 1.5, 1.5
RHO = 0.7  # correlated model: the share of backups that share the primary's condition
MODELS = {
    "independent": "backup latency drawn independently of the primary's, from the same mixture",
    "correlated": f"with probability {RHO} the backup's latency is the primary's x U(0.8, 1.25), else independent",
}
LATENCY_MODEL = (
    f"first-chunk latency: {100 - TAIL_SHARE * 100:.0f} % uniform {FAST[0] * 1e3:.0f}-{FAST[1] * 1e3:.0f} ms, "
    f"{TAIL_SHARE * 100:.0f} % Pareto(alpha={TAIL_ALPHA}) from {TAIL_MIN * 1e3:.0f} ms, capped at {TAIL_CAP} s; "
    "simulated in process (asyncio.sleep), no sockets"
)


def draw(rng: random.Random) -> float:
    """One first-chunk latency from the heavy-tailed mixture."""
    if rng.random() < TAIL_SHARE:
        return min(TAIL_CAP, TAIL_MIN * rng.paretovariate(TAIL_ALPHA))
    return rng.uniform(*FAST)


def backup_draw(rng: random.Random, primary: float, model: str) -> float:
    """The backup request's latency under ``model`` (see the module docstring)."""
    if model == "correlated" and rng.random() < RHO:
        return primary * rng.uniform(0.8, 1.25)
    return draw(rng)


def provider(latency: float) -> Any:
    async def answer() -> AsyncIterator[str]:
        await asyncio.sleep(latency)
        for word in ("It ", "is ", "sunny."):
            yield word

    return from_iterator(lambda: answer())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(
    requests: int, *, hedged: bool, seed: int = 7, concurrency: int = 25, model: str = "independent"
) -> dict[str, Any]:
    rng = random.Random(seed)  # same draws for both runs: primary, then backup, per request
    draws = []
    for _ in range(requests):
        primary = draw(rng)
        draws.append((primary, backup_draw(rng, primary, model)))
    pipeline = Pipeline(config={"plugins": {"autoload": False}})
    policy = HedgePolicy(percentile=90, max_extra_share=0.10)
    policy.tracker.initial = 0.05  # before any observation: a conservative 50 ms
    ttfc: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def one(primary: float, backup: float) -> None:
        async with sem:
            t0 = time.monotonic()
            if hedged:
                raced = hedge(provider(primary), provider(backup), policy=policy, pipeline=pipeline)
                async with raced as r:
                    first = None
                    async for ev in r:
                        if first is None and ev.is_content:
                            first = time.monotonic() - t0
            else:
                async with pipeline.open(provider(primary)) as s:
                    first = None
                    async for ev in s:
                        if first is None and ev.is_content:
                            first = time.monotonic() - t0
            assert first is not None
            ttfc.append(first)

    await asyncio.gather(*(one(p, b) for p, b in draws))
    return {
        "requests": requests,
        "p50_ms": percentile(ttfc, 50) * 1000,
        "p95_ms": percentile(ttfc, 95) * 1000,
        "p99_ms": percentile(ttfc, 99) * 1000,
        "mean_ms": statistics.fmean(ttfc) * 1000,
        "extra_requests_share": (policy.hedged / policy.requests) if hedged else 0.0,
        "max_extra_share": policy.max_extra_share if hedged else 0.0,
    }


async def main_async(quick: bool, model: str = "independent") -> dict[str, Any]:
    n = 120 if quick else 600
    plain = await run(n, hedged=False, model=model)
    hedged = await run(n, hedged=True, model=model)
    return {
        "latency_model": LATENCY_MODEL,
        "backup_model": MODELS[model],
        "hedge.off": plain,
        "hedge.on": hedged,
        "hedge.p99_speedup": plain["p99_ms"] / hedged["p99_ms"],
    }


def cases(quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    """For ``benchmarks/run.py``: one case per latency model, each the side-by-side result."""
    return {
        "hedge.heavy_tail": lambda: asyncio.run(main_async(quick)),
        "hedge.correlated": lambda: asyncio.run(main_async(quick, "correlated")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = {model: asyncio.run(main_async(args.quick, model)) for model in MODELS}
    if args.json:
        print(json.dumps(results))
        return
    print(LATENCY_MODEL)
    for model, result in results.items():
        print(f"\nbackup latency {model}: {result['backup_model']}")
        off, on = result["hedge.off"], result["hedge.on"]
        print(f"{'':<12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'extra requests':>16}")
        for name, r in (("no hedging", off), ("hedged", on)):
            print(
                f"{name:<12}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}{r['p99_ms']:>9.1f}"
                f"{r['extra_requests_share'] * 100:>15.1f}%"
            )
        print(
            f"p99 time to first chunk: {result['hedge.p99_speedup']:.1f}x lower with hedging "
            f"(backups capped at {on['max_extra_share'] * 100:.0f}% of requests)"
        )


if __name__ == "__main__":
    main()
