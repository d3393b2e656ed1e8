"""The attention sweep on CPU with the tiny synthetic Llama: grid, padding, reasons, store, CLI."""

import json
import subprocess
import sys
import threading

import pytest
import torch

from arena.core.env import Platform
from arena.core.request import RequestError
from arena.sweep.charts import all_charts, memory_charts, speedup_charts
from arena.sweep.plan import (
    SweepRequest,
    group_config,
    pad_lengths,
    validate_sweep,
)
from arena.sweep.runner import run_sweep
from arena.sweep.worker import padded_batch
from arena.techniques import registry
from arena.ui.cli import main

TINY = "synthetic:tiny-llama"
ATTN = ["eager", "sdpa", "sdpa-math", "sdpa-flash", "flash-attention-2"]


def tiny(**kw) -> SweepRequest:
    base = dict(model=TINY, attn=ATTN, batch_sizes=[1, 2], seq_lens=[8, 16], padding=[0, 0.5],
                repeats=2, warmup=1, isolation="inline")
    return SweepRequest(**{**base, **kw})


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    from arena.data.store import Store

    store = Store(tmp_path_factory.mktemp("sweep") / "arena.sqlite")
    seen = []
    results = run_sweep(tiny(), store=store, on_point=seen.append)
    return results, store, seen


# ---------------------------------------------------------------- padding


@pytest.mark.parametrize("batch,seq,fraction,expected", [
    (1, 100, 0.3, [30]),
    (4, 100, 0.3, [0, 40, 40, 40]),
    (3, 10, 0.3, [0, 5, 4]),
    (2, 10, 0.9, [0, 9]),  # every row keeps one real token: less padding than asked
    (8, 4096, 0.0, [0] * 8),
])
def test_pad_lengths(batch, seq, fraction, expected):
    assert pad_lengths(batch, seq, fraction) == expected


def test_padded_batch_is_left_padded_with_mask_and_positions():
    ids, mask, positions = padded_batch(3, 6, [0, 2, 5], vocab=1024, pad_id=0)
    assert mask.tolist() == [[1] * 6, [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]]
    assert (ids[mask == 0] == 0).all() and (ids[mask == 1] >= 4).all()
    assert positions[1].tolist()[2:] == [0, 1, 2, 3] and positions[2, -1] == 0


