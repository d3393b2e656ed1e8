"""The measuring rules of issue 13: each test here fails when its rule is broken."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import torch

from arena.core.errors import kernel_reason
from arena.core.request import RunRequest
from arena.execute import runner
from arena.measure.memory import MemoryTracker, RssPeak
from arena.measure.quality import SAMPLING_NOTE, SYNTHETIC_NOTE, compare
from arena.models.spec import ModelSpec
from arena.techniques import registry

TINY = "synthetic:tiny-llama"


def tiny(**kw) -> RunRequest:
    base = dict(model=TINY, prompt="", configs=["eager", "sdpa"], max_new_tokens=5, repeats=1,
                prompt_tokens=12, isolation="inline")
    return RunRequest(**{**base, **kw})


# ------------------------------------------------------------------ quality


def test_agreement_counts_only_up_to_the_baselines_first_end_of_text():
    eos = {2}
    baseline = [10, 11, 2, 40, 41, 42]  # answer, end-of-text, then noise timing forced
    other = [10, 11, 2, 90, 91, 92]
    q = compare(baseline, other, eos)
    assert (q.token_agreement, q.first_divergence, q.compared_tokens) == (1.0, None, 3)
    q = compare(baseline, [10, 12, 2, 40, 41, 42], eos)
    assert (q.token_agreement, q.first_divergence, q.compared_tokens) == (pytest.approx(2 / 3), 1, 3)
    q = compare([5, 6, 7], [5, 6, 8], eos)  # no end-of-text: the whole output is the span
    assert q.compared_tokens == 3 and q.first_divergence == 2


def test_sampling_makes_agreement_na_and_keeps_nll(store):
    by = {r.config: r for r in runner.run(tiny(do_sample=True, temperature=0.8, seed=3), store=store)}
    for r in by.values():
        assert r.status == "ok", r.reason
        assert r.token_agreement is None and r.first_divergence is None
        assert r.quality_note == SAMPLING_NOTE
        assert r.nll is not None and r.nll > 0
    stored = {r.config: r for r in store.results()}
    assert stored["sdpa"].token_agreement is None and stored["sdpa"].quality_note == SAMPLING_NOTE
    assert stored["sdpa"].compared_tokens == 5 and isinstance(stored["sdpa"].compared_tokens, int)


def test_synthetic_agreement_is_marked_not_a_quality():
    by = {r.config: r for r in runner.run(tiny())}
    assert by["sdpa"].token_agreement is not None
    assert by["sdpa"].quality_note == SYNTHETIC_NOTE


def test_quality_is_shown_greyed_with_its_reason_on_the_cards():
    from arena.ui.web.panels import RunState, render

    state = RunState(["sdpa"])
    state.apply({"type": "run", "run_id": "r", "order": ["sdpa"], "baseline": "eager"})
    state.apply({"type": "result", "config": "sdpa", "result": {
        "config": "sdpa", "status": "ok", "text": "Paris.", "token_agreement": 0.5, "compared_tokens": 8,
        "quality_note": SYNTHETIC_NOTE, "tokens_after_eos": 16}})
    page = render(state)
    assert "agreement 50% over 8 tokens" in page and 'class="arena-grey"' in page
    assert "16 tokens generated after end-of-text" in page
    from arena.ui.web.charts import run_speedup_quality

    rows = [{"config": c, "status": "ok", "decode_tokens_per_s": 2.0, "token_agreement": 1.0,
             "quality_note": SYNTHETIC_NOTE} for c in ("eager", "sdpa")]
    fig = run_speedup_quality(rows, "eager")
    assert set(fig.data[1].marker.color) == {"#b0b0b0"} and "grey: not a quality" in fig.layout.annotations[1].text


def test_nll_is_chunked_and_equals_one_full_pass():
    from arena.backends import make_backend

    backend = make_backend(registry.get("sdpa"), ModelSpec("synthetic", "tiny-llama"), "fp32", "cpu")
    backend.load()
    prompt, cont = list(range(5, 17)), list(range(30, 47))
    ids = torch.tensor([prompt + cont])
    with torch.inference_mode():
        logits = backend.model(input_ids=ids).logits[0, len(prompt) - 1:-1]
    full = float(torch.nn.functional.cross_entropy(logits.float(), torch.tensor(cont)))
    rows: list[int] = []
    hook = backend.model.get_output_embeddings().register_forward_hook(
        lambda mod, args, out: rows.append(args[0].reshape(-1, args[0].shape[-1]).shape[0]))
    assert backend.nll(prompt, cont, chunk=4) == pytest.approx(full, rel=1e-5)
    hook.remove()
    assert rows and max(rows) <= 4  # never the whole sequence x vocabulary at once
    # The generic path (through the KV cache, as ONNX Runtime scores) agrees too.
    from arena.backends.base import Backend

    assert Backend.nll(backend, prompt, cont, chunk=5) == pytest.approx(full, rel=1e-4)


def test_an_oom_in_nll_keeps_the_timings(store, fault):
    fault("sdpa=nll-oom")
    by = {r.config: r for r in runner.run(tiny(), store=store)}
    sdpa = by["sdpa"]
    assert sdpa.status == "ok" and sdpa.decode_tokens_per_s > 0
    assert sdpa.nll is None and sdpa.nll_note.startswith("not computed: out of memory")
    assert by["eager"].nll is not None
    assert store.results()[-1].decode_tokens_per_s == sdpa.decode_tokens_per_s


def test_a_worker_killed_while_scoring_keeps_its_timings(fault):
    fault("sdpa=nll-kill")
    by = {r.config: r for r in runner.run(tiny(isolation="process"))}
    assert by["sdpa"].status == "ok" and by["sdpa"].decode_tokens_per_s > 0
    assert by["sdpa"].nll is None and "ended before scoring" in by["sdpa"].nll_note


def test_no_nll_when_the_baseline_failed(fault):
    fault("eager=raise")
    by = {r.config: r for r in runner.run(tiny(configs=["eager", "sdpa", "sdpa-math"]))}
    assert by["eager"].status == "failed"
    for name in ("sdpa", "sdpa-math"):
        assert by[name].status == "ok"
        assert by[name].nll is None and "baseline failed" in by[name].nll_note
        assert by[name].token_agreement is None


# ------------------------------------------------------------------ kernel choice


def test_gqa_under_the_efficient_kernel_is_predicted_from_torch_itself():
    from transformers import LlamaConfig

    gqa = LlamaConfig(num_attention_heads=9, num_key_value_heads=3, hidden_size=576)
    mha = LlamaConfig(num_attention_heads=9, num_key_value_heads=9, hidden_size=576)
    eff = registry.get("sdpa-efficient")
    doc = " ".join((torch.nn.functional.scaled_dot_product_attention.__doc__ or "").split())
    blocked = registry.model_blocker(eff, gqa)
    assert (blocked is None) == ("Memory-efficient attention also supports GQA" in doc)
    if blocked:
        assert "grouped-query attention" in blocked and "9 query heads share 3" in blocked
    assert registry.model_blocker(eff, mha) is None
    assert registry.model_blocker(registry.get("sdpa-flash"), gqa) is None


def test_no_available_kernel_becomes_one_clear_line():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(RuntimeError) as err, sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
        torch.nn.functional.scaled_dot_product_attention(q, q, q)  # no such kernel on CPU
    reason = kernel_reason(err.value, "efficient")
    assert reason and reason.startswith("SDPA's efficient kernel cannot run these inputs") and "\n" not in reason
    assert kernel_reason(RuntimeError("something else"), "efficient") is None


# ------------------------------------------------------------------ memory


def fresh_pages(n: int):
    """n bytes of new resident pages, every one written, straight from the kernel (an anonymous
    map), so the test does not depend on what the heap of a long test process already holds."""
    import mmap

    block = mmap.mmap(-1, n)
    page = b"\x01" * 2**20
    for _ in range(n // 2**20):  # a megabyte at a time: no n-byte temporary beside the map
        block.write(page)
    return block


def test_rss_peak_is_the_kernels_high_water_mark_reset_per_phase():
    rss = RssPeak()
    rss.reset()
    block = fresh_pages(40 * 2**20)  # 40 MB, every page written, then given back
    block.close()
    high = rss.peak()
    assert high - rss.now() > 30 * 2**20  # the peak outlives the freed block
    rss.reset()
    assert rss.peak() - rss.now() < 10 * 2**20  # a new phase forgets it
    rss.close()


def test_cpu_headline_is_the_models_share_above_the_idle_baseline():
    threads = threading.active_count()
    tracker = MemoryTracker("cpu")
    assert threading.active_count() == threads  # no sampler thread: the high-water mark needs none
    tracker.reset_peak()
    block = fresh_pages(64 * 2**20)  # "the model": 64 MB
    report = tracker.report(torch_backend=True)
    block.close()
    assert 60 <= report.peak_memory_mb < 120  # libraries and Python are not in the headline
    assert report.process_peak_memory_mb > report.peak_memory_mb + 100  # but are in the detail
    assert "above the worker's idle baseline" in report.memory_method
    tracker.close()


def test_bitsandbytes_footprint_counts_its_quantization_state():
    from arena.backends import make_backend

    spec = ModelSpec("synthetic", "tiny-llama")
    full = make_backend(registry.get("sdpa"), spec, "fp32", "cpu")
    full.load()
    linear = sum(m.weight.numel() for n, m in full.model.named_modules()
                 if isinstance(m, torch.nn.Linear) and "lm_head" not in n)
    q4 = make_backend(registry.get("bnb-nf4"), spec, "fp32", "cpu")
    q4.load()
    packed = int(q4.model.get_memory_footprint())
    # nf4 keeps one fp32 absmax per 64 weights beside the packed 4-bit weights (plus a 16-entry code each)
    assert q4.weights_bytes() - packed >= linear // 64 * 4


def test_old_databases_still_load(tmp_path):
    from arena.data.store import Store

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # a results table from before these columns existed
        db.execute("CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, config TEXT, "
                   "status TEXT, speedup REAL, token_agreement REAL)")
        db.execute("INSERT INTO results (run_id, config, status, speedup, token_agreement) "
                   "VALUES ('r', 'sdpa', 'ok', 1.5, 0.25)")
    old = Store(path).results()[0]
    assert old.speedup == 1.5 and old.token_agreement == 0.25
    assert old.compared_tokens is None and old.quality_note == "" and old.warmup_peak_memory_mb is None


def test_live_text_does_constant_work_per_token_and_stops_at_end_of_text():
    from arena.execute.livetext import TextStream
    from arena.models.spec import parse_model
    from arena.models.tokenizers import load_tokenizer

    spec = parse_model("default")
    tok = load_tokenizer(spec)
    seen: list[int] = []

    class Counting:  # the real tokenizer; records how many ids each decode call is given
        def decode(self, ids, **kw):
            seen.append(len(ids))
            return tok.decode(ids, **kw)

    answer = tok("Paris is the capital of France, and a lovely city to visit in spring. " * 8)["input_ids"]
    after = tok("<|im_start|>system\nnoise", add_special_tokens=False)["input_ids"]
    out: list[str] = []
    stream = TextStream(spec, Counting(), lambda e: out.append(e["text"]), eos={2})
    stream.enabled = True
    for t in answer + [2] + after:
        stream([t])
    assert "".join(out) == tok.decode(answer, skip_special_tokens=True)
    assert max(seen) <= 4  # a short window, never everything so far
