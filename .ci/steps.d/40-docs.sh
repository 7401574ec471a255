#!/usr/bin/env bash
# Build the documentation site in strict mode: broken links and missing references fail CI.
set -euo pipefail
pip install -q -e '.[docs]'
mkdocs build --strict --site-dir "$(mktemp -d)"
