"""Blind side-by-side check: the server draws two configurations' outputs of a finished run,
shows them as A and B in random order without their names, and accepts one vote per pair.

Only pairs this server produced for a session can be voted on, once: the pair id is a random
token kept server-side with the session that received it; the names are revealed after the vote."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from arena.data.store import Store, now

CHOICES = {"A is better": "a", "B is better": "b", "Tie": "tie", "Both are bad": "both_bad"}
# The stored winner names the configuration's side as shown, mapped back to the configuration.


class VoteError(ValueError):
    """A vote that cannot be accepted, with a message fit for the user."""


@dataclass
class Pair:
    pair_id: str
    session: str
    run_id: str
    model_id: str
    prompt: str
    config_a: str  # shown as A
    config_b: str  # shown as B
    text_a: str
    text_b: str
    voted: bool = False

    def public(self) -> dict[str, Any]:
        """What the page sees before the vote: no configuration names."""
        return {"pair_id": self.pair_id, "text_a": self.text_a, "text_b": self.text_b}


@dataclass
class _Run:
    run_id: str
    model_id: str
    prompt: str
    outputs: dict[str, str]  # config -> text
    pairs: dict[frozenset, str] = field(default_factory=dict)  # {a, b} -> pair id


class BlindCheck:
    """Per-session registry of finished runs and the pairs shown from them (in memory: a pair
    shown before a restart of the app cannot be voted on after it)."""

    def __init__(self, store: Store, rng: secrets.SystemRandom | None = None) -> None:
        self.store = store
        self.rng = rng or secrets.SystemRandom()
        self._runs: dict[str, _Run] = {}  # session -> its last finished run
        self._pairs: dict[str, Pair] = {}
        self._lock = threading.Lock()

    def record_run(self, session: str, results: list[dict[str, Any]]) -> int:
        """Remember a session's finished run; returns how many outputs can be compared."""
        ok = [r for r in results if r.get("status") == "ok" and not r.get("synthetic")]
        if not ok:
            return 0
        outputs = {r["config"]: r.get("text") or "" for r in ok}
        with self._lock:
            self._runs[session] = _Run(ok[0]["run_id"], ok[0]["model_id"], ok[0].get("prompt") or "", outputs)
        return len(outputs)

    def draw(self, session: str) -> Pair:
        """Two configurations of the session's last run not yet shown to it, in random order."""
        with self._lock:
            run = self._runs.get(session)
            if run is None or len(run.outputs) < 2:
                raise VoteError("run at least two configurations on a real (not synthetic) model first")
            names = sorted(run.outputs)
            fresh = [frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1:]
                     if frozenset((a, b)) not in run.pairs]
            if not fresh:
                raise VoteError("every pair of this run has been shown; run again for more")
            a, b = sorted(self.rng.choice(fresh))
            if self.rng.random() < 0.5:
                a, b = b, a
            pair = Pair(secrets.token_urlsafe(16), session, run.run_id, run.model_id, run.prompt,
                        a, b, run.outputs[a], run.outputs[b])
            run.pairs[frozenset((a, b))] = pair.pair_id
            self._pairs[pair.pair_id] = pair
            return pair

    def vote(self, session: str, pair_id: str, choice: str) -> dict[str, str]:
        """Store the vote and reveal the names; VoteError for a forged, foreign or repeated vote."""
        winner = CHOICES.get(choice, choice if choice in CHOICES.values() else None)
        if winner is None:
            raise VoteError(f"the choice must be one of: {', '.join(CHOICES)}")
        with self._lock:
            pair = self._pairs.get(str(pair_id))
            if pair is None or pair.session != session:
                raise VoteError("this pair was not shown to this session: vote refused")
            if pair.voted:
                raise VoteError("this pair has already been voted on")
            pair.voted = True
        self.store.add_vote(dict(pair_id=pair.pair_id, run_id=pair.run_id, model_id=pair.model_id,
                                 prompt=pair.prompt, config_a=pair.config_a, config_b=pair.config_b,
                                 winner=winner, created_at=now()))
        return {"A": pair.config_a, "B": pair.config_b, "winner": winner}
