"""Load on the real server.

Soak (the default): N gradio_client sessions (8) each run two configurations on the embedded
default again and again, while one hostile client sends malformed payloads, huge prompts,
forged votes and runs it cancels at once, for --duration seconds (300). Then it checks that
every accepted run completed or was cancelled with its reason, that nothing stored was lost or
stored twice, that no run is left 'running', and that the server's resident memory grew less
than --rss-bound-mb after the first runs (workers are separate processes: this is the server).

    python -m benchmarks.load_test --start                     # starts `python app.py` on a temporary store
    python -m benchmarks.load_test --start --duration 45       # a short proof
    python -m benchmarks.load_test --url http://127.0.0.1:7860/ --db ~/.cache/inference-arena/arena.sqlite --pid 1234

--wave runs the older check instead: N sessions submitted at once, completed in queue order.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


from arena.bench.load import check, rss_growth, run_sessions, soak_test, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", action="store_true", help="start `python app.py` on a temporary store")
    ap.add_argument("--url")
    ap.add_argument("--db", type=Path, help="the app's SQLite store (ARENA_DB)")
    ap.add_argument("--pid", type=int, help="the server's process id (for its RSS)")
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--configs", default="eager,sdpa")
    ap.add_argument("--max-new-tokens", type=int, default=4)
    ap.add_argument("--duration", type=float, default=300.0, help="soak seconds (default 5 minutes)")
    ap.add_argument("--rss-bound-mb", type=float, default=300.0)
    ap.add_argument("--wave", action="store_true", help="one wave of sessions in queue order instead")
    args = ap.parse_args()
    server = None
    if args.start:
        from arena.testing.appserver import AppServer

        folder = Path(tempfile.mkdtemp(prefix="arena-load-"))
        server = AppServer(folder / "arena.sqlite").start()
        args.url, args.db, args.pid = server.url, server.db, server.proc.pid
        print(f"server pid {args.pid} at {args.url}, store {args.db}, log {server.log}", flush=True)
    elif not (args.url and args.db):
        ap.error("--url and --db (and --pid for the RSS check), or --start")
    try:
        if args.wave:
            return _wave(args)
        started = time.monotonic()
        soak = soak_test(args.url, args.db, args.pid, args.duration, args.sessions, args.configs,
                         args.max_new_tokens, args.rss_bound_mb) if args.pid else None
        if soak is None:
            ap.error("--pid is needed for the soak (the server's RSS)")
        rss = [mb for _, mb in soak.rss]
        print(json.dumps({"duration_s": round(time.monotonic() - started, 1), "sessions": args.sessions,
                          "runs_completed": soak.finished, "runs_cancelled_in_store": soak.cancelled,
                          "refused_busy": soak.refused_busy, "hostile_refused": soak.hostile,
                          "rss_start_mb": round(rss[0], 1), "rss_max_mb": round(max(rss), 1),
                          "rss_end_mb": round(rss[-1], 1), "rss_growth_after_warmup_mb": round(rss_growth(soak), 1),
                          "rss_bound_mb": args.rss_bound_mb}, indent=1))
        print("\n".join(soak.problems) or "every accepted run completed or was cancelled with its reason; "
              "every result stored exactly once; no run left running; RSS within the bound")
        return 1 if soak.problems else 0
    finally:
        if server:
            server.stop()


def _wave(args) -> int:
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
