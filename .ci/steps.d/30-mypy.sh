#!/usr/bin/env bash
# Type check: the package under mypy --strict, zero errors (pinned, so a new mypy release cannot break CI).
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m pip install -q "mypy==$(cat .ci/mypy-version)"
python -m mypy --strict schwarm_stream
