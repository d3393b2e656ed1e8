"""Quality against the baseline (arena/measure/quality.py): what agreement compares, and when it is
n/a or no quality at all."""

from __future__ import annotations

import pytest

from arena.core.request import RunRequest
from arena.execute import runner
from arena.measure.quality import SAMPLING_NOTE, SYNTHETIC_NOTE, agreement, compare

TINY = "synthetic:tiny-llama"


def tiny(**kw) -> RunRequest:
    base = dict(model=TINY, prompt="", configs=["eager", "sdpa"], max_new_tokens=5, repeats=1,
                prompt_tokens=12, isolation="inline")
    return RunRequest(**{**base, **kw})


def test_agreement_is_the_share_of_equal_tokens_and_the_first_divergence():
    assert agreement([1, 2, 3, 4], [1, 2, 3, 4]) == (1.0, None)
    assert agreement([1, 2, 3, 4], [1, 2, 9, 4]) == (0.75, 2)
    assert agreement([1, 2], [1, 2, 3]) == (2 / 3, 2)


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
