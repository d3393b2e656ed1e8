"""Whether a row can be trusted (arena/measure/trust.py, docs/trust.md): the stability verdict
from the repeats' spread and the machine's load, and the limit check, measured for real on CPU."""

import subprocess
import sys
import time

import pytest

from arena.core.request import RunRequest
from arena.execute import runner
from arena.measure import trust
from arena.measure.bandwidth import Bandwidth


def test_spread_is_the_coefficient_of_variation():
    assert trust.spread_pct([10.0, 10.0, 10.0]) == 0
    assert trust.spread_pct([9.0, 10.0, 11.0]) == pytest.approx(10.0)
    assert trust.spread_pct([5.0]) is None and trust.spread_pct(None) is None


def test_verdict_bounds():
    assert trust.verdict(9.9, 0.1, "cpu") == (True, "")
    stable, why = trust.verdict(10.1, None, "cpu")
    assert not stable and "varied 10%" in why
    stable, why = trust.verdict(1.0, 0.5, "cpu")
    assert not stable and "other processes used 50%" in why
    assert trust.verdict(1.0, 0.9, "cuda:0")[0]  # a GPU row is not judged by host load


def test_load_meter_sees_another_process():
    """A real busy process beside this one is counted; this process's own work is not."""
    meter = trust.LoadMeter()
    meter.start()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.5:  # our own work
        pass
    alone = meter.share()
    burner = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<1.5: pass"])
    try:
        meter.start()
        time.sleep(1.0)
        busy = meter.share()
    finally:
        burner.wait()
    assert alone is not None and busy is not None
    assert busy > alone and busy >= 0.25, (alone, busy)


def _limit(percent: float):
    def fields(bw: Bandwidth) -> dict:
        return {"memory_bandwidth_gb_s": bw.gb_s, "bandwidth_limit_tokens_per_s": bw.gb_s,
                "percent_of_bandwidth_limit": percent * 10 / bw.gb_s}
    return fields


def test_limit_is_measured_again_and_a_row_still_over_it_is_flagged():
    low, high = Bandwidth(10.0, "copy", "cpu"), Bandwidth(20.0, "copy", "cpu")
    calls = []
    out = trust.fields(_limit(120), low, lambda: calls.append(1) or high, {}, None, "cpu")
    assert calls and not out["over_limit"] and out["percent_of_bandwidth_limit"] == 60
    out = trust.fields(_limit(120), low, lambda: low, {}, None, "cpu")
    assert out["over_limit"] and "faster than its memory-bandwidth limit" in out["trust_note"]
    calls.clear()
    out = trust.fields(_limit(90), low, lambda: calls.append(1) or high, {}, None, "cpu")
    assert not calls and not out["over_limit"]  # within the limit: not measured again


def test_a_run_records_the_verdict_and_an_unsteady_row_is_unstable(store, fault):
    """Real runs: a configuration whose repeats slow down (ramp fault) is unstable and says why;
    one with an injected tiny bandwidth beats its limit even re-measured and is flagged."""
    fault("sdpa=ramp@20,eager=bandwidth@0.000001")
    req = RunRequest(model="synthetic:tiny-llama", prompt="", configs=["eager", "sdpa"], max_new_tokens=6,
                     repeats=3, prompt_tokens=16)
    results = {r.config: r for r in runner.run(req, store=store)}
    sdpa, eager = results["sdpa"], results["eager"]
    assert sdpa.status == "ok" and sdpa.unstable and sdpa.spread_pct > trust.SPREAD_BOUND_PCT
    assert "varied" in sdpa.trust_note
    assert eager.over_limit and eager.percent_of_bandwidth_limit > 100
    assert eager.load_during_timed is not None
    stored = {r.config: r for r in store.results()}
    assert stored["sdpa"].unstable and stored["eager"].over_limit and not stored["sdpa"].over_limit
