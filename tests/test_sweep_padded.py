"""The generate-padded sweep: prompts of mixed lengths in one left-padded batch, generation timed
as the arena times it (TTFT, decode tokens/s), on synthetic:tiny-llama."""

import json
import subprocess
import sys

import pytest
import torch

from arena.core.request import RequestError
from arena.sweep.charts import padded_charts, speedup_charts
from arena.sweep.plan import SweepRequest, padded_point, row_lengths, validate_sweep
from arena.sweep.runner import run_sweep
from arena.sweep.worker import generate_padded, padded_batch

TINY = "synthetic:tiny-llama"


def padded(**kw) -> SweepRequest:
    base = dict(model=TINY, attn="eager,sdpa,sdpa-flash", batch_sizes="1,3", mode="generate-padded",
                prompt_lens="8..24", new_tokens=4, repeats=2, warmup=1, isolation="inline")
    return SweepRequest(**{**base, **kw})


@pytest.fixture(scope="module")
def swept():
    return run_sweep(padded())


def test_length_mix_is_seeded_nested_and_in_range():
    eight = row_lengths(8, 64, 1024, seed=0)
    assert eight == row_lengths(8, 64, 1024, seed=0)  # seeded: the same mix every run
    assert row_lengths(4, 64, 1024, seed=0) == eight[:4]  # a larger batch keeps a smaller one's rows
    assert eight[0] == 1024 and all(64 <= n <= 1024 for n in eight)
    assert len(set(eight)) > 4  # mixed, not one length
    assert row_lengths(8, 64, 1024, seed=1) != eight
    assert row_lengths(1, 64, 1024) == [1024]
    point = padded_point(4, 64, 1024, seed=0)
    assert point.seq == 1024 and list(point.pads) == [1024 - n for n in eight[:4]]
    assert point.padding == round(sum(point.pads) / (4 * 1024), 4)


def test_the_grid_is_one_point_per_batch_size():
    prepared = validate_sweep(padded(batch_sizes="4,1,16,8", prompt_lens=" 64 .. 1024 "))
    assert [p.batch for p in prepared.points] == [1, 4, 8, 16]
    assert {p.seq for p in prepared.points} == {1024} and prepared.request.prompt_lens == "64..1024"
    assert validate_sweep(padded(prompt_lens="32")).points[1].pads == (0, 0, 0)  # one length: no padding


@pytest.mark.parametrize("change,message", [
    ({"prompt_lens": "abc"}, "prompt_lens: 'abc' is not a whole number"),
    ({"prompt_lens": "64..32"}, "prompt_lens: 64..32 is empty"),
    ({"prompt_lens": "0..32"}, "prompt_lens: 0 is outside 1..131072"),
    ({"prompt_lens": "8..16..32"}, "prompt_lens must be LO..HI"),
    ({"prompt_lens": ".."}, "prompt_lens must be LO..HI"),
    ({"length_seed": -1}, "length_seed must be between 0 and"),
    ({"mode": "generate-sorted"}, "mode must be one of forward, generate, generate-padded"),
])
def test_bad_requests_raise_one_line(change, message):
    with pytest.raises(RequestError) as info:
        validate_sweep(padded(**change))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_public_limits_bound_the_longest_prompt():
    from arena.core.limits import ServerLimits

    with pytest.raises(RequestError, match="prompt_lens: 2048 is outside 1..1024"):
        validate_sweep(padded(prompt_lens="64..2048"), limits=ServerLimits.public())


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_each_row_generates_what_it_would_alone(attn):
    """Left padding with the mask is invisible: every row of the padded batch generates the
    tokens the same prompt generates on its own."""
    from arena.models.spec import parse_model
    from arena.models.synthetic import build_synthetic

    model = build_synthetic(parse_model(TINY), torch.float32, "cpu", attn)
    pads = [0, 9, 4]
    ids, mask, _ = padded_batch(3, 16, pads, vocab=model.config.vocab_size, pad_id=0)
    with torch.inference_mode():
        together = generate_padded(model, ids, mask, 6, pad_id=0)
        for row, n in enumerate(pads):
            alone = generate_padded(model, ids[row:row + 1, n:], mask[row:row + 1, n:], 6, pad_id=0)
            assert together[row].tolist() == alone[0].tolist(), (attn, row)
    assert together.shape == (3, 6)


