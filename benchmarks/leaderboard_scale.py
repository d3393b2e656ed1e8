"""The Leaderboard tab on a large store: fill a SQLite store with N results (default
1,000,000; one bulk transaction), then time the functions the tab calls on page load
(`arena.ui.web.leaderboard.view` and the two charts drawn from its sample), a filtered view,
a later page and the /leaderboard API's page. Target: <= 2 s per view on this CPU.

    python -m benchmarks.leaderboard_scale                 # 1,000,000 rows in a temporary store
    python -m benchmarks.leaderboard_scale --rows 200000 --db /tmp/big.sqlite --keep
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path


from arena.core.results import RESULT_FIELDS, Result, flat_row
from arena.data.store import Store
from arena.ui.web import charts, leaderboard

CONFIGS = ("eager", "sdpa", "sdpa-math", "bnb-4bit", "bnb-8bit", "static-cache", "compiled-decode", "ort-cpu")
MODELS = ("SmolLM2-135M-Instruct", "Qwen2.5-0.5B-Instruct", "TinyLlama-1.1B-Chat", "synthetic tiny-llama")
HARDWARE = ("NVIDIA H100 80GB HBM3", "NVIDIA H200", "CPU: AMD EPYC (2 cores)")


def fill(db: Path, rows: int, seed: int = 0, chunk: int = 50_000) -> float:
    """Insert `rows` results (runs of 4 configurations, ~10% failed, a tenth sweep points) in
    one transaction; returns the seconds it took."""
    Store(db)  # schema and indexes
    template = flat_row(Result(run_id="", config="", status="ok", env={"device": "cuda"},
                               settings={"max_new_tokens": 32}, token_ids=list(range(32))))
    index = {k: i for i, k in enumerate(RESULT_FIELDS)}
    base = [template.get(k) for k in RESULT_FIELDS]
    rng = random.Random(seed)
    names = ", ".join(f'"{k}"' for k in RESULT_FIELDS)
    sql = f"INSERT INTO results ({names}) VALUES ({', '.join('?' for _ in RESULT_FIELDS)})"
    start = time.perf_counter()
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("BEGIN")
    done = 0
    while done < rows:
        batch = []
        for i in range(done, min(rows, done + chunk)):
            row = list(base)
            run = i // 4
            speed = rng.lognormvariate(4, 0.6)
            row[index["run_id"]] = f"run{run:07d}"
            row[index["config"]] = CONFIGS[(run + i) % len(CONFIGS)]
            row[index["baseline"]] = CONFIGS[run % len(CONFIGS)]
            row[index["status"]] = "failed" if rng.random() < 0.1 else "ok"
            row[index["mode"]] = "sweep-forward" if run % 10 == 0 else "arena"
            row[index["model_id"]] = row[index["model_display"]] = MODELS[run % len(MODELS)]
            row[index["hardware"]] = HARDWARE[run % len(HARDWARE)]
            row[index["dtype"]] = "bf16"
            row[index["family"]] = "attention"
            row[index["created_at"]] = f"2026-{1 + run % 12:02d}-01T00:00:00+00:00"
            row[index["decode_tokens_per_s"]] = speed
            row[index["ttft_ms"]] = rng.uniform(5, 80)
            row[index["peak_memory_mb"]] = rng.uniform(300, 20_000)
            row[index["prompt"]] = f"visitor prompt {i}"
            row[index["text"]] = f"generated text {i}"
            batch.append(row)
        con.executemany(sql, batch)
        done += len(batch)
    con.execute("COMMIT")
    con.execute("ANALYZE")
    con.close()
    return time.perf_counter() - start


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def render_tab(store: Store, values: dict, page: int = 1, include_failed: bool = False):
    """What the tab's refresh does: the view and its figures."""
    view = leaderboard.view(store, values, include_failed, page, share_outputs=False)
    charts.leaderboard_bubbles(view.sample)
    charts.leaderboard_speedups(view.sample)
    charts.quality_vs_speed(view.quality)
    return view


def make_csv(store: Store):
    """What the tab's 'Make CSV' button does."""
    frame = leaderboard.csv_frame(store, {"mode": ["arena"]}, False, share_outputs=False)
    assert "text" not in frame.columns
    with tempfile.TemporaryDirectory() as tmp:
        leaderboard.to_csv(frame, Path(tmp) / "leaderboard.csv")
    return frame


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, help="store to fill (default: a temporary file)")
    ap.add_argument("--keep", action="store_true", help="keep an existing --db as it is (no refill)")
    ap.add_argument("--target-s", type=float, default=2.0)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = args.db or Path(tmp.name) / "big.sqlite"
    if not (args.keep and db.exists()):
        db.unlink(missing_ok=True)
        print(f"filling {db} with {args.rows:,} results ...", flush=True)
        print(f"  bulk insert: {fill(db, args.rows):.1f} s", flush=True)
    store = Store(db)
    t_open, _ = timed(Store, db)
    cases = [
        ("page load (kind=arena, page 1)", {"mode": ["arena"]}, 1, False),
        ("again (filter choices cached)", {"mode": ["arena"]}, 1, False),
        ("filtered (one model, one hardware)", {"mode": ["arena"], "model_display": [MODELS[1]],
                                                "hardware": [HARDWARE[0]]}, 1, False),
        ("page 500, failed included", {"mode": ["arena"]}, 500, True),
    ]
    figures = {"rows": store.count({}, True), "store_open_s": round(t_open, 3)}
    worst = 0.0
    for label, values, page, failed in cases:
        seconds, view = timed(render_tab, store, values, page, failed)
        worst = max(worst, seconds)
        assert "prompt" not in view.table.columns  # private on a public server
        print(f"  {label}: {seconds:.2f} s ({view.caption()})", flush=True)
        figures[label] = round(seconds, 3)
    t_csv, csv = timed(make_csv, store)
    print(f"  'Make CSV' button ({len(csv):,} rows): {t_csv:.2f} s")
    figures["csv_s"] = round(t_csv, 3)
    t_api, rows = timed(leaderboard.page_rows, store, leaderboard.selection({"mode": "arena"}), False, 1, False, 1000)
    print(f"  /leaderboard API page of {len(rows)}: {t_api:.2f} s")
    figures["api_page_1000_s"] = round(t_api, 3)
    print(json.dumps(figures))
    verdict = "within" if worst <= args.target_s else "OVER"
    print(f"slowest Leaderboard view: {worst:.2f} s on {figures['rows']:,} stored results ({verdict} the "
          f"{args.target_s:g} s target)")
    return 0 if worst <= args.target_s else 1


if __name__ == "__main__":
    raise SystemExit(main())
