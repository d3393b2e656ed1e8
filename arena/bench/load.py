"""Load on the real server, as benchmarks/load_test.py and benchmarks/server_e2e.py drive it
(and tests/test_load.py on a small scale): browser-like gradio_client sessions running the
arena again and again, a hostile client, and the checks after (nothing lost or stored twice,
no run left running, the server's memory bounded)."""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradio_client import Client

from arena.core.ending import Code


@dataclass
class Session:
    index: int
    submitted: float = 0.0
    started: float | None = None  # first snapshot: the run left the queue and began
    finished: float | None = None
    final: dict[str, Any] | None = None
    error: str = ""
    statuses: list[str] = field(default_factory=list)

    @property
    def wait_s(self) -> float | None:
        return None if self.started is None else self.started - self.submitted


def run_sessions(url: str, n: int, configs: str = "eager,sdpa", max_new_tokens: int = 4,
                 stagger_s: float = 0.3) -> list[Session]:
    """Submit n runs from n separate clients, `stagger_s` apart (so queue order is known), and
    follow each to its end in its own thread."""
    clients = [Client(url, verbose=False) for _ in range(n)]  # n browser-like sessions
    sessions = [Session(i) for i in range(n)]
    threads = []

    def follow(session: Session, job) -> None:
        try:
            for snapshot in job:
                if session.started is None:
                    session.started = time.monotonic()
                session.final = snapshot
        except Exception as exc:  # recorded, never raised: the report lists it
            session.error = f"{type(exc).__name__}: {exc}"
        session.finished = time.monotonic()

    for session, client in zip(sessions, clients):
        session.submitted = time.monotonic()
        job = client.submit(f"Session {session.index}: what is the capital of France?", "default", configs,
                            max_new_tokens, 1, "auto", 1, api_name="/run")
        thread = threading.Thread(target=follow, args=(session, job), daemon=True)
        thread.start()
        threads.append(thread)
        time.sleep(stagger_s)
    for thread in threads:
        thread.join()
    return sessions


def check(sessions: list[Session], db: Path, configs: str) -> list[str]:
    """Problems found (empty: none): lost runs, out-of-order runs, results missing or stored twice."""
    from arena.data.store import Store

    problems = [f"session {s.index}: {s.error}" for s in sessions if s.error]
    problems += [f"session {s.index}: no final snapshot" for s in sessions if not s.error and not s.final]
    done = [s for s in sessions if s.final and s.final.get("finished")]
    store = Store(db)
    started = [r["run_id"] for r in store.runs()]
    ours = [s.final["run_id"] for s in done]
    if [r for r in started if r in ours] != ours:
        problems.append(f"runs did not start in queue order: {started} vs submitted {ours}")
    rows = store.results()
    for s in done:
        got = sorted(r.config for r in rows if r.run_id == s.final["run_id"])
        if got != sorted(configs.split(",")):
            problems.append(f"session {s.index}: stored {got}")
    keys = [(r.run_id, r.config) for r in rows]
    if len(keys) != len(set(keys)):
        problems.append("a result was stored twice")
    return problems


def summary(sessions: list[Session]) -> dict[str, float]:
    waits = sorted(s.wait_s for s in sessions if s.wait_s is not None)
    totals = sorted(s.finished - s.submitted for s in sessions if s.finished)
    p95 = waits[min(len(waits) - 1, round(0.95 * (len(waits) - 1)))] if waits else float("nan")
    return {"sessions": len(sessions), "wait_median_s": statistics.median(waits) if waits else float("nan"),
            "wait_p95_s": p95, "wait_max_s": waits[-1] if waits else float("nan"),
            "total_median_s": statistics.median(totals) if totals else float("nan")}


