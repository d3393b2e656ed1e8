#!/usr/bin/env bash
# Sets up (if needed) and runs the arena on the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f app.py ]; then exec .venv/bin/python app.py "$@"; fi
exec .venv/bin/python -m arena run --model default --configs eager,sdpa,bnb-nf4,ort-cpu --show-text "$@"
