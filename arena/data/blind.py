"""Blind side-by-side check: the server draws two configurations' outputs of a finished run
(the session's last run, or a blind run of two configurations it drew at random), shows them as
A and B in random order without their names, and accepts one vote per pair.

Only pairs this server produced for a session can be voted on, once: the pair id is a random
token kept server-side with the session that received it; the names are revealed after the vote.
Two outputs with the same text are never shown as a pair (that is not a choice). Votes are
limited per session and per client address per hour, and sessions and pairs expire
(BLIND_TTL_S, at most BLIND_MAX_SESSIONS sessions), so memory stays bounded."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from arena.core.ending import Code
from arena.core.limits import BLIND_MAX_SESSIONS, BLIND_TTL_S
from arena.data.store import Store, now

HOUR_S = 3600.0

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
    shown_at: float = 0.0

    def public(self) -> dict[str, Any]:
        """What the page sees before the vote: no configuration names."""
        return {"pair_id": self.pair_id, "text_a": self.text_a, "text_b": self.text_b}


@dataclass
class _Run:
    run_id: str
    model_id: str
    prompt: str
    outputs: dict[str, str]  # config -> text, the configurations that finished
    left_out: dict[str, str] = field(default_factory=dict)  # config -> why it has no output to compare
    synthetic: bool = False
    pairs: dict[frozenset, str] = field(default_factory=dict)  # {a, b} -> pair id
    recorded_at: float = 0.0


def same_text(a: str, b: str) -> bool:
    """Two outputs a reader cannot tell apart: equal but for spacing and line breaks."""
    return " ".join((a or "").split()) == " ".join((b or "").split())


def _why_left_out(result: dict[str, Any]) -> str:
    reason = str(result.get("reason") or "")
    if result.get("ending") == Code.CANCELLED:
        return "cancelled"
    return f"{result.get('status')}: {reason[:80]}" if reason else str(result.get("status"))


class BlindCheck:
    """Per-session registry of finished runs and the pairs shown from them (in memory: a pair
    shown before a restart of the app cannot be voted on after it)."""

    def __init__(self, store: Store, rng: secrets.SystemRandom | None = None, votes_per_hour: int = 60,
                 ttl_s: float = BLIND_TTL_S, max_sessions: int = BLIND_MAX_SESSIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.rng = rng or secrets.SystemRandom()
        self.votes_per_hour, self.ttl_s, self.max_sessions, self.clock = votes_per_hour, ttl_s, max_sessions, clock
        self._runs: dict[str, _Run] = {}  # session -> its last finished run (insertion order: oldest first)
        self._pairs: dict[str, Pair] = {}
        self._votes: dict[str, deque[float]] = {}  # "session:…" / "client:…" -> times of its recent votes
        self._lock = threading.Lock()

    def sizes(self) -> dict[str, int]:
        """How much is held in memory (tests and the load test check it stays bounded)."""
        with self._lock:
            return {"sessions": len(self._runs), "pairs": len(self._pairs), "voters": len(self._votes)}

    def _expire(self) -> None:
        """Drop sessions and pairs older than ttl_s, then the oldest sessions beyond max_sessions,
        and vote counters with no vote in the last hour (called with the lock held)."""
        t = self.clock()
        for session in [s for s, r in self._runs.items() if t - r.recorded_at > self.ttl_s]:
            del self._runs[session]
        while len(self._runs) > self.max_sessions:
            del self._runs[next(iter(self._runs))]
        for pair_id in [p for p, pair in self._pairs.items()
                        if t - pair.shown_at > self.ttl_s or pair.session not in self._runs]:
            del self._pairs[pair_id]
        for key in [k for k, times in self._votes.items() if not times or t - times[-1] > HOUR_S]:
            del self._votes[key]

    def record_run(self, session: str, results: list[dict[str, Any]]) -> int:
        """Remember a session's finished run, whatever became of it (a cancelled or failed run
        replaces the previous one too, so that the reason given is this run's); returns how many
        outputs can be compared."""
        ok = [r for r in results if r.get("status") == "ok"]
        synthetic = any(r.get("synthetic") for r in results)
        outputs = {} if synthetic else {r["config"]: r.get("text") or "" for r in ok}
        first = results[0] if results else {}
        run = _Run(str(first.get("run_id") or ""), str(first.get("model_id") or ""),
                   "" if synthetic else str(first.get("prompt") or ""), outputs,
                   {r["config"]: _why_left_out(r) for r in results if r.get("status") != "ok"}, synthetic,
                   recorded_at=self.clock())
        with self._lock:
            self._runs.pop(session, None)  # re-inserted last: the newest
            self._runs[session] = run
            self._expire()
        return len(outputs)

    def draw_configs(self, candidates: list[str]) -> list[str]:
        """Two different configurations for a blind run, drawn at random from `candidates` (in
        random order: which runs first says nothing about which is shown as A)."""
        names = list(dict.fromkeys(candidates))
        if len(names) < 2:
            raise VoteError(f"a blind run draws two configurations, and only {len(names)} can run here for this "
                            f"model ({', '.join(names) or 'none'})")
        return self.rng.sample(names, 2)

    def draw(self, session: str) -> Pair:
        """Two configurations of the session's last run not yet shown to it, with different
        text, in random order."""
        with self._lock:
            self._expire()
            run = self._runs.get(session)
            if run is None:
                raise VoteError("run at least two configurations on a real (not synthetic) model first")
            if run.synthetic:
                raise VoteError("your last run was on a synthetic model, whose random weights write noise: run "
                                "at least two configurations on a real (not synthetic) model first")
            if len(run.outputs) < 2:
                raise VoteError(_too_few(run))
            names = sorted(run.outputs)
            unseen = [frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1:]
                      if frozenset((a, b)) not in run.pairs]
            fresh = [p for p in unseen if not same_text(*(run.outputs[n] for n in p))]
            if unseen and not fresh:
                raise VoteError("the configurations of this run wrote the same text: there is nothing to choose "
                                "between (identical outputs are not a vote)")
            if not fresh:
                raise VoteError("every pair of this run has been shown; run again for more")
            a, b = sorted(self.rng.choice(fresh))
            if self.rng.random() < 0.5:
                a, b = b, a
            pair = Pair(secrets.token_urlsafe(16), session, run.run_id, run.model_id, run.prompt,
                        a, b, run.outputs[a], run.outputs[b], shown_at=self.clock())
            run.pairs[frozenset((a, b))] = pair.pair_id
            self._pairs[pair.pair_id] = pair
            return pair

    def vote(self, session: str, pair_id: str, choice: str, client: str = "") -> dict[str, str]:
        """Store the vote and reveal the names; VoteError for a forged, foreign or repeated vote,
        or one over the hourly limit of this session or of this client address."""
        winner = CHOICES.get(choice, choice if choice in CHOICES.values() else None)
        if winner is None:
            raise VoteError(f"the choice must be one of: {', '.join(CHOICES)}")
        if not pair_id:
            raise VoteError("no pair is shown yet: draw two outputs (or make a blind run) first")
        with self._lock:
            self._expire()
            pair = self._pairs.get(str(pair_id))
            if pair is None or pair.session != session:
                raise VoteError("this pair was not shown to this session (or it expired): vote refused")
            if pair.voted:
                raise VoteError(f"you have already voted on this pair (A was {pair.config_a}, B was "
                                f"{pair.config_b}): one vote per pair; draw another pair or make a blind run")
            t = self.clock()
            keys = [f"session:{session}"] + ([f"client:{client}"] if client else [])
            for key in keys:
                recent = self._votes.setdefault(key, deque())
                while recent and t - recent[0] > HOUR_S:
                    recent.popleft()
                if len(recent) >= self.votes_per_hour:
                    who = "this session" if key.startswith("session:") else "this address"
                    raise VoteError(f"{who} has voted {self.votes_per_hour} times in the last hour, the "
                                    "limit of this server: try again later")
            for key in keys:
                self._votes[key].append(t)
            pair.voted = True
        self.store.add_vote(dict(pair_id=pair.pair_id, run_id=pair.run_id, model_id=pair.model_id,
                                 prompt=pair.prompt, config_a=pair.config_a, config_b=pair.config_b,
                                 winner=winner, created_at=now()))
        return {"A": pair.config_a, "B": pair.config_b, "winner": winner}


def _too_few(run: _Run) -> str:
    """Why a run with fewer than two finished outputs offers no pair, in its own terms."""
    done = ", ".join(run.outputs) or "none"
    missing = ", ".join(f"{c} ({why})" for c, why in run.left_out.items())
    head = (f"your last run finished {len(run.outputs)} configuration{'s' if len(run.outputs) != 1 else ''} "
            f"with text ({done})")
    return head + (f"; not finished: {missing}" if missing else "") + \
        ": a pair needs two finished outputs, so run at least two configurations again (or make a blind run)"
