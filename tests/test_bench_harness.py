"""The benchmark harness works and measures what it says (no timing is asserted anywhere)."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import _docs  # noqa: E402
import _e2e  # noqa: E402
import _scale_net  # noqa: E402
import _server  # noqa: E402
import _user  # noqa: E402
import bench_hedge  # noqa: E402
import run  # noqa: E402
from _workload import workload  # noqa: E402


@pytest.fixture(scope="module")
def server() -> Iterator[_e2e.Server]:
    with _e2e.Server() as s:
        yield s


def test_floor_accumulator_gets_the_whole_answer() -> None:
    w = workload()
    acc: dict[str, Any] = {"text": [], "tools": {}}
    # Split as a socket might: events cut in arbitrary places are reassembled by floor_stream's buffer;
    # here the accumulator gets whole events.
    _user.floor_accumulate(b"".join(w.chat_sse).split(b"\n\n"), acc)
    _user.check_floor(acc, w)
    with pytest.raises(AssertionError):
        _user.check_floor({"text": ["x"], "tools": {}}, w)


def test_server_serves_the_same_answer_as_anthropic_events() -> None:
    b = _server.bodies()
    events = [json.loads(f.split(b"data: ", 1)[1].split(b"\n", 1)[0]) for f in b["anthropic"][:-1]]
    assert events == workload().anthropic_dicts
    short = [
        json.loads(f.split(b"data: ", 1)[1].split(b"\n", 1)[0])["type"] for f in b["anthropic_short"][:-1]
    ]
    assert short[0] == "message_start" and short[-3:] == [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert b["anthropic_short"][-1] == b["full"][-1] == b"0\r\n\r\n"


def test_every_headline_row_accumulates_the_expected_answer_over_loopback(server: _e2e.Server) -> None:
    """One rep of each row: each checks its own result against the workload (a wrong result raises)."""
    w = workload()

    async def main() -> tuple[list[str], dict[str, str]]:
        c = _user.UserClients(server.url)
        try:
            cases = _user.openai_cases(c, w) + _user.anthropic_cases(c, w)
            for case in cases:
                await case.fn(1)
        finally:
            await c.aclose()
        return [case.name for case in cases], c.skipped

    names, skipped = asyncio.run(main())
    for name in (
        "user.floor",
        "user.sdk_bare",
        "user.sdk_accumulator",
        "user.open_native",
        "user.all_on_native",
    ):
        assert name in names
    for name in ("anthropic.message_stream", "anthropic.open_native", "anthropic.all_on_sdk"):
        assert name in names
    # An optional contender is either measured or its absence explained.
    for name in _user.OPTIONAL:
        assert (name in names) != (name in skipped)


def test_all_on_pipeline_has_every_builtin() -> None:
    pipeline, _providers = _user.all_on_pipeline()
    active = set(_user.pipeline_plugins(pipeline))
    assert {"accumulate", "metrics", "buffer", "retry", "recovery", "timeouts"} <= active


def test_scale_over_sockets_completes_and_measures(server: _e2e.Server) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    point = asyncio.run(_scale_net.paced(server.url, pid, streams=5, n=4, interval=0.01))
    assert point["all_complete"], point
    assert point["chunks"] == 5 * 4  # every text chunk seen, once
    assert point["added_delay_ms_p99"] is not None and point["cpu_us_per_chunk"] > 0
    mem = asyncio.run(_scale_net.memory(server.url, streams=5))
    assert mem["streams"] == 5 and mem["kib_traced_per_stream"] > 0


def test_tuned_gc_applies_the_server_setting_and_restores_the_defaults() -> None:
    import gc

    before = gc.get_threshold()
    with _scale_net.tuned_gc():
        assert gc.get_threshold() == _scale_net.GC_TUNED_THRESHOLDS and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_raise_nofile_never_lowers_the_limit() -> None:
    import resource

    before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    got = _scale_net.raise_nofile(100)
    assert got["soft"] >= before and got["soft"] == got["hard"]


def test_hedge_correlated_model_ties_the_backup_to_the_primary() -> None:
    rng = random.Random(1)
    tied = 0
    for _ in range(2000):
        primary = bench_hedge.draw(rng)
        backup = bench_hedge.backup_draw(rng, primary, "correlated")
        tied += 0.8 * primary <= backup <= 1.25 * primary
    assert tied / 2000 >= bench_hedge.RHO  # tied ones, plus independent draws that land there by chance
    rng = random.Random(1)
    assert bench_hedge.backup_draw(rng, 1.0, "independent") <= bench_hedge.TAIL_CAP


def test_redis_section_is_skipped_with_a_reason_without_redis_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run.shutil, "which", lambda name: None)
    why = run.REQUIRES["bench_redis"]()
    assert why and "redis-server" in why
    assert "bench_redis" in run.EXTRA_MODULES


def _fake_out() -> dict[str, Any]:
    row = {"median_us": 10.0, "min_us": 9.0, "x_floor": 1.0, "note": "n", "clock": "cpu"}
    return {
        "machine": {
            "date": "d",
            "python": "p",
            "platform": "x",
            "cpu": "c",
            "cores": 2,
            "versions": {"a": "1"},
        },
        "mode": "quick",
        "workload": {"chunks": 10, "text_chars": 5, "tool_calls": 2},
        "results": {},
        "user": {
            "rows": {"user.floor": row, "user.sdk_bare": {**row, "median_us": 50.0}},
            "ratios": {"open_native/floor": 1.3, "all_on_native/sdk_bare": 0.2},
            "skipped": {"user.litellm": "litellm not installed"},
            "pipelines": {"open": ["accumulate"], "autoload_off": ["accumulate"], "all_on": ["accumulate"]},
        },
        "installed_plugins_us_per_chunk": {"median": 0.05, "per_round": [0.05], "plugins": ["jsonl"]},
        "ttfe": {
            "samples": 3,
            "median_ms": {"sdk_bare": 1.0, "open_sdk": 1.3},
            "p99_ms": {"sdk_bare": 2.0, "open_sdk": 2.5},
            "min_ms": {"sdk_bare": 0.9, "open_sdk": 1.1},
            "open_over_sdk_bare_ms": {"open_sdk": {"p50": 0.3, "p99": 0.5}},
        },
    }


def test_targets_are_met_or_unmet_from_the_ratios() -> None:
    t = run.targets(_fake_out())
    assert t["native_over_floor"]["met"] is False and t["native_over_floor"]["value"] == 1.3
    assert t["all_on_native_over_sdk_bare"]["met"] is True
    assert t["installed_unconfigured_plugins_us_per_chunk"]["met"] is True
    assert t["first_event_p50_open_sdk_over_sdk_bare_ms"]["met"] is False
    assert "anthropic.all_on_sdk_over_message_stream" not in t  # not measured: not reported as met


def test_docs_page_shows_targets_the_command_and_skipped_rows() -> None:
    out = _fake_out()
    out["targets"] = run.targets(out)
    page = _docs.render(out)
    assert "python benchmarks/run.py --write-docs" in page
    assert "**unmet**" in page and "| met |" in page
    assert "`user.litellm`: litellm not installed" in page
    assert "1.300" in page  # the measured ratio itself
