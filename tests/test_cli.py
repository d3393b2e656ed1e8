import json
import os
import time
import subprocess
import sys

import pytest

from arena.techniques.registry import REGISTRY
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
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


def test_help_lists_every_command_and_each_run_option_with_its_range(capsys):
    from arena.core import limits
    from arena.ui.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    commands = parser._subparsers._group_actions[0].choices
    for name in commands:
        assert f"\n    {name}" in top, name
    run = commands["run"]
    for action in run._actions:
        assert action.help, f"run {action.option_strings} has no help"
    text = run.format_help()
    for bound in (limits.MAX_NEW_TOKENS, limits.MAX_BATCH, limits.MAX_REPEATS, limits.MAX_SEED,
                  limits.MAX_SYNTHETIC_PROMPT_TOKENS):
        assert f"1..{bound}" in text or f"0..{bound}" in text, bound
    assert "(default: 32)" in text and "auto|fp32|fp16|bf16" in text


def test_unknown_configuration_names_the_closest_and_where_to_look(capsys):
    assert main(["run", "--configs", "eager,sdpa-flsh"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "unknown configuration 'sdpa-flsh'; did you mean sdpa-flash" in last
    assert last.endswith(f"`python -m arena configs` lists all {len(REGISTRY)}")


def test_unreachable_hub_fails_at_once_with_what_to_do(tmp_path):
    """Without HF_HUB_OFFLINE, as a new user runs it: this machine reaches no Hub (a machine that
    does gets "no model ... on the Hugging Face Hub"); either way one line within seconds, not the
    ~30 s of retries."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "arena", "run", "--model", "nobody/nothing-here", "--no-store"],
                          capture_output=True, text=True, timeout=120, env=env)
    took = time.monotonic() - t0
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) in (1, 2) and lines[0].startswith("error: "), proc.stderr
    assert "Retrying" not in proc.stderr and took < 25, took
    # the operator's advice on its own "hint:" line (the page, for a visitor, leaves it out)
    assert "HF_HUB_OFFLINE" in lines[-1] or "no model 'nobody/nothing-here' on the Hugging Face Hub" in lines[0]
    assert "HF_HUB_OFFLINE" not in lines[0]


def test_a_visitor_is_not_given_the_operators_advice():
    """A Hub model this offline server does not have: the message (what the page shows) says what
    to do instead; the server's setting is the CLI's hint only."""
    from arena.core.request import RequestError, RunRequest
    from arena.execute.prepare import validate

    with pytest.raises(RequestError) as caught:
        validate(RunRequest(model="nobody/nothing-here", prompt="hi"))
    assert "HF_HUB_OFFLINE" not in str(caught.value) and "embedded default" in str(caught.value)
    assert "HF_HUB_OFFLINE" in caught.value.advice


def test_a_silent_hub_times_out_in_seconds(monkeypatch):
    """A Hub that accepts the connection and never answers: one request, HUB_TIMEOUT_S, no retries."""
    import socket

    from huggingface_hub import constants

    from arena.models import sources
    from arena.models.spec import ModelError, ModelSpec

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setattr(sources, "HUB_TIMEOUT_S", 1.0)
    t0 = time.monotonic()
    with pytest.raises(ModelError, match=r"cannot reach the Hugging Face Hub for 'nobody/silent' \(no answer within 1 s\)"):
        sources.check_hub(ModelSpec("hub", "nobody/silent"))
    assert time.monotonic() - t0 < 5
    server.close()