def rss_mb(pid: int) -> float:
    """Resident memory of one process (not its workers), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Soak:
    accepted: dict[str, str] = field(default_factory=dict)  # run_id -> session that ran it
    finished: int = 0
    cancelled: int = 0
    refused_busy: int = 0
    hostile: dict[str, int] = field(default_factory=dict)  # action -> times the server refused it properly
    problems: list[str] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, key: str) -> None:
        with self.lock:
            self.hostile[key] = self.hostile.get(key, 0) + 1

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


def _session_loop(url: str, index: int, configs: str, max_new_tokens: int, deadline: float, soak: Soak) -> None:
    client = Client(url, verbose=False)
    k = 0
    while time.monotonic() < deadline:
        k += 1
        try:
            final = None
            for snapshot in client.submit(f"Session {index}, run {k}: what is the capital of France?", "default",
                                          configs, max_new_tokens, 1, "auto", 1, api_name="/run"):
                final = snapshot
        except Exception as exc:
            if "The arena is busy" in str(exc):
                with soak.lock:
                    soak.refused_busy += 1
                time.sleep(2)
                continue
            soak.problem(f"session {index} run {k}: {type(exc).__name__}: {exc}")
            continue
        if not final or not final.get("finished"):
            soak.problem(f"session {index} run {k}: no final snapshot")
            continue
        with soak.lock:
            soak.accepted[final["run_id"]] = f"session {index}"
            soak.finished += 1
        bad = [r for r in final["results"] if r["status"] != "ok"]
        if bad:
            soak.problem(f"session {index} run {k}: {[(r['config'], r['reason']) for r in bad]}")


def _expect_refusal(soak: Soak, key: str, call, match: str) -> None:
    try:
        call()
    except Exception as exc:
        if match in str(exc):
            soak.note(key)
        else:
            soak.problem(f"hostile {key}: unexpected answer {type(exc).__name__}: {str(exc)[:200]}")
        return
    soak.problem(f"hostile {key}: accepted")


def _hostile_loop(url: str, deadline: float, soak: Soak) -> None:
    """Malformed payloads, huge prompts, forged votes and runs cancelled at once, in turn. Runs
    wait in the one queue behind the sessions' runs, so their answers are collected at the end."""
    client = Client(url, verbose=False)
    join = url + "gradio_api/queue/join"
    pending: list[tuple[str, Any, str]] = []  # (action, job, expected words in the refusal)
    step = 0
    # Each queued job gets a client of its own. gradio_client reads all of a client's jobs from
    # one event stream, which the server closes when the session's last pending event completes;
    # a job that joined the queue at that moment is ended on the client with CancelledError
    # (gradio_client marks every pending job of a closed stream so), while the server still
    # answers it. Shared, that race ended 5 of 305 hostile jobs of the 2026-11-25 soak.
    while time.monotonic() < deadline:
        step += 1
        action = step % 5
        if action == 0:
            pending.append(("malformed number", Client(url, verbose=False).submit(
                "hi", "default", "eager", "lots", api_name="/run"), "max_new_tokens"))
        elif action == 1:
            pending.append(("huge prompt", Client(url, verbose=False).submit(
                "x" * 1_000_000, "default", "eager", 2, api_name="/run"), "prompt"))
        elif action == 2:
            _expect_refusal(soak, "forged vote", lambda: client.predict(
                "forged-pair-id", "A is better", api_name="/vote"), "not shown to this session")
        elif action == 3:
            for body in (b"{not json", json.dumps({"data": [None] * 99, "fn_index": 10**6}).encode()):
                req = urllib.request.Request(join, data=body, headers={"Content-Type": "application/json"})
                try:
                    urllib.request.urlopen(req, timeout=30)
                    soak.problem("hostile raw payload: accepted")
                except urllib.error.HTTPError as exc:
                    if exc.code >= 500:
                        soak.problem(f"hostile raw payload: server error {exc.code}")
                    else:
                        soak.note("raw malformed payload")
        else:
            # a client of its own: gradio_client's cancel can end the stream of every job of its client
            job = Client(url, verbose=False).submit("Cancel me at once.", "default", "eager,sdpa", 16, 1, "auto", 1,
                                                    api_name="/run")
            time.sleep(0.5)
            job.cancel()
            soak.note("rapid cancel")
        time.sleep(1.0)
    for key, job, words in pending:
        _expect_refusal(soak, key, lambda: job.result(timeout=3600), words)


def soak_test(url: str, db: Path, pid: int, duration_s: float, sessions: int = 8, configs: str = "eager,sdpa",
              max_new_tokens: int = 4, rss_bound_mb: float = 300.0) -> Soak:
    soak = Soak()
    start = time.monotonic()
    deadline = start + duration_s
    threads = [threading.Thread(target=_session_loop, args=(url, i, configs, max_new_tokens, deadline, soak),
                                daemon=True) for i in range(sessions)]
    threads.append(threading.Thread(target=_hostile_loop, args=(url, deadline, soak), daemon=True))
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        soak.rss.append((time.monotonic() - start, rss_mb(pid)))
        time.sleep(2)
    soak.rss.append((time.monotonic() - start, rss_mb(pid)))
    _check_store(soak, db, configs)
    growth = rss_growth(soak)
    if growth > rss_bound_mb:
        soak.problem(f"server RSS grew {growth:.0f} MB (bound {rss_bound_mb:g} MB)")
    return soak


def rss_growth(soak: Soak) -> float:
    """Largest RSS after the first fifth of the soak (warm: imports done, first runs through)
    minus the RSS at that point."""
    if len(soak.rss) < 3:
        return 0.0
    warm_at = soak.rss[-1][0] / 5
    warm = [mb for t, mb in soak.rss if t >= warm_at]
    return max(warm) - warm[0]


def _check_store(soak: Soak, db: Path, configs: str) -> None:
    from arena.data.store import Store

    store = Store(db)
    rows = store.results()
    keys = [(r.run_id, r.config) for r in rows]
    if len(keys) != len(set(keys)):
        soak.problem("a result was stored twice")
    for run_id, who in soak.accepted.items():
        got = sorted(r.config for r in rows if r.run_id == run_id)
        if got != sorted(configs.split(",")):
            soak.problem(f"{who}'s run {run_id}: stored {got}")
    runs = store.runs()
    left = [r["run_id"] for r in runs if r["status"] == "running"]
    if left:
        soak.problem(f"runs left 'running': {left}")
    for r in rows:
        if r.status != "ok" and not (r.ending and Code(r.ending).stopped):
            soak.problem(f"{r.run_id}/{r.config}: {r.status} without a cancel reason: {r.reason}")
    cancelled = {r["run_id"] for r in runs if r["status"] == "cancelled"}
    soak.cancelled = len(cancelled)
    if not store.integrity_ok():
        soak.problem("store integrity check failed")
