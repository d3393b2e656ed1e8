"""benchmarks/peer_check.py in CI size: the embedded default on the CPU, two alternating rounds of a
few tokens, the arena against optimum-benchmark 0.6.0. The peer's environment is made once under
ARENA_HOME (python -m benchmarks.peer_check --make-venv); where it cannot be installed the script
still measures the arena side, and the peer half of this test is skipped with that reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ["-m", "benchmarks.peer_check"]  # run from ROOT, as a user runs it


def _peer_python() -> tuple[str | None, str]:
    """An interpreter that imports optimum_benchmark, made here when there is none; or why not."""
    python = os.environ.get("ARENA_PEER_PYTHON") or str(Path(os.environ["ARENA_HOME"]) / "peer-venv" / "bin" / "python")
    if Path(python).exists() and subprocess.run([python, "-c", "import optimum_benchmark"],
                                                capture_output=True, timeout=300).returncode == 0:
        return python, ""
    try:
        made = subprocess.run([sys.executable, *SCRIPT, "--make-venv"], cwd=ROOT, capture_output=True, text=True,
                              timeout=600)
    except subprocess.TimeoutExpired:
        return None, "optimum-benchmark could not be installed within 600 s"
    if made.returncode != 0:
        return None, "optimum-benchmark could not be installed: " + (made.stderr.strip().splitlines() or ["?"])[-1]
    return made.stdout.strip().splitlines()[-1], ""


def test_the_arena_against_optimum_benchmark_on_the_embedded_default(tmp_path):
    peer, why = _peer_python()
    out = tmp_path / "peer.json"
    command = [sys.executable, *SCRIPT, "--model", "default", "--attn", "sdpa", "--rounds", "2", "--repeats", "1",
               "--prompt-tokens", "16", "--max-new-tokens", "4", "--peer-launcher", "inline", "--json", str(out)]
    proc = subprocess.run(command + (["--peer-python", peer] if peer else ["--peer-python", str(tmp_path / "none")]),
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    report = json.loads(out.read_text())
    # the arena side, peer or not: both rounds measured, the same prompt length the peer was given
    assert [sorted(r["arena"]) for r in report["rounds"]] == [["sdpa"], ["sdpa"]], proc.stdout + proc.stderr
    assert all(r["arena"]["sdpa"]["decode_tokens_per_s"] > 0 for r in report["rounds"])
    assert report["setup"]["prompt_tokens"] > 16 and report["setup"]["new_tokens"] == 4
    if peer is None:
        assert proc.returncode == 3 and "peer: not run: no python at" in proc.stdout
        pytest.skip(why)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert [sorted(r["peer"]) for r in report["rounds"]] == [["sdpa"], ["sdpa"]]
    rows = {row["metric"]: row for row in report["summary"]}
    assert set(rows) == {"TTFT ms", "decode tok/s", "per-token p50 ms"}
    for row in rows.values():
        assert row["ratio"] == pytest.approx(row["arena"] / row["peer"]) and row["within"] == (abs(row["ratio"] - 1) <= 0.05)
    assert "| sdpa | decode tok/s |" in proc.stdout and "within 5% of the peer: " in proc.stdout
