"""Bradley-Terry ratings from pairwise votes, with bootstrap confidence intervals, as
Chatbot Arena reports them (Elo scale: 400 points = 10:1 odds; mean rating 1000).

A vote is (a, b, outcome) with outcome "a", "b", "tie" or "both_bad"; a tie and "both bad"
count as half a win for each side."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

SCALE, BASE, CENTER = 400.0, 10.0, 1000.0
OUTCOMES = ("a", "b", "tie", "both_bad")


@dataclass
class Rating:
    player: str
    rating: float
    low: float  # bootstrap 2.5th percentile
    high: float  # bootstrap 97.5th percentile
    votes: int


def _wins(votes: Sequence[tuple[str, str, str]], index: dict[str, int]) -> np.ndarray:
    """wins[i, j] = how often i beat j (ties: half each way)."""
    n = len(index)
    wins = np.zeros((n, n))
    for a, b, outcome in votes:
        i, j = index[a], index[b]
        if outcome == "a":
            wins[i, j] += 1
        elif outcome == "b":
            wins[j, i] += 1
        else:
            wins[i, j] += 0.5
            wins[j, i] += 0.5
    return wins


def fit(votes: Sequence[tuple[str, str, str]], prior: float = 0.5, iters: int = 2000,
        tol: float = 1e-10) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry strengths by Hunter's MM algorithm, as ratings.

    `prior` adds that many virtual ties of every player against every other it met, so that a
    player who never won keeps a finite rating; prior=0 is the plain MLE."""
    players = sorted({p for a, b, _ in votes for p in (a, b)})
    if not players:
        return {}
    index = {p: i for i, p in enumerate(players)}
    wins = _wins(votes, index)
    met = (wins + wins.T) > 0
    wins = wins + prior * met
    games = wins + wins.T
    total_wins = wins.sum(axis=1)
    strength = np.ones(len(players))
    for _ in range(iters):
        denom = (games / (strength[:, None] + strength[None, :])).sum(axis=1)
        new = np.where(denom > 0, total_wins / np.where(denom > 0, denom, 1), strength)
        new = np.maximum(new, 1e-300)
        new /= math.exp(np.log(new).mean())  # fix the scale: geometric mean 1
        if np.max(np.abs(np.log(new) - np.log(strength))) < tol:
            strength = new
            break
        strength = new
    ratings = SCALE * np.log(strength) / math.log(BASE)
    ratings += CENTER - ratings.mean()
    return {p: float(r) for p, r in zip(players, ratings)}


def with_intervals(votes: Sequence[tuple[str, str, str]], rounds: int = 200, seed: int = 0,
                   prior: float = 0.5) -> list[Rating]:
    """Ratings with 95% bootstrap intervals (votes resampled with replacement), best first."""
    votes = list(votes)
    point = fit(votes, prior=prior)
    if not point:
        return []
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {p: [] for p in point}
    for _ in range(rounds):
        resample = [votes[i] for i in rng.integers(0, len(votes), len(votes))]
        for p, r in fit(resample, prior=prior).items():
            samples[p].append(r)
    counts: dict[str, int] = {p: 0 for p in point}
    for a, b, _ in votes:
        counts[a] += 1
        counts[b] += 1
    out = []
    for p, r in point.items():
        s = samples[p] or [r]
        out.append(Rating(p, r, float(np.percentile(s, 2.5)), float(np.percentile(s, 97.5)), counts[p]))
    return sorted(out, key=lambda x: -x.rating)


def by_group(rows: Iterable[dict], rounds: int = 200) -> list[dict]:
    """Ratings per model: rows carry model_id, config_a, config_b, winner."""
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for row in rows:
        groups.setdefault(row["model_id"], []).append((row["config_a"], row["config_b"], row["winner"]))
    out = []
    for model_id, votes in sorted(groups.items()):
        for r in with_intervals(votes, rounds=rounds):
            out.append({"model_id": model_id, "config": r.player, "rating": r.rating, "rating_low": r.low,
                        "rating_high": r.high, "votes": r.votes})
    return out
