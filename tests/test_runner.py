"""Real runs on CPU: a tiny synthetic Llama for breadth, spawned workers for isolation."""

import pytest

from arena.core.env import platform
from arena.core.request import RunRequest
from arena.execute import runner

CPU_CONFIGS = ["eager", "sdpa", "sdpa-math", "bnb-8bit", "bnb-4bit", "bnb-nf4", "static-cache", "ort-cpu"]


def tiny(**kw):
    base = dict(model="synthetic:tiny-llama", prompt="", max_new_tokens=6, repeats=2, prompt_tokens=16,
                isolation="inline")
    return RunRequest(**{**base, **kw})


@pytest.mark.skipif(platform().has_cuda, reason="CPU set of configurations")
def test_every_cpu_configuration_really_runs(store):
    results = runner.run(tiny(configs=CPU_CONFIGS + ["sdpa-flash", "bettertransformer"]), store=store)
    by = {r.config: r for r in results}
    for name in CPU_CONFIGS:
        r = by[name]
        assert r.status == "ok", (name, r.reason)
        assert len(r.token_ids) == 6 and r.decode_tokens_per_s > 0 and r.ttft_ms > 0
        # the tiny model's own share can be 0 MB (the heap's pages already resident); the
        # whole-process peak is always there
        assert r.peak_memory_mb >= 0 and r.process_peak_memory_mb > 0
        assert "above the worker's idle baseline" in r.memory_method
        assert r.weights_mb > 0 and r.nll is not None
        assert r.baseline == "eager" and r.synthetic and "meaningless" in r.text
        assert len(r.spread["decode_tokens_per_s"]) == 2
    assert by["eager"].token_agreement == 1.0
    # same weights, same math: unquantized fp32 configurations agree with eager exactly
    for name in ["sdpa", "sdpa-math", "static-cache"]:
        assert by[name].token_agreement == 1.0, name
    assert by["bnb-4bit"].weights_mb < by["eager"].weights_mb
    assert by["sdpa-flash"].status == "unavailable" and by["sdpa-flash"].reason == "needs a CUDA GPU"
    assert by["bettertransformer"].status == "unavailable"
    assert {r.config for r in store.results()} == set(by)
    assert store.runs()[0]["status"] == "complete"


def test_a_failing_configuration_does_not_stop_the_others(store, fault):
    fault("sdpa=raise,eager=kill")
    events = []
    results = runner.run(tiny(configs=["eager", "sdpa", "sdpa-math"], isolation="process", repeats=1),
                         store=store, on_event=events.append)
    by = {r.config: r for r in results}
    assert by["eager"].status == "failed" and "killed by signal 9" in by["eager"].reason
    assert by["sdpa"].status == "failed" and "injected fault" in by["sdpa"].reason
    assert by["sdpa-math"].status == "ok" and len(by["sdpa-math"].token_ids) == 6
    assert len(store.results()) == 3
    assert any(e["type"] == "token" for e in events)


def test_a_hanging_configuration_is_stopped_at_its_time_limit(store, fault):
    fault("eager=hang")
    results = runner.run(tiny(configs=["eager"], isolation="process", repeats=1, timeout_s=20), store=store)
    assert results[0].status == "failed" and "timed out" in results[0].reason


def test_batch_and_sampling_settings_are_honoured(store):
    results = runner.run(tiny(configs=["sdpa"], batch_size=3, do_sample=True, seed=7), store=store)
    r = results[0]
    assert r.status == "ok" and r.batch_size == 3 and r.settings["do_sample"] is True
    again = runner.run(tiny(configs=["sdpa"], batch_size=3, do_sample=True, seed=7))[0]
    assert again.token_ids == r.token_ids  # seeded sampling is reproducible


def test_an_oom_in_nll_keeps_the_timings(store, fault):
    fault("sdpa=nll-oom")
    by = {r.config: r for r in runner.run(tiny(configs=["eager", "sdpa"], max_new_tokens=5, repeats=1), store=store)}
    sdpa = by["sdpa"]
    assert sdpa.status == "ok" and sdpa.decode_tokens_per_s > 0
    assert sdpa.nll is None and sdpa.nll_note.startswith("not computed: out of memory")
    assert by["eager"].nll is not None
    assert store.results()[-1].decode_tokens_per_s == sdpa.decode_tokens_per_s


def test_a_worker_killed_while_scoring_keeps_its_timings(fault):
    fault("sdpa=nll-kill")
    by = {r.config: r for r in runner.run(tiny(configs=["eager", "sdpa"], max_new_tokens=5, repeats=1, isolation="process"))}
    assert by["sdpa"].status == "ok" and by["sdpa"].decode_tokens_per_s > 0
    assert by["sdpa"].nll is None and "ended before scoring" in by["sdpa"].nll_note


def test_no_nll_when_the_baseline_failed(fault):
    fault("eager=raise")
    by = {r.config: r for r in runner.run(tiny(configs=["eager", "sdpa", "sdpa-math"], max_new_tokens=5, repeats=1))}
    assert by["eager"].status == "failed"
    for name in ("sdpa", "sdpa-math"):
        assert by[name].status == "ok"
        assert by[name].nll is None and "baseline failed" in by[name].nll_note
        assert by[name].token_agreement is None


def test_a_cancel_while_scoring_keeps_the_measured_timings(store, fault):
    """Cancel pressed while a configuration scores NLL (its timings already sent): its row is
    kept as measured, with no NLL, and the run is recorded as cancelled."""
    import threading

    fault("eager=nll-hang")
    cancel = threading.Event()

    def on_event(event):
        if event.get("stage") == "scoring":
            cancel.set()

    req = RunRequest(model="synthetic:tiny-llama", prompt="", configs=["eager", "sdpa"], max_new_tokens=4,
                     repeats=1, prompt_tokens=16)
    results = {r.config: r for r in runner.run(req, store=store, on_event=on_event, cancel=cancel)}
    eager = results["eager"]
    assert eager.status == "ok" and eager.decode_tokens_per_s > 0, eager.reason
    assert eager.nll is None
    assert "sdpa" not in results or results["sdpa"].status != "ok"
    assert [r.config for r in store.results() if r.status == "ok"] == ["eager"]
    assert store.runs()[-1]["status"] == "cancelled"
