"""Warm workers (arena/execute/pool.py) with real spawned processes and a tiny model: reuse,
eviction under a budget, expiry, a crashed warm worker replaced, cancel and the time limit
while tokens stream, inline mode's cache."""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil
import pytest

from arena.core.request import RunRequest
from arena.execute import inline, runner
from arena.execute.pool import Pool, PoolSettings
from arena.execute.prepare import validate

MODEL = "synthetic:tiny-llama"


def request(config: str = "sdpa", **kw) -> RunRequest:
    args = {"model": MODEL, "configs": [config], "max_new_tokens": 6, "repeats": 1, "prompt_tokens": 16}
    return RunRequest(**{**args, **kw})


def run(pool: Pool | None, config: str = "sdpa", **kw):
    return runner.execute(validate(request(config, **kw)), pool=pool)[0]


def gone(pid: int, within_s: float = 5.0) -> bool:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def pool():
    p = Pool(PoolSettings(spare=False))
    yield p
    p.close()


def test_identical_request_reuses_the_warm_worker(pool):
    cold = run(pool)
    assert cold.status == "ok", cold.reason
    assert cold.warm is False and cold.load_s is not None and "load" in cold.stage_s
    assert cold.stage_s["scoring"] > 0  # NLL scoring, its own stage after the timings
    [held] = pool.describe()
    warm = run(pool)
    assert warm.status == "ok", warm.reason
    assert warm.warm is True and warm.load_s is None  # reused, not a fake 0
    assert "load" not in warm.stage_s and "warmup" not in warm.stage_s and warm.stage_s["timed"] > 0
    assert warm.token_ids == cold.token_ids
    assert pool.describe()[0]["pid"] == held["pid"] and pool.describe()[0]["runs"] == 2
    assert held["foreign_modules"] == []
    other = run(pool, "eager")  # another configuration: a fresh worker beside it
    assert other.warm is False and other.load_s is not None
    assert {w["config"] for w in pool.describe()} == {"sdpa", "eager"}


def test_budget_keeps_the_most_recent_and_evicts_the_rest():
    probe = Pool(PoolSettings(spare=False))
    try:
        assert run(probe).status == "ok"
        one_mb = probe.describe()[0]["host_mb"]
    finally:
        probe.close()
    pool = Pool(PoolSettings(spare=False, budget_mb=int(one_mb * 1.5)))
    try:
        run(pool, "eager")
        [first] = pool.describe()
        run(pool, "sdpa")
        assert [w["config"] for w in pool.describe()] == ["sdpa"]  # the least recently used went
        assert gone(first["pid"])
    finally:
        pool.close()
    none = Pool(PoolSettings(spare=False, budget_mb=1))
    try:
        run(none)
        assert none.describe() == []
    finally:
        none.close()


def test_idle_workers_expire():
    pool = Pool(PoolSettings(spare=False, idle_s=0.5))
    try:
        run(pool)
        [held] = pool.describe()
        assert gone(held["pid"], within_s=5)
        assert pool.describe() == []
    finally:
        pool.close()


def test_a_crashed_warm_worker_is_replaced(pool):
    first = run(pool)
    [held] = pool.describe()
    os.kill(held["pid"], signal.SIGKILL)
    assert gone(held["pid"])
    again = run(pool)
    assert again.status == "ok", again.reason
    assert again.warm is False and again.token_ids == first.token_ids
    assert pool.describe()[0]["pid"] != held["pid"]


def _cancel_at_first_token(cancel: threading.Event, after_s: float, stamps: dict):
    def on_event(event):
        if event["type"] == "token" and "first_token" not in stamps:
            stamps["first_token"] = time.monotonic()
            threading.Timer(after_s, lambda: (stamps.setdefault("cancel", time.monotonic()), cancel.set())).start()
    return on_event


def test_cancel_ends_a_streaming_run_within_a_second(pool, fault):
    fault("sdpa=slow@150")  # 24 tokens at 150 ms: 3.6 s of streaming
    cancel, stamps = threading.Event(), {}
    prepared = validate(request(max_new_tokens=24))
    [result] = runner.execute(prepared, pool=pool, cancel=cancel, on_event=_cancel_at_first_token(cancel, 0.3, stamps))
    ended = time.monotonic()
    assert result.status == "failed" and result.reason.startswith("cancelled")
    assert ended - stamps["cancel"] < 1.0
    assert result.stage_s.get("start") is not None  # what was measured is kept
    # the worker stopped between tokens by itself (not killed): it stays warm, model loaded
    assert [w["config"] for w in pool.describe()] == ["sdpa"]


