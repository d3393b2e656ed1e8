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


def test_a_divergence_is_a_near_tie_only_within_the_noise_the_configuration_shows_where_it_agrees():
    from arena.measure.quality import near_tie

    baseline = [3.0, 2.5, 0.05, 4.0]  # the baseline's lead of its own token at each position
    close = [2.9, 2.6, -0.02, 3.9]  # moved by at most 0.1 elsewhere: the 0.05 lead flips within that
    tie = near_tie(baseline, close, first_divergence=2)
    assert tie.tie and tie.margin == 0.05 and tie.noise == pytest.approx(0.1)
    assert "near-tie" in tie.note()
    # the same flip where the baseline led by 1.5 and this configuration moves leads by 0.1 at most
    sure = near_tie([3.0, 2.5, 1.5, 4.0], [2.95, 2.45, -0.5, 3.9], first_divergence=2)
    assert not sure.tie and sure.margin == 1.5 and sure.noise == pytest.approx(0.1)
    assert "beyond" in sure.note()
    # a position where this configuration also prefers another token is no measure of noise
    assert near_tie([3.0, 0.5, 1.5], [3.0, -4.0, -0.5], first_divergence=2).noise == 0.0
    assert near_tie(baseline, close, None) is None
    assert near_tie(None, close, 2) is None
    assert near_tie([1.0], [-1.0], 0) is None  # nothing but the divergence to observe


def test_a_run_says_whether_a_configuration_diverged_at_a_near_tie(store):
    """4-bit weights change the embedded default's answer before its end-of-text: the result
    carries the baseline's margin there and the noise the configuration shows elsewhere, and says
    which it was, on the card's note and in the store."""
    req = RunRequest(model="default", prompt="What is the capital of France?", configs=["eager", "bnb-4bit"],
                     max_new_tokens=12, repeats=1, dtype="fp32")
    results = {r.config: r for r in runner.run(req, store=store)}
    eager, four = results["eager"], results["bnb-4bit"]
    assert eager.first_divergence is None and eager.divergence_margin is None
    assert four.first_divergence is not None, "bnb-4bit no longer diverges here: pick a prompt where it does"
    assert four.divergence_margin is not None and four.divergence_noise is not None
    verdict = "near-tie" if four.divergence_margin <= four.divergence_noise else "beyond"
    assert verdict in four.quality_note
    stored = {r.config: r for r in store.results()}["bnb-4bit"]
    assert (stored.divergence_margin, stored.divergence_noise) == (four.divergence_margin, four.divergence_noise)
