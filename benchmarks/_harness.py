"""Interleaved rounds: every case once per round, ratios to the floor taken per round.

A case is an async callable ``fn(reps) -> None`` that processes the whole
stream ``reps`` times. Reps are calibrated so one measurement takes about
``target`` seconds; then each round runs every case once, in the same order,
after a ``gc.collect()``. Machine noise hits every case of a round alike, so
the median of the per-round ratios to the floor is steadier than a ratio of
medians.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Runner = Callable[[int], Awaitable[Any]]


@dataclass
class Case:
    """One benchmark entry: ``units`` chunks processed per rep of ``fn``."""

    name: str
    fn: Runner
    units: int
    note: str = ""
    clock: str = "wall"  # "wall" (perf_counter) or "cpu" (process_time)
    extra: dict[str, Any] = field(default_factory=dict)
    reps: int = 1
    samples: list[float] = field(default_factory=list)  # µs per unit, one per round


def _clock(kind: str) -> Callable[[], float]:
    return time.process_time if kind == "cpu" else time.perf_counter


async def calibrate(case: Case, target: float, max_reps: int = 100_000) -> None:
    clock = _clock(case.clock)
    await case.fn(1)  # warm: lazy imports, caches, connections
    t0 = clock()
    await case.fn(1)
    one = max(clock() - t0, 1e-6)
    case.reps = max(1, min(max_reps, int(target / one)))


async def run_rounds(
    cases: list[Case], *, rounds: int, target: float, log: Callable[[str], None] = print
) -> None:
    for case in cases:
        await calibrate(case, target)
    for r in range(rounds):
        for case in cases:
            clock = _clock(case.clock)
            gc.collect()
            t0 = clock()
            await case.fn(case.reps)
            case.samples.append((clock() - t0) / (case.reps * case.units) * 1e6)
        log(f"  round {r + 1}/{rounds}")


def summarize(cases: list[Case], floor: Case) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        ratios = [s / f for s, f in zip(case.samples, floor.samples, strict=True)]
        out[case.name] = {
            "median_us": statistics.median(case.samples),
            "min_us": min(case.samples),
            "x_floor": statistics.median(ratios),
            "clock": case.clock,
            "reps": case.reps,
            "units": case.units,
            "note": case.note,
            **case.extra,
        }
    return out


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def pair_ratio(cases: list[Case], a: str, b: str) -> float | None:
    """Median over rounds of ``a``'s time over ``b``'s in the same round (both interleaved in one run)."""
    by = {c.name: c for c in cases}
    if a not in by or b not in by or not by[a].samples:
        return None
    return statistics.median(x / y for x, y in zip(by[a].samples, by[b].samples, strict=True))