def test_points_carry_the_arenas_generation_figures(swept):
    assert [(r.config, r.batch_size, r.status) for r in swept] == [
        ("eager", 1, "ok"), ("eager", 3, "ok"), ("sdpa", 1, "ok"), ("sdpa", 3, "ok"),
        ("sdpa-flash", 1, "unavailable"), ("sdpa-flash", 3, "unavailable")]
    assert {r.reason for r in swept if r.config == "sdpa-flash"} == {"needs a CUDA GPU"}
    for r in swept:
        assert r.mode == "sweep-generate-padded" and r.new_tokens == 4 and r.prompt_tokens == 24
        assert r.settings["row_lengths"] == row_lengths(r.batch_size, 8, 24, 0)
        assert r.settings["prompt_lens"] == "8..24" and "seq_lens" not in r.settings
        assert r.padding == round(sum(24 - n for n in r.settings["row_lengths"]) / (r.batch_size * 24), 4)
        if r.status != "ok":
            continue
        assert r.ttft_ms > 0 and r.decode_tokens_per_s > 0 and r.peak_memory_mb is not None and r.peak_memory_mb >= 0
        assert len(r.spread["ttft_ms"]) == len(r.spread["latency_ms"]) == 2
        # TokenClock's rule: batch x (new - 1) tokens over the time after the first token
        assert r.decode_tokens_per_s > r.e2e_tokens_per_s * (4 - 1) / 4
        assert r.ttft_ms < r.latency_ms
    assert next(r for r in swept if r.config == "sdpa" and r.batch_size == 3).speedup is not None


def test_charts_decode_ttft_and_memory_against_batch(swept):
    assert speedup_charts(swept) == []  # a padded sweep has no forward/generate speedup charts
    charts = padded_charts(r.to_dict() for r in swept)
    assert [c.key for c in charts] == ["padded-decode-tiny-llama-none", "padded-ttft-tiny-llama-none",
                                       "padded-memory-tiny-llama-none"]
    decode = charts[0]
    assert "prompts 8..24 tokens, 4 new" in decode.title
    sdpa = next(t for t in decode.figure.data if t.name == "sdpa")
    ok = decode.data[decode.data["config"] == "sdpa"]
    assert list(sdpa.x) == [1, 3] and list(sdpa.y) == list(ok["decode_tokens_per_s"])
    assert "sdpa-flash (all points): needs a CUDA GPU" in decode.figure.layout.annotations[-1].text
    assert list(charts[2].figure.data[0].y) == list(decode.data[decode.data["config"] == "eager"]["peak_memory_mb"])


def test_cli_and_report(tmp_path):
    out, docs = tmp_path / "padded.json", tmp_path / "docs"
    proc = subprocess.run(
        [sys.executable, "-m", "arena", "sweep", "--model", TINY, "--mode", "generate-padded", "--attn", "eager,sdpa",
         "--prompt-lens", "8..24", "--batch-sizes", "1,2", "--new-tokens", "3", "--repeats", "1", "--inline",
         "--no-store", "--quiet", "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "TTFT ms" in proc.stdout and "decode tok/s" in proc.stdout and "prompt lengths: 8..24" in proc.stdout
    assert f"batch 2: {row_lengths(2, 8, 24)}" in proc.stdout
    rows = json.loads(out.read_text())
    assert {r["mode"] for r in rows} == {"sweep-generate-padded"} and len(rows) == 4
    from arena.bench.sweep_docs import write_report

    assert docs / "README.md" in write_report(rows, docs, png=False)
    text = (docs / "README.md").read_text()
    assert text.startswith("# Generation on a padded batch")
    assert "padded-decode-tiny-llama-none.csv" in text and "tok/s (TTFT" in text
    assert f"batch 2: {', '.join(map(str, row_lengths(2, 8, 24)))}" in text


def test_the_sweep_tabs_handler_runs_a_padded_sweep(tmp_path):
    """The Sweep tab's run button handler, taken from the built page (real Blocks, real store)."""
    from arena.core.limits import ServerLimits
    from arena.data.store import Store
    from arena.ui.web.app import build
    from arena.ui.web.state import ArenaApp

    app = ArenaApp(Store(tmp_path / "arena.sqlite"), ServerLimits())
    demo = build(app)
    handler = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "run_sweep_ui")
    updates = list(handler("session", TINY, ["sdpa"], ["none"], "1,2", "8", "0", "generate-padded",
                           "auto", 1, "8..16", 3))
    status, table = updates[-1][0], updates[-1][1]
    assert status.startswith("**Finished**: 2 points")
    assert list(table.columns)[:7] == ["implementation", "batch", "longest", "pad", "status", "TTFT ms",
                                       "decode tok/s"]
    stored = app.store.results(mode="sweep-generate-padded")
    assert len(stored) == 2 and all(r.status == "ok" and r.new_tokens == 3 for r in stored)
    assert {r.prompt_tokens for r in stored} == {16}
