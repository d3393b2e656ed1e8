"""A run whose process is killed (SIGKILL) mid-run: every result stored before the kill is
intact and stored once, the database passes SQLite's integrity check, the run is marked
incomplete at the next start, and the store takes new runs as before."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from arena.data.store import Store

CONFIGS = ["eager", "sdpa", "sdpa-math", "static-cache"]


def cli_run(db: Path, configs: list[str]) -> list[str]:
    return [sys.executable, "-m", "arena", "run", "--db", str(db), "--model", "synthetic:tiny-llama",
            "--configs", ",".join(configs), "--max-new-tokens", "4", "--repeats", "1", "--prompt-tokens", "16",
            "--quiet"]


def stored_count(db: Path) -> int:
    """Read-only, so the poll never takes a write lock the run might need."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # no table yet
        return 0


def test_a_run_killed_mid_run_keeps_its_stored_results(tmp_path):
    db = tmp_path / "arena.sqlite"
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(cli_run(db, CONFIGS), cwd=root, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while stored_count(db) < 1:
            assert proc.poll() is None, "the run ended before its first result: " + proc.stderr.read().decode()[-500:]
            assert time.monotonic() < deadline, "no result stored within 240 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the run's process, which writes the store, dies here
        proc.wait(timeout=30)
    finally:
        try:  # its worker, orphaned mid-configuration, goes too
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    store = Store(db)  # what the app does at start: open the store...
    assert store.integrity_ok()
    results = store.results()
    assert 1 <= len(results) < len(CONFIGS), "the kill came after the run, not during it"
    configs = [r.config for r in results]
    assert len(set(configs)) == len(configs) and configs == CONFIGS[: len(configs)]  # once each, in order
    for r in results:  # each stored row whole: its own transaction, written at once
        assert r.status == "ok", r.reason
        assert len(r.token_ids) == 4 and r.decode_tokens_per_s > 0 and r.peak_memory_mb > 0
    runs = store.runs()
    assert [run["status"] for run in runs] == ["running"] and runs[0]["run_id"] == results[0].run_id

    assert store.mark_interrupted() == 1  # ...and marks the cut-off run incomplete
    assert [run["status"] for run in store.runs()] == ["incomplete"]
    assert store.mark_interrupted() == 0

    # The next run on the same store: stored next to the old results, which stay as they were.
    before = [r.to_dict() for r in results]
    done = subprocess.run(cli_run(db, ["sdpa"]), cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-500:]
    after = Store(db)
    assert after.integrity_ok()
    assert [r.to_dict() for r in after.results()][: len(before)] == before
    assert len(after.results()) == len(before) + 1
    assert sorted(run["status"] for run in after.runs()) == ["complete", "incomplete"]
