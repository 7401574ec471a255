"""The benchmark runner: every contender side by side, in one run.

    python benchmarks/run.py                 # full run (a few minutes)
    python benchmarks/run.py --quick         # short run (CI smoke test; numbers are rough)
    python benchmarks/run.py --json          # machine-readable results on stdout
    python benchmarks/run.py --write-docs    # also regenerate docs/performance.md

Sections (``--only``): ``user`` (the headline: what a user gets, ``open()`` as
installed over a loopback socket, next to the alternatives; ``_user.py``),
``inproc`` (in-process µs per chunk over prebuilt objects), ``e2e`` (the older
end-to-end rows), ``ttfe`` (time to first event, p50/p99), ``scale`` (real
sockets, 10 to 10,000 concurrent streams; ``_scale_net.py``),
``scale_inprocess`` (paced in-process sources, no sockets), and ``extra`` (the
cases of ``benchmarks/bench_*.py`` modules that expose ``cases(quick)``; Redis
only where ``redis-server`` is installed). Timing is reported, never asserted:
the targets below are informational.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import json
import os
import platform
import shutil
import statistics
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
import _scale_net  # noqa: E402
import _user  # noqa: E402
from _workload import workload  # noqa: E402

PACKAGES = [
    "schwarm-stream",
    "openai",
    "anthropic",
    "langchain-core",
    "langchain-openai",
    "litellm",
    "pydantic-ai-slim",
    "httpx",
    "httpx-sse",
    "orjson",
    "pydantic",
    "pluggy",
    "opentelemetry-sdk",
]
#: bench_*.py modules whose cases are included (each exposes ``cases(quick) -> {name: fn() -> dict}``).
EXTRA_MODULES = ("bench_metrics", "bench_hedge", "bench_timed_flush", "bench_redis")
#: Why an extra module cannot run on this machine (checked before importing it), or None.
REQUIRES: dict[str, Any] = {
    "bench_redis": lambda: (
        None if shutil.which("redis-server") else "redis-server is not installed (on PATH)"
    ),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    vers: dict[str, str | None] = {}
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
    rounds, target = (3, 0.05) if quick else (5, 0.3)
    out: dict[str, Any] = {
        "machine": machine(),
        "mode": "quick" if quick else "full",
        "workload": {"chunks": w.chunks, "text_chars": len(w.text), "tool_calls": len(w.tool_arguments)},
    }
    results: dict[str, Any] = {}
    if "user" in sections:
        with _e2e.Server() as server:
            log(f"as a user gets it (loopback): {rounds} rounds")
            uc = _user.UserClients(server.url)
            try:
                cases = _user.openai_cases(uc, w) + _user.anthropic_cases(uc, w)
                await _harness.run_rounds(cases, rounds=rounds, target=target * 3, log=log)
            finally:
                await uc.aclose()
            user = _harness.summarize(cases, cases[0])
            pairs = {
                "open_native/floor": ("user.open_native", "user.floor"),
                "open_native/sdk_bare": ("user.open_native", "user.sdk_bare"),
                "open_sdk/sdk_bare": ("user.open_sdk", "user.sdk_bare"),
                "open_native/sdk_accumulator": ("user.open_native", "user.sdk_accumulator"),
                "open_native/autoload_off": ("user.open_native", "user.open_native_autoload_off"),
                "all_on_native/sdk_bare": ("user.all_on_native", "user.sdk_bare"),
                "all_on_sdk/sdk_bare": ("user.all_on_sdk", "user.sdk_bare"),
                "all_on_native/floor": ("user.all_on_native", "user.floor"),
                "langchain/open_native": ("user.langchain", "user.open_native"),
                "litellm/open_native": ("user.litellm", "user.open_native"),
                "pydantic_ai/open_native": ("user.pydantic_ai", "user.open_native"),
                "anthropic.message_stream/sdk_bare": ("anthropic.message_stream", "anthropic.sdk_bare"),
                "anthropic.open_sdk/sdk_bare": ("anthropic.open_sdk", "anthropic.sdk_bare"),
                "anthropic.open_native/sdk_bare": ("anthropic.open_native", "anthropic.sdk_bare"),
                "anthropic.all_on_sdk/sdk_bare": ("anthropic.all_on_sdk", "anthropic.sdk_bare"),
                "anthropic.all_on_native/sdk_bare": ("anthropic.all_on_native", "anthropic.sdk_bare"),
                "anthropic.all_on_sdk/message_stream": ("anthropic.all_on_sdk", "anthropic.message_stream"),
                "anthropic.all_on_native/message_stream": (
                    "anthropic.all_on_native",
                    "anthropic.message_stream",
                ),
            }
            ratios = {k: _harness.pair_ratio(cases, a, b) for k, (a, b) in pairs.items()}
            out["user"] = {
                "rows": user,
                "ratios": {k: v for k, v in ratios.items() if v is not None},
                "skipped": uc.skipped,
                "pipelines": uc.info,
            }
    if "inproc" in sections:
        log(f"in-process: {rounds} rounds")
        cases = _inproc.cases(w)
        await _harness.run_rounds(cases, rounds=rounds, target=target, log=log)
        results.update(_harness.summarize(cases, cases[0]))
        gap = [
            i - o
            for i, o in zip(
                cases_by(cases, "schwarm.installed"), cases_by(cases, "schwarm.autoload_off"), strict=True
            )
        ]
        if gap:
            out["installed_plugins_us_per_chunk"] = {
                "median": statistics.median(gap),
                "per_round": gap,
                "plugins": results["schwarm.installed"]["pipeline"]["plugins"],
            }
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
        with _e2e.Server() as server:
            assert server.proc is not None
            out["scale"] = await _scale_net.run(server.url, server.proc.pid, quick=quick, log=log)
    if "scale_inprocess" in sections:
        streams, chunks = (200, 50) if quick else (1000, 200)
        log(f"scale (in process, no sockets): {streams} streams x {chunks} chunks at 50/s")
        out["scale_inprocess"] = await _scale.run(w, streams=streams, chunks=chunks, rate=50.0)
    out["results"] = results
    out["budget"] = budget(out)
    out["targets"] = targets(out)
    return out


def cases_by(cases: list[Any], name: str) -> list[float]:
    """The per-round samples of the case called ``name`` (empty if there is none)."""
    return next((list(c.samples) for c in cases if c.name == name), [])


def targets(out: dict[str, Any]) -> dict[str, Any]:
    """Issue 20's targets against this run's ratios (informational; nothing fails on them)."""
    checks: dict[str, Any] = {}
    ratios = out.get("user", {}).get("ratios", {})

    def add(key: str, value: float | None, goal: str, met: bool, what: str) -> None:
        if value is not None:
            checks[key] = {"value": value, "goal": goal, "met": met, "what": what}

    r = ratios.get("open_native/floor")
    add("native_over_floor", r, "<= 1.15", r is not None and r <= 1.15,
        "open(native_openai_chat) as installed over the hand-written httpx+orjson accumulator")  # fmt: skip
    for key in ("all_on_native/sdk_bare", "all_on_sdk/sdk_bare"):
        r = ratios.get(key)
        add(key.replace("/", "_over_"), r, "<= 0.25", r is not None and r <= 0.25,
            f"every built-in on ({key.split('/')[0].split('_')[-1]}) over the bare OpenAI SDK")  # fmt: skip
    for key in ("anthropic.all_on_sdk/message_stream", "anthropic.all_on_native/message_stream"):
        r = ratios.get(key)
        add(key.replace("/", "_over_"), r, "<= 1.0", r is not None and r <= 1.0,
            f"Anthropic, every built-in on ({key.split('/')[0].split('_')[-1]}), over the SDK's MessageStream")  # fmt: skip
    ip = out.get("installed_plugins_us_per_chunk")
    if ip:
        v = ip["median"]
        add("installed_unconfigured_plugins_us_per_chunk", v, "< 0.1", v < 0.1,
            "in process: Pipeline() as installed minus autoload off, µs per chunk")  # fmt: skip
    t = out.get("ttfe")
    if t and "open_over_sdk_bare_ms" in t:
        for k, v in t["open_over_sdk_bare_ms"].items():
            add(f"first_event_p50_{k}_over_sdk_bare_ms", v["p50"], "<= 0.1", v["p50"] <= 0.1,
                f"first event p50, {k.replace('_', '(')}) minus the bare SDK, ms")  # fmt: skip
    return checks


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
    sc = out.get("scale_inprocess")
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
        why = REQUIRES.get(name, lambda: None)()
        if why:
            log(f"{name}: skipped: {why}")
            extra[name] = {"skipped": why}
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
    default="user,inproc,e2e,ttfe,scale,scale_inprocess,extra",
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
