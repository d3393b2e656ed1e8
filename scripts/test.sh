#!/usr/bin/env bash
# Sets up (if needed) and runs the whole test suite on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The browser test drives Debian's Chromium; install it where we can (it is skipped, with its
# reason, where we cannot).
if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
    >/dev/null 2>&1 || echo "could not install chromium; the browser test will be skipped"
fi
exec .venv/bin/python -m pytest "$@"
