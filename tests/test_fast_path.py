"""benchmarks/fast_path.py, run as a user runs it: each inductor flag set reaches its run."""

import json
import subprocess
import sys

from arena.testing.appserver import ROOT


def test_each_flag_set_reaches_its_run_and_gets_its_row(tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, "benchmarks/fast_path.py", "--model", "synthetic:tiny-llama", "--configs",
                           "compiled-decode", "--sets", 'default,{"coordinate_descent_tuning": false}', "--tokens", "4",
                           "--prompt-tokens", "8", "--repeats", "1", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [(r["flag_set"], r["env"]["inductor_flags"]) for r in rows] == [
        ("default", "{}"), ('{"coordinate_descent_tuning": false}', '{"coordinate_descent_tuning": false}')]
    assert '| compiled-decode | {"coordinate_descent_tuning": false} |' in done.stdout
