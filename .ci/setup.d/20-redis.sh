#!/usr/bin/env bash
# redis-server for the schwarm-stream-redis tests and benchmark. Only installed here: the tests start and
# stop their own servers on free loopback ports (no persistence), so no service is started.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  redis-server --version
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends redis-server
# the package may start a system service on :6379; the tests never use it
redis-server --version
