#!/usr/bin/env bash
# valkey-server for plugins/schwarm-stream-redis/tests/test_redis_cluster.py::test_the_log_works_on_valkey,
# where the distribution packages it (Debian trixie does, bookworm does not). Without it that test is
# skipped with the reason; nothing else needs it. The tests start their own server: no service is used.
set -euo pipefail
if command -v valkey-server >/dev/null 2>&1; then
  valkey-server --version
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
candidate="$(apt-cache policy valkey-server 2>/dev/null | awk '/Candidate:/ {print $2}')"
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
  echo "valkey-server: not packaged here; the Valkey test will be skipped"
  exit 0
fi
$SUDO apt-get install -y -qq --no-install-recommends valkey-server
valkey-server --version
