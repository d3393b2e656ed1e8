"""Concurrent sessions against a running app: N gradio_client sessions each submit a run at
about the same time; prints each one's queue wait and total time, and checks that every run
completed in the order it was queued with each result stored exactly once.

    python app.py &                                      # or any running arena
    python benchmarks/load_test.py --url http://127.0.0.1:7860/ --db ~/.cache/inference-arena/arena.sqlite
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradio_client import Client


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--db", required=True, type=Path, help="the app's SQLite store (ARENA_DB)")
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--configs", default="eager,sdpa")
    ap.add_argument("--max-new-tokens", type=int, default=4)
    args = ap.parse_args()
    sessions = run_sessions(args.url, args.sessions, args.configs, args.max_new_tokens)
    for s in sessions:
        print(f"session {s.index}: wait {s.wait_s or float('nan'):.1f} s, "
              f"total {(s.finished or 0) - s.submitted:.1f} s {s.error}")
    print({k: round(v, 2) for k, v in summary(sessions).items()})
    problems = check(sessions, args.db, args.configs)
    print("\n".join(problems) or "every run completed in queue order; every result stored exactly once")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