def test_padding_is_honoured_by_the_model():
    """A left-padded row's last logits equal the same tokens run alone: the mask and positions
    make padding invisible, as a real padded batch must be."""
    from arena.models.spec import parse_model
    from arena.models.synthetic import build_synthetic

    spec = parse_model(TINY)
    for attn in ("eager", "sdpa"):
        model = build_synthetic(spec, torch.float32, "cpu", attn)
        ids, mask, positions = padded_batch(2, 12, [0, 5], vocab=1024, pad_id=0)
        with torch.inference_mode():
            padded = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[1, -1]
            alone = model(input_ids=ids[1:, 5:]).logits[0, -1]
        torch.testing.assert_close(padded, alone, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("change,message", [
    ({"attn": "eager,bogus"}, "unknown attention implementation 'bogus'"),
    ({"attn": "eager,bnb-4bit"}, "a quantization: give it with --quant"),
    ({"quant": "none,int3"}, "unknown quantization 'int3'"),
    ({"batch_sizes": "1,0"}, "batch_sizes: 0 is outside 1..256"),
    ({"seq_lens": "8,abc"}, "seq_lens: 'abc' is not a whole number"),
    ({"seq_lens": "8.5"}, "seq_lens: '8.5' is not a whole number"),
    ({"padding": "0,0.95"}, "padding: 0.95 is outside 0..0.9"),
    ({"padding": " , "}, "padding is empty"),
    ({"mode": "backward"}, "mode must be one of forward, generate, generate-padded"),
    ({"repeats": 0}, "repeats must be between 1 and 20"),
    ({"repeats": float("nan")}, "repeats must be a whole number between 1 and 20"),
    ({"warmup": float("inf")}, "warmup must be a whole number between 0 and 20"),
    ({"batch_sizes": list(range(1, 101)), "seq_lens": list(range(8, 40))}, "the grid has"),
    ({"model": "synthetic:nothing"}, "unknown synthetic architecture"),
])
def test_bad_requests_raise_one_line(change, message):
    with pytest.raises(RequestError) as info:
        validate_sweep(tiny(**change))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_grid_is_sorted_and_eager_runs_first():
    prepared = validate_sweep(tiny(attn="sdpa,eager", batch_sizes="4,1", seq_lens="16,8", padding="0.3,0"))
    assert [g.name for g in prepared.groups] == ["eager", "sdpa"]
    assert [(p.seq, p.padding, p.batch) for p in prepared.points][:3] == [(8, 0.0, 1), (8, 0.0, 4), (8, 0.3, 1)]
    assert prepared.size == 2 * 8
    # synthetic weights may run past their trained context (tiny-llama: 1024)
    assert validate_sweep(tiny(seq_lens="2048")).points[0].seq == 2048


def test_reasons_for_groups_that_cannot_run():
    cpu = Platform(False, None, None, False, packages={"bitsandbytes": "0.50.2"})
    gpu = Platform(True, "NVIDIA H100 80GB HBM3", (9, 0), True, packages={"bitsandbytes": "0.50.2"})
    assert registry.availability(group_config("sdpa-flash", "none"), "fp32", cpu).reason == "needs a CUDA GPU"
    assert registry.availability(group_config("flash-attention-2", "none"), "bf16", gpu).reason == \
        "flash-attn is not installed"
    combined = group_config("sdpa", "bnb-4bit")
    assert combined.name == "bnb-4bit+sdpa" and combined.quant == registry.get("bnb-4bit").quant
    assert registry.availability(combined, "bf16", gpu).ok
    without = Platform(True, "NVIDIA H100 80GB HBM3", (9, 0), True, packages={"bitsandbytes": None})
    assert registry.availability(combined, "bf16", without).reason == "bitsandbytes is not installed"
    assert registry.availability(group_config("sdpa-flash", "bnb-nf4"), "fp32", gpu).reason.startswith("needs fp16/bf16")


# ---------------------------------------------------------------- running


def test_every_point_appears_once_with_its_reason(swept):
    results, _, seen = swept
    assert len(results) == len(ATTN) * 2 * 2 * 2
    assert [r.to_dict() for r in seen] == [r.to_dict() for r in results]  # on_point saw each, as it finished
    keys = [(r.config, r.batch_size, r.prompt_tokens, r.padding) for r in results]
    assert len(set(keys)) == len(keys)
    by = {r.config: [x for x in results if x.config == r.config] for r in results}
    assert all(r.status == "ok" for name in ("eager", "sdpa", "sdpa-math") for r in by[name])
    assert {r.reason for r in by["sdpa-flash"]} == {"needs a CUDA GPU"}
    assert {r.status for r in by["flash-attention-2"]} == {"unavailable"}
    for r in results:
        assert r.mode == "sweep-forward" and r.new_tokens == 0 and r.settings["quant"] == "none"
        assert r.settings["pad_lengths"] == pad_lengths(r.batch_size, r.prompt_tokens, r.padding)


def test_point_metrics_and_speedup(swept):
    results, _, _ = swept
    eager = {(r.batch_size, r.prompt_tokens, r.padding): r for r in results if r.config == "eager"}
    for r in results:
        if r.status != "ok":
            assert r.latency_ms is None and r.speedup is None
            continue
        base = eager[(r.batch_size, r.prompt_tokens, r.padding)]
        assert r.speedup == pytest.approx(base.latency_ms / r.latency_ms)
        assert len(r.spread["latency_ms"]) == 2 and min(r.spread["latency_ms"]) <= r.latency_ms
        real = r.batch_size * r.prompt_tokens - sum(r.settings["pad_lengths"])
        assert r.settings["real_tokens"] == real
        assert r.e2e_tokens_per_s == pytest.approx(real / (r.latency_ms / 1e3))
        # a tiny model's share of resident memory can round to 0 MB (pages the heap already held);
        # the whole-process peak beside it is always measured
        assert r.peak_memory_mb is not None and r.peak_memory_mb >= 0 and r.weights_mb > 0
        assert "above the worker's idle baseline" in r.memory_method
    assert all(r.speedup == 1.0 for r in eager.values())


def test_points_are_stored_for_the_leaderboard(swept, tmp_path):
    results, store, _ = swept
    stored = store.results(mode="sweep-forward")
    assert [r.to_dict() for r in stored] == [r.to_dict() for r in results]
    assert store.runs()[-1]["status"] == "complete"
    from arena.core.results import Result

    assert store.results(mode="arena") == [] and Result("x", "eager", "ok").mode == "arena"


def test_generate_mode(tmp_path):
    results = run_sweep(tiny(attn="eager,sdpa", batch_sizes="2", seq_lens="8", padding="0.5",
                             mode="generate", new_tokens=3))
    assert [r.status for r in results] == ["ok", "ok"]
    for r in results:
        assert r.mode == "sweep-generate" and r.new_tokens == 3
        assert r.e2e_tokens_per_s == pytest.approx(2 * 3 / (r.latency_ms / 1e3))


def test_process_workers_survive_oom_and_death(fault):
    """One worker per implementation: an out-of-memory point fails alone and the worker goes
    on; a worker killed mid-way fails its remaining points with the reason, the others run."""
    fault("sdpa=oom@2,sdpa-math=kill@2")
    results = run_sweep(tiny(attn="eager,sdpa,sdpa-math", batch_sizes="1,2,4", seq_lens="8", padding="0",
                             isolation="process", repeats=1))
    got = {(r.config, r.batch_size): (r.status, r.reason) for r in results}
    assert all(got[("eager", b)][0] == "ok" for b in (1, 2, 4))
    assert got[("sdpa", 1)][0] == got[("sdpa", 4)][0] == "ok"
    assert got[("sdpa", 2)] == ("failed", "out of memory: injected: CUDA out of memory")
    assert got[("sdpa-math", 1)][0] == "ok"
    for b in (2, 4):
        assert got[("sdpa-math", b)][0] == "failed" and "worker process died: killed by signal 9" in got[("sdpa-math", b)][1]
    endings = {(r.config, r.batch_size): r.ending for r in results}  # arena/core/ending.py's codes
    assert (endings[("sdpa", 1)], endings[("sdpa", 2)], endings[("sdpa-math", 4)]) == ("ok", "oom", "crash")


def test_cancel_records_the_points_left():
    cancel = threading.Event()

    def on_point(result):
        cancel.set()

    results = run_sweep(tiny(attn="eager,sdpa"), on_point=on_point, cancel=cancel)
    assert len(results) == 2 * 8 and results[0].status == "ok"
    assert {r.reason for r in results if r.config == "sdpa"} == {"cancelled by the user"}
    assert {r.ending for r in results if r.status != "ok"} == {"cancelled"}


def test_an_inline_sweep_honours_its_time_limit_between_points():
    """An inline sweep runs through the same launcher loop as a run: its group's time limit
    ends it between points (the points left fail with the limit's code), not after the last."""
    from arena.core.limits import ServerLimits

    prepared = validate_sweep(tiny(attn="eager", batch_sizes="1,2,4,8", seq_lens="8,16,32,64", padding="0,0.5",
                                   repeats=20, warmup=0), limits=ServerLimits(max_run_s=1.5))
    results = run_sweep(prepared)
    assert len(results) == 32
    cut = [r for r in results if r.status != "ok"]
    assert cut and {r.ending for r in cut} == {"run-time-limit"}


# ---------------------------------------------------------------- charts


def test_charts_from_points(swept):
    results, _, _ = swept
    speed, memory = speedup_charts(results), memory_charts(results)
    assert len(speed) == 2 * 2 and len(memory) == 2 * 2  # (seq x padding), (batch x padding)
    assert len(all_charts(r.to_dict() for r in results)) == 8  # dicts (JSON, store) work too
    chart = next(c for c in speed if "sequence 16" in c.title and "50% padding" in c.title)
    assert len(chart.data) == len(ATTN) * 2 and set(chart.data["status"]) == {"ok", "unavailable"}
    notes = chart.figure.layout.annotations[-1].text
    assert "sdpa-flash (all points): needs a CUDA GPU" in notes and "flash-attention-2 (all points)" in notes
    # the line carries sdpa's stable points; a point whose latency varied past the bound over its
    # repeats (docs/trust.md) is drawn off it, grey, in a trace of its own
    rows = chart.data[chart.data["config"] == "sdpa"]
    stable, unstable = rows[~rows["unstable"].astype(bool)], rows[rows["unstable"].astype(bool)]
    traces = {t.name: list(t.y) for t in chart.figure.data}
    assert traces.get("sdpa", []) == list(stable["speedup"])
    assert traces.get("sdpa: unstable, off the line", []) == list(unstable["speedup"])
    csv_lines = chart.csv().splitlines()
    assert csv_lines[0].startswith("model_id,") and len(csv_lines) == 1 + len(ATTN) * 2
    assert list(memory[0].figure.data[0].x) == [8, 16]
    # a sweep of one batch size: speedup against sequence length, one chart per padding
    single = speedup_charts(r for r in results if r.batch_size == 1)
    assert [c.x for c in single] == ["seq_len", "seq_len"] and "batch 1, no padding" in single[0].title
    sdpa_x = [x for t in single[0].figure.data if t.name in ("sdpa", "sdpa: unstable, off the line") for x in t.x]
    assert sorted(sdpa_x) == [8, 16]  # on the line or, unstable, off it


# ---------------------------------------------------------------- CLI


@pytest.mark.parametrize("args,message", [
    (["--attn", "eager,bogus"], "unknown attention implementation 'bogus'"),
    (["--padding", "2"], "padding: 2 is outside 0..0.9"),
    (["--batch-sizes", "x"], "batch_sizes: 'x' is not a whole number"),
    (["--quant", "int3"], "unknown quantization"),
])
def test_cli_bad_input_exits_2(args, message, capsys):
    assert main(["sweep", "--model", TINY, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_cli_sweep_writes_json_csv_and_leaderboard(tmp_path):
    db, out, csv = tmp_path / "db.sqlite", tmp_path / "s.json", tmp_path / "s.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "arena", "sweep", "--model", TINY, "--attn", "eager,sdpa-flash",
         "--batch-sizes", "1,2", "--seq-lens", "8", "--padding", "0,0.5", "--repeats", "1", "--inline",
         "--json", str(out), "--csv", str(csv), "--db", str(db), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 2 * 4 and {r["mode"] for r in rows} == {"sweep-forward"}
    assert "speedup" in proc.stdout and "needs a CUDA GPU" in proc.stdout
    assert csv.read_text().startswith("run_id,")
    board = subprocess.run([sys.executable, "-m", "arena", "leaderboard", "--db", str(db), "--mode", "sweep-forward"],
                           capture_output=True, text=True, timeout=300)
    eager_rows = [line for line in board.stdout.splitlines() if "eager" in line.split() and "sweep-forward" in line]
    assert board.returncode == 0 and "sweep-forward" in board.stdout and len(eager_rows) == 4


# ---------------------------------------------------------------- server limits


@pytest.mark.parametrize("change,message", [
    ({"model": "someone/big-model"}, "is not allowed here"),
    ({"batch_sizes": "1,16"}, "batch_sizes: 16 is outside 1..8"),
    ({"seq_lens": "512,2048"}, "seq_lens: 2048 is outside 1..1024"),
    ({"repeats": 6}, "repeats must be between 1 and 5"),
    ({"quant": "none,bnb-4bit"}, "10 implementation and quantization pairs asked; the limit here is 8"),
])
def test_public_limits_bound_a_sweep(change, message):
    from arena.core.limits import ServerLimits

    with pytest.raises(RequestError) as info:
        validate_sweep(tiny(**change), limits=ServerLimits.public())
    assert message in str(info.value)


def test_the_sweeps_wall_time_limit_fails_what_is_left(store):
    from arena.core.limits import ServerLimits

    prepared = validate_sweep(tiny(attn="eager,sdpa,sdpa-flash", isolation="process"),
                              limits=ServerLimits(max_run_s=1.0))
    results = run_sweep(prepared, store=store)
    assert len(results) == 3 * 8
    assert {r.reason for r in results if r.config != "sdpa-flash"} == {"the sweep's time limit here (1 s) was reached"}
    assert {r.reason for r in results if r.config == "sdpa-flash"} == {"needs a CUDA GPU"}
    assert {r.ending for r in results} == {"not-run", "needs-cuda"} or "run-time-limit" in {r.ending for r in results}
    assert store.runs()[-1]["status"] == "time limit"  # the run's word for it
