"""The GPU stage driver (arena/bench/stages.py, arena/bench/driver.py) on the CPU: stages take their
configurations from the registry, a stage cut by its budget resumes where it stopped (real SQLite
store, real runs of the tiny synthetic Llama), and a failing stage does not stop the next."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from arena.bench import driver
from arena.bench.ledger import Key, code_version
from arena.bench.stages import GROUPS, NOTHING, STAGES, Part, Stage, expand, named
from arena.techniques import registry
from arena.techniques.attention import FLASH_ATTENTION_2, SDPA_EFFICIENT
from arena.techniques.bitsandbytes import BitsAndBytes
from arena.techniques.compilation import COMPILED_DECODE
from arena.techniques.onnxruntime import OnnxRuntime
from arena.techniques.torchao import TorchAo
from arena.data.store import Store

ROOT = Path(__file__).resolve().parent.parent
TINY = {"model": "synthetic:tiny-llama", "dtype": "fp32", "prompt_tokens": 8, "max_new_tokens": 4, "repeats": 1,
        "isolation": "inline", "timeout_s": 300}


def _add(monkeypatch, config: registry.Config) -> str:
    monkeypatch.setitem(registry.REGISTRY, config.name, config)
    return config.name


def test_a_new_registry_row_joins_the_stages_of_its_kind(monkeypatch):
    bnb = _add(monkeypatch, registry.Config("bnb-test-int4", "test", "quantization", "a new 4-bit row",
                                            quant=BitsAndBytes("nf4")))
    kernel = _add(monkeypatch, registry.Config("sdpa-test-kernel", "test", "attention", "a new kernel choice",
                                               attention=SDPA_EFFICIENT))
    fa = _add(monkeypatch, registry.Config("flash-test", "test", "attention", "a new flash-attn row",
                                           attention=FLASH_ATTENTION_2))
    ao = _add(monkeypatch, registry.Config("torchao-test+compiled-decode", "test", "combination", "a torchao row",
                                           quant=TorchAo("int8wo"), compile=COMPILED_DECODE))
    ort = _add(monkeypatch, registry.Config("ort-test", "test", "onnxruntime", "a new provider", attention=None,
                                            runtime=OnnxRuntime("TestExecutionProvider")))

    def names(stage: str) -> list[str]:
        return STAGES[stage].names()

    assert bnb in names("7b-torch") and kernel in names("7b-torch") and fa in names("7b-torch")
    assert ao not in names("7b-torch") and ort not in names("7b-torch")
    for stage in ("sweep-llama", "sweep-falcon", "sweep-memory"):
        assert kernel in names(stage) and fa in names(stage) and bnb not in names(stage)
    assert fa in names("fa2-mistral") and fa in names("padded") and kernel not in names("fa2-llama")
    assert ao in names("quant-7b") and ao in names("quant-default") and ao in names("quant-profile")
    assert ort in names("7b-ort") and ort in names("fidelity-7b")
    assert all(new in names("default") for new in (bnb, kernel, fa, ao, ort))
    # one row per technique: the new 4-bit row is checked through bnb-4bit, the first of its kind
    assert bnb not in names("fidelity-default") and "bnb-4bit" in names("fidelity-default")
    assert names("bandwidth-7b") == ["eager", "sdpa", "static-cache", "compiled-decode"]
    assert names("quant-7b")[0] == "compiled-decode"  # bf16 compiled-decode: the baseline of every ratio


def test_every_stage_names_registry_rows_and_every_group_names_stages():
    for stage in STAGES.values():
        assert set(stage.names()) <= set(registry.REGISTRY), stage.name
        assert stage.names() or stage.kind == "script", f"{stage.name} picks no configuration"
        assert stage.minutes > 0 and stage.about
    assert expand(GROUPS) and {s.name for s in expand(["two-gpu"])} == {s.name for s in STAGES.values() if s.gpus == 2}
    assert [s.name for s in expand(["fa2", "fa2-llama"])] == ["fa2-default", "fa2-llama", "fa2-mistral"]


def _context(tmp_path: Path, lines: list[str]) -> driver.Context:
    return driver.make_context(tmp_path / "gpu.sqlite", tmp_path / "out", png=False, say=lines.append)


def test_a_stage_cut_by_its_budget_resumes_where_it_stopped(tmp_path):
    stage = Stage("tiny", "run", (Part(named("eager", "sdpa", "sdpa-flash"), TINY),), 1, "tiny rows")
    lines: list[str] = []
    ctx = _context(tmp_path, lines)
    store = Store(ctx.db)

    # no time at all: a call still finishes one row (the baseline), then starts no other
    tally = driver.run_stages([stage], ctx, total_budget_s=0)["tiny"]
    assert (tally.measured, tally.left) == (1, 2)
    assert [r.config for r in store.results()] == ["eager"]
    assert "**Incomplete**: 2 rows" in (ctx.out / "tiny.md").read_text()

    # again, no budget: the rows left, with the baseline measured again so agreement is within one call
    tally = driver.run_stages([stage], ctx)["tiny"]
    assert (tally.measured, tally.skipped, tally.left) == (2, 1, 0)
    rows = store.results()
    assert [r.config for r in rows] == ["eager", "eager", "sdpa", "sdpa-flash"]
    assert rows[2].run_id == rows[1].run_id != rows[0].run_id and rows[2].token_agreement is not None
    assert rows[3].status == "unavailable" and rows[3].reason  # refused here, with its reason: done too
    assert any("1 of 3 rows done already; measuring sdpa, sdpa-flash (and eager again" in line for line in lines)

    # a third call measures nothing: every row is in the store for this hardware and code
    tally = driver.run_stages([stage], ctx)["tiny"]
    assert (tally.measured, tally.skipped, tally.left) == (0, 3, 0)
    assert len(store.results()) == 4
    written = json.loads((ctx.out / "tiny.json").read_text())
    assert [r["config"] for r in written] == ["eager", "sdpa", "sdpa-flash"]
    assert written[0]["run_id"] == rows[1].run_id  # the newest baseline: the one the others compare with
    md = (ctx.out / "tiny.md").read_text()
    assert "Incomplete" not in md and "| sdpa-flash | unavailable:" in md and "python -m benchmarks.gpu tiny" in md
    assert "3/3" in driver.listing(ctx, {"tiny": stage}, {})

    # another code version (or hardware, or settings) is another key: nothing of it is done
    other = Key("tiny", stage.parts[0].key(stage.kind), ctx.hardware, "arena-000000000000")
    assert ctx.ledger.done(other) == {} and ctx.code == code_version()
    changed = replace(stage.parts[0], settings={**TINY, "max_new_tokens": 5})
    assert ctx.ledger.done(ctx.key(stage, changed)) == {}


def test_a_sweep_stage_resumes_by_implementation(tmp_path):
    sweep = {"model": "synthetic:tiny-llama", "mode": "forward", "dtype": "fp32", "seq_lens": [16],
             "batch_sizes": [1, 2], "padding": [0.0], "repeats": 1, "warmup": 0, "isolation": "inline"}
    stage = Stage("tiny-sweep", "sweep", (Part(named("eager", "sdpa"), sweep),), 1, "a tiny sweep")
    ctx = _context(tmp_path, [])
    assert driver.run_stages([stage], ctx, budget_s=0)["tiny-sweep"].left == 1
    assert driver.run_stages([stage], ctx)["tiny-sweep"].measured == 1
    points = Store(ctx.db).results()
    assert [(p.config, p.batch_size) for p in points] == [("eager", 1), ("eager", 2)] * 2 + [("sdpa", 1), ("sdpa", 2)]
    assert points[-1].speedup is not None  # against the eager of its own call
    assert (ctx.out / "tiny-sweep" / "README.md").is_file() and "## " in (ctx.out / "tiny-sweep.md").read_text()


def test_a_failing_stage_does_not_stop_the_next(tmp_path):
    bad = Stage("bad", "run", (Part(named("eager"), {**TINY, "model": "synthetic:no-such-shape"}),), 1, "bad model")
    crash = Stage("crash", "script", (Part(NOTHING, {"argv": ["-c", "print('half way'); raise SystemExit(3)"]}),),
                  1, "a script that fails")
    two = Stage("two-gpus", "run", (Part(named("eager"), TINY),), 1, "needs two GPUs", gpus=2)
    good = Stage("good", "run", (Part(named("eager"), TINY),), 1, "one tiny row")
    lines: list[str] = []
    ctx = _context(tmp_path, lines)
    tallies = driver.run_stages([bad, crash, two, good], ctx)
    assert "no-such-shape" in tallies["bad"].failures[0] and "Failed" in (ctx.out / "bad.md").read_text()
    [row] = json.loads((ctx.out / "crash.json").read_text())
    assert row["status"] == "failed" and row["reason"] == "exit status 3: half way"
    if ctx.gpu_count < 2:
        assert f"[two-gpus] skipped: needs 2 GPUs, this machine has {ctx.gpu_count}" in lines
    assert tallies["good"].measured == 1 and [r.status for r in Store(ctx.db).results()] == ["ok"]


def test_the_command_line_lists_stages_and_refuses_an_unknown_one(tmp_path):
    run = [sys.executable, "-m", "benchmarks.gpu", "--db", str(tmp_path / "gpu.sqlite")]
    listed = subprocess.run(run + ["--list"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    for stage in STAGES.values():
        assert any(line.split()[:2] == [stage.name, stage.kind] for line in listed.stdout.splitlines()), stage.name
    unknown = subprocess.run(run + ["no-such-stage"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: unknown stage 'no-such-stage'")
