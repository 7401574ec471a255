#!/usr/bin/env bash
# Benchmark smoke test: the runner must run end to end and report every entry.
# No timing is asserted anywhere (numbers on CI machines mean nothing); only that it works.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m pip install -q -e '.[bench]'
out="$(mktemp)"
python benchmarks/run.py --quick --json > "$out"
python - "$out" <<'PY'
import json, sys

data = json.load(open(sys.argv[1]))
expected = [
    "floor", "schwarm.no_plugins", "schwarm.default", "schwarm.default+transformer+sse",
    "schwarm.installed", "schwarm.autoload_off",
    "openai.stream_state", "anthropic.accumulate", "langchain.merge", "langchain.callback_1",
    "e2e.transport_floor", "e2e.sdk_bare", "e2e.sdk_schwarm", "e2e.native_schwarm",
]
missing = [name for name in expected if name not in data["results"]]
assert not missing, f"in-process/e2e entries missing: {missing}"
user = [
    "user.floor", "user.sdk_bare", "user.sdk_accumulator", "user.open_native", "user.open_sdk",
    "user.all_on_native", "user.all_on_sdk", "anthropic.sdk_bare", "anthropic.message_stream",
    "anthropic.open_native", "anthropic.all_on_sdk",
]
rows = data["user"]["rows"]
missing = [name for name in user if name not in rows]
assert not missing, f"headline entries missing: {missing}"
for name in ("user.langchain", "user.litellm", "user.pydantic_ai"):
    assert name in rows or name in data["user"]["skipped"], f"{name}: neither measured nor explained"
assert data["ttfe"]["median_ms"] and data["ttfe"]["p99_ms"], "no time-to-first-event results"
scale = data["scale"]
points = scale["headroom"] + scale["curve"]
assert points and all(p["all_complete"] for p in points), f"scale over sockets: {[(p['streams'], p['completed'], p['errors']) for p in points]}"
assert all("memory" in p for p in scale["curve"]), "scale curve without memory per stream"
assert data["targets"], "no target computed"
for key in ("bench_hedge.hedge.heavy_tail", "bench_hedge.hedge.correlated"):
    assert "latency_model" in data["extra"][key], f"{key}: no latency model stated"
print(f"benchmark smoke test: {len(data['results'])} in-process/e2e entries, {len(rows)} headline rows, "
      f"{len(points)} scale points, {len(data['targets'])} targets")
PY
rm -f "$out"
