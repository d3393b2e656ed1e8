"""What a user reads is ours: library noise stays out of the CLI's and its workers' output
(arena/core/quiet.py), ARENA_VERBOSE brings it back, and an unknown message still shows."""

import os
import re
import subprocess
import sys

# Every line the CLI itself writes on a run of the embedded default (stdout and stderr).
OURS = re.compile("|".join([
    r"\[[\w.+-]+\] (starting|loading|warming up|running \d+/\d+|scoring|ok)",
    r"\[ort-cpu\] exporting to ONNX \(.*\)",
    r"\[ort-cpu\] ok \(ONNX export [\d.]+ s, cached for next time\)",
    r"Converting embedded SmolLM2 \(once\):.*",  # our one-time progress bar (arena/models/gguf.py)
    r"model: .*", r"hardware: .*", r"configuration +status .*", r"[- ]+",
    r"(eager|sdpa|ort-cpu|torchao-int8wo|bnb-8bit) +ok .*",
    r"wall time by stage, s: .*", r"peak MB: .*", r"agree: .*", r"J/token \(.*",
]))
CONFIGS = ["eager", "sdpa", "ort-cpu", "torchao-int8wo", "bnb-8bit"]


def foreign_lines(text: str) -> list[str]:
    """Lines (a progress bar's carriage returns count as line ends) that the arena did not write."""
    return [line for line in re.split(r"[\r\n]+", text) if line.strip() and not OURS.fullmatch(line)]


def env_without_verbose(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ARENA_VERBOSE"}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def test_a_first_run_on_the_embedded_default_prints_only_our_lines(tmp_path):
    """A fresh ARENA_HOME, as on a clean machine: the one-time conversion of the embedded model (in
    the CLI), the ONNX export (in ort-cpu's worker), torchao and bitsandbytes rows, each
    configuration in its own spawned worker. Any line not ours fails, with the line shown."""
    proc = subprocess.run(
        [sys.executable, "-m", "arena", "run", "--configs", ",".join(CONFIGS), "--max-new-tokens", "4",
         "--repeats", "1", "--no-store"],
        capture_output=True, text=True, timeout=1200, env=env_without_verbose(ARENA_HOME=str(tmp_path / "home")),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for config in CONFIGS:
        assert re.search(rf"^{re.escape(config)} +ok ", proc.stdout, re.M), proc.stdout
    assert "Converting embedded SmolLM2 (once)" in proc.stderr  # the one-time steps say so
    assert re.search(r"^\[ort-cpu\] ok \(ONNX export [\d.]+ s, cached for next time\)$", proc.stderr, re.M)
    assert "export s" in proc.stdout.splitlines()[2]  # the table's column, for the ONNX row
    leaks = foreign_lines(proc.stdout) + foreign_lines(proc.stderr)
    assert not leaks, "library output leaked:\n" + "\n".join(leaks[:20])


SNIPPET = """
import logging, warnings
from arena.core import quiet
quiet.silence()
logging.getLogger("bitsandbytes.autograd._functions").warning(
    "MatMul8bitLt: inputs will be cast from torch.float32 to float16 during quantization")
logging.getLogger("torch.utils._pytree").warning(
    "<enum 'KernelPreference'> is an Enum subclass and is now natively supported by torch.compile")
warnings.warn("Converting a tensor to a Python boolean might cause the trace to be incorrect.")
logging.getLogger("bitsandbytes.autograd._functions").warning("a real problem in a known logger")
logging.getLogger("transformers.modeling_utils").warning("another real problem")
warnings.warn("a real warning")
"""


def test_only_known_noise_is_dropped_and_verbose_keeps_it():
    def run(**extra: str) -> str:
        return subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, timeout=60,
                              env=env_without_verbose(**extra), check=True).stderr

    quiet = run()
    for real in ("a real problem in a known logger", "another real problem", "a real warning"):
        assert real in quiet
    for noise in ("MatMul8bitLt", "Enum subclass", "Converting a tensor"):
        assert noise not in quiet
    loud = run(ARENA_VERBOSE="1")
    for line in ("MatMul8bitLt", "Enum subclass", "Converting a tensor", "a real problem", "a real warning"):
        assert line in loud


def test_verbose_flag_sets_the_variable_workers_inherit(monkeypatch, capsys):
    from arena.ui.cli import main

    # setenv, not delenv: monkeypatch restores only what it found, and the CLI sets the variable
    # itself (a delenv of an unset variable would leave ARENA_VERBOSE=1 to every later test)
    monkeypatch.setenv("ARENA_VERBOSE", "0")
    assert main(["configs", "--json", "--verbose"]) == 0
    assert os.environ["ARENA_VERBOSE"] == "1"


def test_the_app_starts_with_one_line_of_its_own_saying_where_the_page_is(tmp_path):
    """Gradio's start lines ("To create a public link, set `share=True` in `launch()`") speak to the
    app's developer; the spare worker that imports beside the server prints nothing either."""
    import time

    from gradio_client import Client

    from arena.testing.appserver import running_app

    with running_app(tmp_path / "arena.sqlite") as app:
        client = Client(app.url, verbose=False)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # until the spare's imports are done
            if any(row.get("spare") and row.get("ready") for row in client.predict(api_name="/workers")):
                break
            time.sleep(0.5)
        lines = [line for line in app.log.read_text().splitlines() if line.strip()]
    assert lines == [f"Inference Arena: the page is at {app.url} (Ctrl+C stops it)"]
