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
    "openai.stream_state", "anthropic.accumulate", "langchain.merge", "langchain.callback_1",
    "e2e.transport_floor", "e2e.sdk_bare", "e2e.sdk_schwarm", "e2e.native_schwarm",
]
missing = [name for name in expected if name not in data["results"]]
assert not missing, f"benchmark entries missing: {missing}"
assert data["ttfe"]["median_ms"], "no time-to-first-event results"
assert data["scale"]["all_complete"], f"scale test: only {data['scale']['completed']} streams completed"
print(f"benchmark smoke test: {len(data['results'])} entries, ttfe and scale present")
PY
rm -f "$out"
