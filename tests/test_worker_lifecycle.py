"""Workers started by the real web server (`python app.py`): they import none of the web app's
libraries, a repeated identical run reuses the warm one, and a SIGKILLed server leaves no
worker behind. Also the CLI's sweep of prompts on one pool."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil
from gradio_client import Client

from tests.appserver import ROOT, AppServer

ARGS = {"prompt": "hi", "model": "synthetic:tiny-llama", "configs": "sdpa", "max_new_tokens": 4, "repeats": 1,
            "prompt_tokens": 16, "api_name": "/run"}


def _final(client: Client) -> dict:
    return client.predict(**ARGS)


def test_server_workers_are_clean_warm_and_die_with_the_server(tmp_path):
    server = AppServer(tmp_path / "arena.sqlite").start()
    try:
        client = Client(server.url, verbose=False)
        first = _final(client)["results"][0]
        second = _final(client)["results"][0]
        assert first["status"] == "ok" and second["status"] == "ok", (first["reason"], second["reason"])
        assert first["warm"] is False and second["warm"] is True and second["load_s"] is None
        assert second["token_ids"] == first["token_ids"]
        assert set(second["stage_s"]) >= {"start", "timed", "after"}
        rows = client.predict(api_name="/workers")
        [worker] = [r for r in rows if not r.get("spare")]
        assert worker["config"] == "sdpa" and worker["runs"] == 2
        for row in rows:  # the warm worker, and the spare once ready
            assert row["foreign_modules"] == [], row  # no gradio, pandas or plotly in a worker
        children = psutil.Process(server.proc.pid).children(recursive=True)
        assert worker["pid"] in {c.pid for c in children}
    finally:
        server.kill(signal.SIGKILL)
    deadline = time.monotonic() + 10
    left = children
    while left and time.monotonic() < deadline:
        left = [c for c in left if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    assert not left, f"left behind: {[(c.pid, c.cmdline()[-2:]) for c in left]}"


def test_cli_prompts_file_reuses_the_warm_workers(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is the capital of France?\n\nWrite a haiku about GPUs.\n")
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "arena", "run", "--model", "synthetic:tiny-llama", "--configs", "sdpa",
         "--max-new-tokens", "4", "--repeats", "1", "--prompt-tokens", "16", "--prompts", str(prompts),
         "--no-store", "--quiet", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, second = json.loads(out.read_text())
    assert first["warm"] is False and first["load_s"] is not None
    assert second["warm"] is True and second["load_s"] is None
    assert "wall time by stage" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "arena", "run", "--prompts", str(tmp_path / "missing.txt")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: cannot read --prompts")
