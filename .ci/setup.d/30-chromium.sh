#!/usr/bin/env bash
# Headless Chromium and its WebDriver for tests/test_web_chat_browser.py (Debian packages).
set -euo pipefail
if command -v chromium >/dev/null && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
chromium --version
