#!/usr/bin/env bash
# Sets up (if needed) and starts the web app on the embedded default model
# (http://127.0.0.1:7860; GRADIO_SERVER_PORT and GRADIO_SERVER_NAME change it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python app.py "$@"
