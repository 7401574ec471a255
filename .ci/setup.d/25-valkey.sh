#!/usr/bin/env bash
# valkey-server for plugins/schwarm-stream-redis/tests/test_redis_cluster.py::test_the_log_works_on_valkey.
# Debian trixie packages it in main; bookworm only in bookworm-backports (8.0.x), which this script adds
# as an apt source when the configured suites have no candidate (backports are pinned at priority 100 by
# apt's defaults: nothing else is upgraded from them). Where neither has it the test is skipped with the
# reason; nothing else needs it. The tests start their own server: no service is used.
set -euo pipefail
if command -v valkey-server >/dev/null 2>&1; then
  valkey-server --version
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
candidate() { apt-cache policy valkey-server 2>/dev/null | awk '/Candidate:/ {print $2}'; }
$SUDO apt-get update -qq
target=()
if [ -z "$(candidate)" ] || [ "$(candidate)" = "(none)" ]; then
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  if [ "$codename" = "bookworm" ]; then
    echo "valkey-server: not in the configured suites; adding bookworm-backports"
    printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: bookworm-backports" \
      "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" |
      $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
    $SUDO apt-get update -qq
    target=(-t bookworm-backports)
  fi
fi
if [ -z "$(candidate)" ] || [ "$(candidate)" = "(none)" ]; then
  echo "valkey-server: not packaged here; the Valkey test will be skipped"
  exit 0
fi
# the package may try to start a system service; the tests never use it
$SUDO apt-get install -y -qq --no-install-recommends "${target[@]}" valkey-server
valkey-server --version
