"""Comparisons with the baseline: token agreement over the compared span, and speedups (one
definition each).

The compared span is the baseline's tokens up to and including its first end-of-text token:
timing forces `min_new_tokens = max_new_tokens`, so a chat model keeps writing after its answer,
and that noise is neither compared nor shown. The stored token ids are row 0's; every row of a
batch repeats the same prompt, so row 0 stands for the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

SAMPLING_NOTE = "n/a under sampling: two samples differ by design, so agreement measures nothing (NLL still compares)"
SYNTHETIC_NOTE = ("not a quality: random weights give near-uniform logits whose argmax flips on rounding; "
                  "shown greyed, never ranked")
NO_BASELINE_NOTE = "n/a: the baseline did not produce tokens to compare with"


def compared_span(ids: list[int], eos: set[int]) -> int:
    """How many of `ids` are compared: up to and including the first end-of-text token."""
    cut = next((i for i, t in enumerate(ids) if t in eos), None)
    return len(ids) if cut is None else cut + 1


@dataclass
class Agreement:
    token_agreement: float | None
    first_divergence: int | None
    compared_tokens: int | None
    quality_note: str = ""


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


def compare(baseline: list[int] | None, other: list[int], eos: set[int], *, sampled: bool = False,
            synthetic: bool = False) -> Agreement:
    """Agreement of `other` with `baseline` over the baseline's compared span."""
    if baseline is None:
        return Agreement(None, None, None, NO_BASELINE_NOTE)
    n = compared_span(baseline, eos)
    if sampled:
        return Agreement(None, None, n, SAMPLING_NOTE)
    share, first = agreement(baseline[:n], other[:n])
    return Agreement(share, first, n, SYNTHETIC_NOTE if synthetic else "")


def leads(logits, targets) -> list[float]:
    """Per position, the target token's logit minus the best other token's: positive where the
    target is the argmax (by that much), negative where another token leads. `logits`: a
    (positions, vocabulary) float tensor, `targets`: the (positions,) token ids."""
    import torch

    chosen = logits.gather(1, targets.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, targets.view(-1, 1), float("-inf")).amax(dim=1)
    return [round(float(v), 4) for v in (chosen - others).tolist()]


@dataclass
class NearTie:
    margin: float  # the baseline's lead of its own token at the first divergence (logits)
    noise: float  # the largest change this configuration made to the baseline's lead where they agree
    tie: bool  # the margin is within that noise

    def note(self) -> str:
        if self.tie:
            return (f"diverged at a near-tie (margin {self.margin:.3g}, within the {self.noise:.3g} this "
                    "configuration moves the baseline's logits where they agree)")
        return (f"diverged where the baseline was sure (margin {self.margin:.3g}, beyond the {self.noise:.3g} "
                "this configuration moves the baseline's logits where they agree)")


def near_tie(baseline_leads: list[float] | None, own_leads: list[float] | None,
             first_divergence: int | None) -> NearTie | None:
    """Was the first divergence a near-tie? Both lists score the baseline's tokens teacher-forced
    (one lead per position: arena/backends/base.py). The noise is the most this configuration
    moves the baseline's lead at the other positions where both still put the baseline's token
    first: the kernel, dtype or quantization difference observed in this run, on these tokens. A
    margin within it could have gone either way. None when there is no divergence, or no position
    to observe the noise at."""
    if first_divergence is None or not baseline_leads or not own_leads:
        return None
    d = first_divergence
    if d >= len(baseline_leads) or d >= len(own_leads):
        return None
    moved = [abs(b - c) for i, (b, c) in enumerate(zip(baseline_leads, own_leads)) if i != d and b > 0 and c > 0]
    if not moved:
        return None
    noise, margin = max(moved), baseline_leads[d]
    return NearTie(margin, noise, margin <= noise)


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
