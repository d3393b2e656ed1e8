"""The sampled stacks that say where the server's time goes (arena/core/stack_sampler.py)."""

from __future__ import annotations

import io
import json
import threading
import time

from arena.core.stack_sampler import StackSampler


def busy_in_our_code(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(range(1000))


def test_a_busy_span_in_our_code_is_kept_with_its_time_and_idle_library_waits_are_not():
    out = io.StringIO()
    idle = threading.Event()
    waiter = threading.Thread(target=idle.wait, name="idle-waiter", daemon=True)
    waiter.start()
    sampler = StackSampler(out, every_s=0.005).start()
    worker = threading.Thread(target=busy_in_our_code, args=(0.4,), name="busy")
    t0 = time.time()
    worker.start()
    worker.join()
    sampler.stop()
    idle.set()
    spans = [json.loads(line) for line in out.getvalue().splitlines()]
    busy = [s for s in spans if s["thread"] == "busy" and "busy_in_our_code" in s["arena"]]
    assert busy, spans
    assert 0.25 <= sum(s["to"] - s["from"] for s in busy) <= 0.6
    assert all(t0 - 0.05 <= s["from"] <= s["to"] <= time.time() for s in busy)
    assert not [s for s in spans if s["thread"] == "idle-waiter"]


def test_stacks_are_read_innermost_first_for_every_thread(tmp_path):
    from arena.core.stack_sampler import read_stacks

    with open(tmp_path / "scratch", "w+", encoding="utf-8") as scratch:
        stacks = read_stacks(scratch)
        again = read_stacks(scratch)  # the scratch file is reused: nothing of the first reading stays
    mine = stacks[threading.get_ident()]
    assert mine[0][2] == "read_stacks" and mine[1][2] == "test_stacks_are_read_innermost_first_for_every_thread"
    assert mine[1][0] == __file__
    assert [f for f, _, _ in again[threading.get_ident()]] == [f for f, _, _ in mine]
