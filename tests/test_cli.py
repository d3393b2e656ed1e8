import json
import subprocess
import sys

import pytest

from arena.ui.cli import main


@pytest.mark.parametrize("args,message", [
    (["--configs", "eager,bogus"], "unknown configuration 'bogus'"),
    (["--prompt", ""], "the prompt is empty"),
    (["--max-new-tokens", "0"], "max_new_tokens must be between 1 and 4096"),
    (["--batch-size", "1000"], "batch_size must be between 1 and 256"),
    (["--model", "synthetic:nothing"], "unknown synthetic architecture"),
    (["--prompt", "x " * 10000], "longer than the model's context"),
])
def test_bad_input_exits_2_with_one_line(args, message, capsys):
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    # the first use of the embedded model may print its one-time conversion progress first
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last and "Traceback" not in err


def test_options_left_out_take_the_run_requests_defaults_and_given_ones_arrive():
    from arena.core.request import RequestError, RunRequest
    from arena.ui.cli import build_parser, run_request
    from arena.ui.forms import request_from

    assert run_request(build_parser().parse_args(["run"]), None) == RunRequest()
    args = build_parser().parse_args(["run", "--max-new-tokens", "7", "--sample", "--gpus", " ", "--inline"])
    assert run_request(args, "hi") == RunRequest(prompt="hi", max_new_tokens=7, do_sample=True, isolation="inline")
    with pytest.raises(RequestError, match="unknown setting 'hub_id'"):
        request_from(hub_id="org/name")


def test_configs_json(capsys):
    assert main(["configs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"config", "available", "reason"} <= set(rows[0])


def test_run_writes_json_and_csv_and_leaderboard(tmp_path):
    db, out, csv = tmp_path / "db.sqlite", tmp_path / "r.json", tmp_path / "r.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "arena", "run", "--model", "synthetic:tiny-llama", "--configs", "eager,sdpa-flash",
         "--max-new-tokens", "4", "--repeats", "1", "--prompt-tokens", "8", "--json", str(out),
         "--csv", str(csv), "--db", str(db)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    for key in ["config", "status", "reason", "text", "ttft_ms", "decode_tokens_per_s", "peak_memory_mb",
                "memory_method", "token_agreement"]:
        assert key in rows[0]
    assert [r["status"] for r in rows] == ["ok", "unavailable"]
    assert "decode tok/s" in proc.stdout and csv.read_text().startswith("run_id,")
    board = subprocess.run([sys.executable, "-m", "arena", "leaderboard", "--db", str(db)],
                           capture_output=True, text=True, timeout=300)
    assert board.returncode == 0 and "eager" in board.stdout


def test_unknown_hub_model_exits_2():
    proc = subprocess.run([sys.executable, "-m", "arena", "run", "--model", "nobody/nothing-here"],
                          capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
