"""Figures for docs/RELIABILITY.md: how closely the run wall time and the worker memory limit
are kept, on real runs of the tiny synthetic Llama (CPU, spawned workers).

    python -m benchmarks.limits_figures [--run-s 20] [--memory-mb 1500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from arena.bench.runs import measure
from arena.core.limits import ServerLimits
from arena.core.request import RunRequest


def tiny(configs: list[str]) -> RunRequest:
    return RunRequest(model="synthetic:tiny-llama", prompt="", configs=configs, max_new_tokens=4, repeats=1,
                      prompt_tokens=16, isolation="process", timeout_s=600)


def timed(configs: list[str], limits: ServerLimits, fault: str) -> tuple[float, dict]:
    os.environ["ARENA_HOOKS"] = "arena.testing.faults"  # the workers register the fault hooks
    os.environ["ARENA_FAULT_INJECT"] = fault
    t0 = time.monotonic()  # validation included: a tokenizer read, milliseconds beside the limits measured
    results = measure(tiny(configs), limits=limits).results
    return time.monotonic() - t0, {r.config: r for r in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-s", type=float, default=20.0)
    parser.add_argument("--memory-mb", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    overrun, readings, kill_s, ok_peaks, tiny_s = [], [], [], [], []
    for _ in range(args.rounds):
        wall, by = timed(["eager", "sdpa", "sdpa-math"], ServerLimits(max_run_s=args.run_s), "sdpa=hang")
        assert by["sdpa"].status == "failed" and by["sdpa-math"].reason.startswith("not run"), by
        overrun.append(wall - args.run_s)

        wall, by = timed(["eager", "sdpa"], ServerLimits(worker_memory_mb=args.memory_mb), "eager=alloc")
        assert by["eager"].reason.startswith("exceeded the memory limit"), by["eager"].reason
        readings.append(float(by["eager"].reason.split("reached ")[1].split(" MB")[0]))
        kill_s.append(wall)
        ok_peaks.append(by["sdpa"].peak_memory_mb)

        t0 = time.monotonic()
        _, by = timed(["eager"], ServerLimits(worker_memory_mb=120), "")
        assert by["eager"].reason.startswith("exceeded the memory limit of 120 MB"), by["eager"].reason
        tiny_s.append(time.monotonic() - t0)

    def fmt(values: list[float]) -> str:
        return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"

    print(f"rounds: {args.rounds}")
    print(f"run wall time {args.run_s:g} s with a hanging configuration: overrun s {fmt(overrun)}")
    print(f"memory limit {args.memory_mb} MB, worker allocating 32 MB steps: reading at the kill MB {fmt(readings)}")
    print(f"  same run (killed worker + one normal worker), wall s {fmt(kill_s)}")
    print(f"  normal tiny-Llama worker peak resident MB {fmt(ok_peaks)}")
    print(f"memory limit 120 MB (below an idle worker): configuration failed after s {fmt(tiny_s)}")


if __name__ == "__main__":
    main()
