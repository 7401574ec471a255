#!/usr/bin/env bash
# The `ai` npm package (tests/test_vercel_protocol.py) and `eventsource` (the Starlette plugin's SSE tests): installed exactly as tests/js/package-lock.json pins it.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v npm >/dev/null; then
  echo "npm is required for the Vercel protocol tests (install node and npm)" >&2
  exit 1
fi
npm ci --prefix tests/js --no-audit --no-fund
node -e 'console.log("ai", require("./tests/js/node_modules/ai/package.json").version)'
