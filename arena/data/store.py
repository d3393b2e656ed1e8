"""SQLite results store: one row per measured configuration, written the moment it finishes
(one transaction each), plus a row per run so an interrupted run is visible as incomplete."""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Iterable, Sequence

from arena.core.ending import RunStatus
from arena.core.paths import arena_home
from arena.core.results import Result, column_types, flat_row, from_flat_row, result_fields


PERSISTENT_VOLUME = Path("/data")  # where a Space mounts its persistent storage
# Columns the leaderboard filters and pages on: each has an index, so a page of a large store
# is an index walk, not a scan.
INDEXED = ("model_id", "model_display", "hardware", "family", "dtype", "config", "created_at")


def persistent_volume(root: Path = PERSISTENT_VOLUME) -> bool:
    """True when `root` is a mounted volume we may write (a Space's persistent storage); a
    plain folder of the container's own filesystem is lost with the container."""
    return os.path.ismount(root) and os.access(root, os.W_OK)


def default_db_path() -> Path:
    if os.environ.get("ARENA_DB"):
        return Path(os.environ["ARENA_DB"])
    if persistent_volume():
        return PERSISTENT_VOLUME / "arena.sqlite"
    return arena_home() / "arena.sqlite"


def _where(filters: dict[str, Sequence[str]], include_failed: bool) -> tuple[str, list[Any]]:
    """SQL for the leaderboard's filters: each key is a column, its values alternatives."""
    clauses, params = [], []
    for key, values in filters.items():
        if key not in result_fields():
            raise ValueError(f"unknown field {key!r}")
        values = [str(v) for v in values or () if str(v)]
        if values:
            clauses.append(f'"{key}" IN ({", ".join("?" for _ in values)})')
            params += values
    if not include_failed:
        clauses.append("status = 'ok'")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Store:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_db_path()
        self._distinct: dict[str, Any] = {"max_id": 0, "values": {}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            types = column_types()  # the declarations of arena/core/results.py
            cols = ", ".join(f'"{name}" {sql}' for name, sql in types.items())
            db.execute(f"CREATE TABLE IF NOT EXISTS results (id INTEGER PRIMARY KEY AUTOINCREMENT, {cols})")
            have = {row[1] for row in db.execute("PRAGMA table_info(results)")}
            for name, sql in types.items():  # a newer schema adds columns, never drops any
                if name not in have:
                    db.execute(f'ALTER TABLE results ADD COLUMN "{name}" {sql}')
            db.execute(
                "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, started_at TEXT, "
                "finished_at TEXT, status TEXT, request TEXT)"
            )
            db.execute("UPDATE results SET mode = 'arena' WHERE mode IS NULL")  # rows older than sweeps
            db.execute("CREATE INDEX IF NOT EXISTS results_by_speed ON results(mode, status, decode_tokens_per_s)")
            db.execute("CREATE INDEX IF NOT EXISTS results_by_speed_all ON results(mode, decode_tokens_per_s)")
            db.execute("CREATE INDEX IF NOT EXISTS results_by_run ON results(run_id)")
            for name in INDEXED:
                db.execute(f'CREATE INDEX IF NOT EXISTS "results_{name}" ON results("{name}")')
            # Blind-check votes (arena/data/blind.py): the pair id is unique, so a pair counts once.
            db.execute(
                "CREATE TABLE IF NOT EXISTS votes (id INTEGER PRIMARY KEY AUTOINCREMENT, pair_id TEXT UNIQUE, "
                "run_id TEXT, model_id TEXT, prompt TEXT, config_a TEXT, config_b TEXT, winner TEXT, "
                "created_at TEXT)"
            )

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def _write(self, sql: str, params: tuple | list | Iterable, many: bool = False) -> int:
        """One transaction: `sql` once, or once per row of `params` with many=True; rows written."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            cur = db.executemany(sql, params) if many else db.execute(sql, params)
            db.execute("COMMIT")
            return cur.rowcount

    # runs
    def start_run(self, run_id: str, request: dict[str, Any]) -> None:
        self._write("INSERT INTO runs VALUES (?, ?, NULL, 'running', ?)", (run_id, now(), json.dumps(request)))

    def finish_run(self, run_id: str, status: RunStatus = "complete") -> None:
        self._write("UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?", (now(), status, run_id))

    def mark_interrupted(self) -> int:
        """Runs still 'running' when the app starts were cut off: mark them incomplete."""
        with closing(self._connect()) as db:
            cur = db.execute("UPDATE runs SET status = 'incomplete' WHERE status = 'running'")
            return cur.rowcount

    def runs(self) -> list[dict[str, Any]]:
        with closing(self._connect()) as db:
            return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY started_at")]

    # results
    def add(self, result: Result) -> None:
        """One result, in its own transaction, the moment its configuration finishes."""
        self.add_many([result])

    def add_many(self, results: Iterable[Result | dict[str, Any]]) -> int:
        """Insert many results in one transaction (imports, benchmarks); returns how many."""
        keys = result_fields()
        names = ", ".join(f'"{k}"' for k in keys)
        marks = ", ".join("?" for _ in keys)
        rows = ([row.get(k) for k in keys] for row in map(flat_row, results))
        return self._write(f"INSERT INTO results ({names}) VALUES ({marks})", rows, many=True)

    def page(self, filters: dict[str, Sequence[str]], include_failed: bool = False, order_by: str = "speed",
             limit: int = 100, offset: int = 0, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One page of flat rows matching `filters` (column -> accepted values), fastest decode
        first (order_by="speed") or newest first ("newest"); only `columns` when given."""
        where, params = _where(filters, include_failed)
        # (NULL sorts lowest in SQLite: unmeasured rows come last, and the index keeps the order)
        order = {"speed": "decode_tokens_per_s DESC, id DESC",
                 "newest": "id DESC"}[order_by]
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        sql = f"SELECT {cols} FROM results{where} ORDER BY {order} LIMIT ? OFFSET ?"
        with closing(self._connect()) as db:
            return [dict(r) for r in db.execute(sql, [*params, int(limit), int(offset)])]

    def count(self, filters: dict[str, Sequence[str]], include_failed: bool = False) -> int:
        where, params = _where(filters, include_failed)
        with closing(self._connect()) as db:
            return db.execute(f"SELECT COUNT(*) FROM results{where}", params).fetchone()[0]

    def distinct(self, columns: Sequence[str]) -> dict[str, list[str]]:
        """The values each column takes (the leaderboard's filter choices). Kept in memory and
        brought up to date from the rows added since the last call, so a large store is read once."""
        cache = self._distinct
        unknown = [c for c in columns if c not in result_fields()]
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}")
        with closing(self._connect()) as db:
            top = db.execute("SELECT COALESCE(MAX(id), 0) FROM results").fetchone()[0]
            known = list(cache["values"])
            if top > cache["max_id"] and known:
                quoted = ", ".join(f'"{n}"' for n in known)
                for row in db.execute(f"SELECT DISTINCT {quoted} FROM results WHERE id > ?", (cache["max_id"],)):
                    for n, v in zip(known, row):
                        cache["values"][n].add(v)
            for c in columns:
                if c not in cache["values"]:  # asked for the first time: read it whole
                    cache["values"][c] = {r[0] for r in db.execute(f'SELECT DISTINCT "{c}" FROM results')}
            cache["max_id"] = top
        return {c: sorted(str(v) for v in cache["values"][c] if v is not None and str(v)) for c in columns}

    def results(self, **filters: Any) -> list[Result]:
        """Stored results, oldest first; filters are column=value equalities."""
        where, params = [], []
        for key, value in filters.items():
            if key not in result_fields():
                raise ValueError(f"unknown field {key!r}")
            where.append(f'"{key}" = ?')
            params.append(value)
        sql = "SELECT * FROM results" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        with closing(self._connect()) as db:
            return [from_flat_row(dict(r)) for r in db.execute(sql, params)]

    # votes
    def add_vote(self, vote: dict[str, Any]) -> None:
        names = ("pair_id", "run_id", "model_id", "prompt", "config_a", "config_b", "winner", "created_at")
        self._write(f"INSERT INTO votes ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                    [vote[n] for n in names])

    def votes(self) -> list[dict[str, Any]]:
        with closing(self._connect()) as db:
            return [dict(r) for r in db.execute("SELECT * FROM votes ORDER BY id")]

    def integrity_ok(self) -> bool:
        with closing(self._connect()) as db:
            return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
