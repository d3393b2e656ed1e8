"""Inference Arena web app: `python app.py` (port from GRADIO_SERVER_PORT, default 7860)."""

import os

from arena.core import quiet

if os.environ.get("ARENA_SAMPLE_STACKS"):  # where the server's time goes, for benchmarks/server_e2e.py
    from arena.core import stack_sampler

    stack_sampler.from_env()
quiet.silence()  # library noise off (ARENA_VERBOSE=1 keeps it), before the libraries load

from arena.ui.web.app import launch  # noqa: E402

if __name__ == "__main__":
    launch()
