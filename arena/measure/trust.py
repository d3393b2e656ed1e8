"""Whether a measured row can be trusted: its stability verdict and its limit check
(docs/trust.md says what they mean and why these bounds).

- Spread: the coefficient of variation (sample stdev / mean) of decode tokens/s over the timed
  repeats. Above SPREAD_BOUND_PCT the row is unstable, as pyperf warns "the benchmark seems
  unstable" when the standard deviation passes 10% of the mean.
- Load: the share of the machine's CPU time that other processes used during the timed phase
  (/proc/stat's busy time less this process's own CPU time). A CPU row above LOAD_BOUND competed
  for its cores and is unstable. A GPU row records it but is not judged by it: NVML's
  utilisation is the share of time one of *our* kernels ran, not load, and a decode bound by
  device memory is not slowed by a busy host (if it is launch-bound, its spread shows it).
- Limit: a decode speed above the memory-bandwidth limit (arena/measure/bandwidth_limit.py)
  means the limit or the timing is wrong. The bandwidth is re-measured once (best kept); a row
  still above it is flagged `over_limit`, never shown as a plain percentage.
"""

from __future__ import annotations

import os
import statistics
from typing import Any, Callable

SPREAD_BOUND_PCT = 10.0  # pyperf: stdev above 10% of the mean
LOAD_BOUND = 0.25  # other processes' share of the machine's CPU during a CPU row's timed phase


def spread_pct(values: list[float] | None) -> float | None:
    """Coefficient of variation in percent; None with fewer than two values."""
    xs = [float(v) for v in values or [] if isinstance(v, (int, float)) and v == v]
    if len(xs) < 2 or not statistics.fmean(xs):
        return None
    return 100 * statistics.stdev(xs) / statistics.fmean(xs)


def verdict(spread: float | None, load: float | None, device: str) -> tuple[bool, str]:
    """(stable, why not): past the spread bound, or (a CPU row) the load bound."""
    why = []
    if spread is not None and spread > SPREAD_BOUND_PCT:
        why.append(f"decode tok/s varied {spread:.0f}% over the repeats (bound {SPREAD_BOUND_PCT:.0f}%)")
    if load is not None and load > LOAD_BOUND and not device.startswith("cuda"):
        why.append(f"other processes used {load:.0%} of the CPU while it was timed (bound {LOAD_BOUND:.0%})")
    return not why, "; ".join(why)


def _cpu_jiffies() -> tuple[float, float] | None:
    """(busy, total) seconds of every CPU since boot, from /proc/stat; None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            values = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return (total - idle) / tick, total / tick


class LoadMeter:
    """Other processes' share of the machine's CPU between start() and share()."""

    def __init__(self) -> None:
        self._start: tuple[tuple[float, float], float] | None = None

    def start(self) -> None:
        machine = _cpu_jiffies()
        own = os.times()
        self._start = (machine, own.user + own.system) if machine else None

    def share(self) -> float | None:
        machine = _cpu_jiffies()
        if self._start is None or machine is None:
            return None
        (busy0, total0), own0 = self._start
        own = os.times()
        total = machine[1] - total0
        if total <= 0:
            return None
        others = (machine[0] - busy0) - (own.user + own.system - own0)
        return round(min(max(others / total, 0.0), 1.0), 3)


def fields(limit_fields: Callable[[Any], dict[str, Any]], bw: Any, remeasure: Callable[[], Any],
           spread: dict[str, list[float]], load: float | None, device: str) -> dict[str, Any]:
    """The trust fields of one measured configuration, with its bandwidth-limit fields
    (`limit_fields(bw)`): re-measured once with `remeasure()` when the speed beats the limit."""
    out = dict(limit_fields(bw)) if bw is not None else {}
    if (out.get("percent_of_bandwidth_limit") or 0) > 100:
        again = remeasure()
        if again is not None:
            out = dict(limit_fields(again))
    over = (out.get("percent_of_bandwidth_limit") or 0) > 100
    cv = spread_pct(spread.get("decode_tokens_per_s"))
    stable, why = verdict(cv, load, device)
    if over:
        why = "; ".join(w for w in (why, "faster than its memory-bandwidth limit: the limit or the timing is "
                                    "wrong") if w)
    return {**out, "over_limit": over, "spread_pct": None if cv is None else round(cv, 2),
            "load_during_timed": load, "unstable": not stable, "trust_note": why}
