"""SQLite results store: one row per measured configuration, written the moment it finishes
(one transaction each), plus a row per run so an interrupted run is visible as incomplete."""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from arena.core.paths import arena_home
from arena.core.results import (
    FLOAT_FIELDS,
    RESULT_FIELDS,
    Result,
    flat_row,
    from_flat_row,
)

_INT_FIELDS = ("batch_size", "prompt_tokens", "new_tokens", "repeats", "first_divergence", "synthetic",
               "compared_tokens", "tokens_after_eos")


def default_db_path() -> Path:
    if os.environ.get("ARENA_DB"):
        return Path(os.environ["ARENA_DB"])
    if Path("/data").is_dir() and os.access("/data", os.W_OK):  # a Space's persistent storage
        return Path("/data/arena.sqlite")
    return arena_home() / "arena.sqlite"


def _column_type(name: str) -> str:
    if name in FLOAT_FIELDS:
        return "REAL"
    if name in _INT_FIELDS:
        return "INTEGER"
    return "TEXT"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Store:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            cols = ", ".join(f'"{name}" {_column_type(name)}' for name in RESULT_FIELDS)
            db.execute(f"CREATE TABLE IF NOT EXISTS results (id INTEGER PRIMARY KEY AUTOINCREMENT, {cols})")
            have = {row[1] for row in db.execute("PRAGMA table_info(results)")}
            for name in RESULT_FIELDS:  # a newer schema adds columns, never drops any
                if name not in have:
                    db.execute(f'ALTER TABLE results ADD COLUMN "{name}" {_column_type(name)}')
            db.execute(
                "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, started_at TEXT, "
                "finished_at TEXT, status TEXT, request TEXT)"
            )
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

    def _write(self, sql: str, params: tuple | list) -> None:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(sql, params)
            db.execute("COMMIT")
        finally:
            db.close()

    # runs
    def start_run(self, run_id: str, request: dict[str, Any]) -> None:
        self._write("INSERT INTO runs VALUES (?, ?, NULL, 'running', ?)", (run_id, now(), json.dumps(request)))

    def finish_run(self, run_id: str, status: str = "complete") -> None:
        self._write("UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?", (now(), status, run_id))

    def mark_interrupted(self) -> int:
        """Runs still 'running' when the app starts were cut off: mark them incomplete."""
        db = self._connect()
        try:
            cur = db.execute("UPDATE runs SET status = 'incomplete' WHERE status = 'running'")
            return cur.rowcount
        finally:
            db.close()

    def runs(self) -> list[dict[str, Any]]:
        db = self._connect()
        try:
            return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY started_at")]
        finally:
            db.close()

    # results
    def add(self, result: Result) -> None:
        row = flat_row(result)
        names = ", ".join(f'"{k}"' for k in RESULT_FIELDS)
        marks = ", ".join("?" for _ in RESULT_FIELDS)
        self._write(f"INSERT INTO results ({names}) VALUES ({marks})", [row.get(k) for k in RESULT_FIELDS])

    def results(self, **filters: Any) -> list[Result]:
        """Stored results, oldest first; filters are column=value equalities."""
        where, params = [], []
        for key, value in filters.items():
            if key not in RESULT_FIELDS:
                raise ValueError(f"unknown field {key!r}")
            where.append(f'"{key}" = ?')
            params.append(value)
        sql = "SELECT * FROM results" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        db = self._connect()
        try:
            return [from_flat_row(dict(r)) for r in db.execute(sql, params)]
        finally:
            db.close()

    # votes
    def add_vote(self, vote: dict[str, Any]) -> None:
        names = ("pair_id", "run_id", "model_id", "prompt", "config_a", "config_b", "winner", "created_at")
        self._write(f"INSERT INTO votes ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                    [vote[n] for n in names])

    def votes(self) -> list[dict[str, Any]]:
        db = self._connect()
        try:
            return [dict(r) for r in db.execute("SELECT * FROM votes ORDER BY id")]
        finally:
            db.close()

    def integrity_ok(self) -> bool:
        db = self._connect()
        try:
            return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            db.close()
