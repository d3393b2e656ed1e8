"""Comparisons with the baseline: token agreement and speedups (one definition each)."""

from __future__ import annotations


def agreement(baseline: list[int], other: list[int]) -> tuple[float, int | None]:
    """Share of positions with identical tokens, and the index of the first divergence
    (None when identical)."""
    n = max(len(baseline), len(other))
    if n == 0:
        return 1.0, None
    same = sum(1 for a, b in zip(baseline, other) if a == b)
    first = next((i for i, (a, b) in enumerate(zip(baseline, other)) if a != b), None)
    if first is None and len(baseline) != len(other):
        first = min(len(baseline), len(other))
    return same / n, first


def decode_speedup(decode_tokens_per_s: float | None, baseline_tokens_per_s: float | None) -> float | None:
    """A run's speedup: this configuration's decode tokens/s over the run baseline's."""
    if not decode_tokens_per_s or not baseline_tokens_per_s:
        return None
    return decode_tokens_per_s / baseline_tokens_per_s


def latency_speedup(baseline_ms: float | None, latency_ms: float | None) -> float | None:
    """A sweep point's speedup: eager's latency at the same point over this one's."""
    if not baseline_ms or not latency_ms:
        return None
    return baseline_ms / latency_ms
