"""benchmarks/fast_path.py, run as a user runs it: each inductor flag set reaches its run, and a set
this torch cannot apply is reported beside the others' rows instead of ending the call."""

import json
import subprocess
import sys

from arena.testing.appserver import ROOT


def test_each_flag_set_reaches_its_run_and_a_set_this_torch_lacks_is_reported(tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.fast_path", "--model", "synthetic:tiny-llama", "--configs",
                           "compiled-decode", "--sets", 'default,{"coordinate_descent_tuning": false},'
                           '{"triton.no_such_flag": true},pdl', "--tokens", "4",
                           "--prompt-tokens", "8", "--repeats", "1", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads(out.read_text())
    ran = [(r["flag_set"], r["env"]["inductor_flags"]) for r in rows if r["status"] == "ok"]
    assert ran == [("default", "{}"), ('{"coordinate_descent_tuning": false}', '{"coordinate_descent_tuning": false}'),
                   ("pdl", '{"triton.enable_pdl": true}')]
    (skipped,) = [r for r in rows if r["status"] != "ok"]
    assert skipped["flag_set"] == '{"triton.no_such_flag": true}' and "has no triton.no_such_flag" in skipped["reason"]
    assert '| compiled-decode | {"coordinate_descent_tuning": false} |' in done.stdout
    assert "| compiled-decode | pdl |" in done.stdout
    assert "has no triton.no_such_flag | – | – |" in done.stdout