def test_time_limit_ends_a_streaming_run_and_kills_the_worker(pool, fault):
    fault("sdpa=slow@100")
    # warm, these shapes warmed up: the limit then falls while the 4 s of tokens stream
    assert run(pool, max_new_tokens=40).status == "ok"
    seen: dict[str, float] = {}

    def on_event(event):
        seen.setdefault(f"{event['type']}:{event.get('stage', '')}", time.monotonic())

    result = runner.execute(validate(request(max_new_tokens=40, timeout_s=2)), pool=pool, on_event=on_event)[0]
    took = seen["result:"] - seen["status:starting"]  # the limit counts from here
    assert result.status == "failed" and result.reason.startswith("timed out after 2 s"), result.reason
    assert took < 2 + 1.5, took
    assert pool.describe() == []  # a timed-out worker is discarded
    assert "token:" in seen, "the limit should have struck while tokens streamed"


def test_inline_keeps_the_last_model_and_stops_between_tokens(fault):
    inline.free()
    try:
        cold = run(None, isolation="inline")
        warm = run(None, isolation="inline")
        assert cold.warm is False and cold.load_s is not None
        assert warm.warm is True and warm.load_s is None and warm.token_ids == cold.token_ids
        other = run(None, "eager", isolation="inline")  # the cached one is freed first
        assert other.warm is False and [c["config"] for c in inline.cached()] == ["eager"]
        fault("eager=slow@150")
        cancel, stamps = threading.Event(), {}
        prepared = validate(request("eager", max_new_tokens=24, isolation="inline"))
        [stopped] = runner.execute(prepared, cancel=cancel, on_event=_cancel_at_first_token(cancel, 0.3, stamps))
        assert stopped.reason.startswith("cancelled") and time.monotonic() - stamps["cancel"] < 1.0
    finally:
        inline.free()


def _state(pid: int, want_stopped: bool, within_s: float = 2.0) -> bool:
    """Whether `pid` reaches (stopped) or leaves (not stopped) SIGSTOP's state within `within_s`."""
    end = time.monotonic() + within_s
    while True:
        stopped = psutil.Process(pid).status() == psutil.STATUS_STOPPED
        if stopped == want_stopped or time.monotonic() > end:
            return stopped == want_stopped
        time.sleep(0.02)


def test_the_next_worker_imports_only_while_nothing_is_timed():
    """During one configuration's untimed stages (warm-up, scoring) the pool makes the next
    configuration's worker, which is paused while anything is timed (load, the timed repeats)
    and then runs that configuration; the last configuration makes none."""
    pool = Pool(PoolSettings())
    seen: dict[str, list] = {"eager": [], "sdpa": []}

    def on_event(event):
        if event["type"] == "status" and event["stage"] != "starting":
            spare = pool.spare()
            if spare is None:
                seen[event["config"]].append((event["stage"], None, None))
            else:  # paused in a timed stage, running in an untimed one
                timed = event["stage"] in ("loading", "running")
                seen[event["config"]].append((event["stage"], spare["pid"], _state(spare["pid"], timed)))

    try:
        results = runner.execute(validate(request(configs=["eager", "sdpa"])), pool=pool, on_event=on_event)
        assert [r.status for r in results] == ["ok", "ok"], [r.reason for r in results]
        first = seen["eager"]
        assert [s for s, _, _ in first] == ["loading", "warming up", "running", "scoring"]
        assert first[0][1] is None  # none made while the first configuration loads
        pids = {pid for _, pid, _ in first[1:]}
        assert len(pids) == 1 and None not in pids, first
        assert all(ok for _, _, ok in first[1:]), first  # paused exactly while timed
        assert all(pid is None for _, pid, _ in seen["sdpa"]), seen["sdpa"]  # the last makes none
        assert {w["config"]: w["pid"] for w in pool.describe()}["sdpa"] in pids  # it ran on that worker
    finally:
        pool.close()
