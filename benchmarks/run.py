"""The benchmark runner: every contender side by side, in one run.

    python benchmarks/run.py                 # full run (a few minutes)
    python benchmarks/run.py --quick         # short run (CI smoke test; numbers are rough)
    python benchmarks/run.py --json          # machine-readable results on stdout
    python benchmarks/run.py --write-docs    # also regenerate docs/performance.md

Sections: in-process µs per chunk (interleaved rounds, ratio to the floor per
round), end to end over loopback HTTP (client CPU µs per chunk), time to first
event, the concurrent-streams scale test, and the cases of
``benchmarks/bench_*.py`` modules that expose ``cases(quick)``. Timing is
reported, never asserted: the budget check below is informational.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import json
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import click

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _docs  # noqa: E402
import _e2e  # noqa: E402
import _harness  # noqa: E402
import _inproc  # noqa: E402
import _scale  # noqa: E402
from _workload import workload  # noqa: E402

PACKAGES = [
    "schwarm-stream",
    "openai",
    "anthropic",
    "langchain-core",
    "httpx",
    "httpx-sse",
    "orjson",
    "pydantic",
    "pluggy",
    "opentelemetry-sdk",
]
#: bench_*.py modules whose cases are included (each exposes ``cases(quick) -> {name: fn() -> dict}``).
EXTRA_MODULES = ("bench_metrics", "bench_hedge", "bench_timed_flush")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    vers = {}
    for p in PACKAGES:
        try:
            vers[p] = version(p)
        except PackageNotFoundError:
            vers[p] = None
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "versions": vers,
    }


async def run_all(quick: bool, sections: set[str]) -> dict[str, Any]:
    w = workload()
    rounds, target = (3, 0.05) if quick else (7, 0.3)
    out: dict[str, Any] = {
        "machine": machine(),
        "mode": "quick" if quick else "full",
        "workload": {"chunks": w.chunks, "text_chars": len(w.text), "tool_calls": len(w.tool_arguments)},
    }
    results: dict[str, Any] = {}
    if "inproc" in sections:
        log(f"in-process: {rounds} rounds")
        cases = _inproc.cases(w)
        await _harness.run_rounds(cases, rounds=rounds, target=target, log=log)
        results.update(_harness.summarize(cases, cases[0]))
        out["first_event_inprocess"] = await _inproc.first_event(w, 200 if quick else 2000)
    if sections & {"e2e", "ttfe"}:
        with _e2e.Server() as server:
            if "e2e" in sections:
                log(f"end to end: {rounds} rounds")
                clients = _e2e.Clients(server.url)
                try:
                    cases = _e2e.cases(clients, w)
                    await _harness.run_rounds(cases, rounds=rounds, target=target * 3, log=log)
                    e2e = _harness.summarize(cases, cases[0])
                finally:
                    await clients.aclose()
                for v in e2e.values():
                    reads = v.pop("reads_per_stream", None)
                    if reads is not None:
                        v["reads_per_stream"] = reads["n"]
                results.update(e2e)
            if "ttfe" in sections:
                log("time to first event")
                out["ttfe"] = await _e2e.measure_ttfe(server.url, 20 if quick else 200)
    if "scale" in sections:
        streams, chunks = (200, 50) if quick else (1000, 200)
        log(f"scale: {streams} streams x {chunks} chunks at 50/s")
        out["scale"] = await _scale.run(w, streams=streams, chunks=chunks, rate=50.0)
    out["results"] = results
    out["budget"] = budget(out)
    return out


def budget(out: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals against this run's numbers (informational; nothing fails on them)."""
    r = out["results"]
    checks: dict[str, Any] = {}

    def med(name: str) -> float | None:
        return r[name]["median_us"] if name in r else None

    d, s, lc = med("schwarm.default"), med("openai.stream_state"), med("langchain.callback_1")
    if d is not None:
        checks["schwarm.default_us_per_chunk"] = {"value": d, "goal": "<= 3", "met": d <= 3}
    if d and s:
        checks["openai.stream_state_over_schwarm.default"] = {
            "value": s / d,
            "goal": ">= 50",
            "met": s / d >= 50,
        }
    if d and lc:
        checks["langchain.callback_1_over_schwarm.default"] = {
            "value": lc / d,
            "goal": ">= 10",
            "met": lc / d >= 10,
        }
    bare, sdk, nat, fl = (
        med(f"e2e.{k}") for k in ("sdk_bare", "sdk_schwarm", "native_schwarm", "transport_floor")
    )
    if bare and nat:
        checks["e2e.sdk_bare_over_native_schwarm"] = {
            "value": bare / nat,
            "goal": ">= 3",
            "met": bare / nat >= 3,
        }
    if bare and sdk:
        checks["e2e.sdk_schwarm_over_sdk_bare"] = {
            "value": sdk / bare,
            "goal": "<= 1.05",
            "met": sdk / bare <= 1.05,
        }
    if fl and nat:
        checks["e2e.native_schwarm_over_transport_floor"] = {
            "value": nat / fl,
            "goal": "<= 2",
            "met": nat / fl <= 2,
        }
    fe = out.get("first_event_inprocess")
    if fe:
        ms = fe["overhead_us"] / 1e3
        checks["ttfe_overhead_ms_inprocess"] = {"value": ms, "goal": "< 0.2", "met": ms < 0.2}
    t = out.get("ttfe")
    if t:
        checks["ttfe_overhead_ms"] = {
            "value": t["overhead_ms_sdk"],
            "goal": "< 0.2",
            "met": t["overhead_ms_sdk"] < 0.2,
        }
    sc = out.get("scale")
    if sc:
        kib = sc["memory"]["kib_per_active_stream"]
        checks["memory_kib_per_active_stream"] = {"value": kib, "goal": "< 32", "met": kib < 32}
        checks["scale_all_complete"] = {
            "value": sc["completed"],
            "goal": sc["streams"],
            "met": sc["all_complete"],
        }
    return checks


def run_extra_modules(quick: bool) -> dict[str, Any]:
    """Cases from other bench_*.py modules (each case runs its own event loop, so outside ours)."""
    extra: dict[str, Any] = {}
    for name in EXTRA_MODULES:
        if not (HERE / f"{name}.py").exists():
            continue
        mod = importlib.import_module(name)
        cases = getattr(mod, "cases", None)
        if cases is None:
            extra[name] = {"error": "no cases(quick) function"}
            continue
        for case, fn in cases(quick).items():
            log(f"{name}: {case}")
            extra[f"{name}.{case}"] = fn()
    return extra


def print_table(out: dict[str, Any]) -> None:
    print(_docs.results_table(out))
    print()
    print(_docs.other_tables(out))


@click.command()
@click.option("--quick", is_flag=True, help="Short run: fewer rounds, smaller scale test.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option("--write-docs", is_flag=True, help="Regenerate docs/performance.md from this run.")
@click.option(
    "--only",
    default="inproc,e2e,ttfe,scale,extra",
    show_default=True,
    help="Comma-separated sections to run.",
)
def main(quick: bool, as_json: bool, write_docs: bool, only: str) -> None:
    """Run the benchmarks side by side and report median µs per chunk and the ratio to the floor."""
    sections = {s.strip() for s in only.split(",") if s.strip()}
    out = asyncio.run(run_all(quick, sections))
    if "extra" in sections:
        out["extra"] = run_extra_modules(quick)
    if write_docs:
        path = HERE.parent / "docs" / "performance.md"
        path.write_text(_docs.render(out))
        log(f"wrote {path}")
    if as_json:
        print(json.dumps(out, indent=1, default=str))
    else:
        print_table(out)


if __name__ == "__main__":
    main()
