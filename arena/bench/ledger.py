"""Which rows of a stage are measured already: a table beside the results, in the same SQLite file.

A row is one configuration of one part of a stage (a sweep's: one implementation and all its
points; a fidelity check's: one configuration's rounds), keyed by the stage, the part's settings,
the hardware and the arena's code version. Run and sweep rows point at their results in the
store by run id; rows that are no Result (fidelity, profile, script output) keep a JSON payload.
A row is written when it finishes, never before, so a call cut off mid-row leaves nothing that
claims the row is done."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arena
from arena.data.store import now

PACKAGE = Path(arena.__file__).resolve().parent
# What does not measure: benchmark bookkeeping and tables, the pages. A change there keeps rows done.
NOT_MEASURING = ("bench", "ui")


def code_version(package: Path = PACKAGE) -> str:
    """A hash of the measuring code: every .py file of the arena package outside NOT_MEASURING
    (path and bytes), so the same checkout gives the same version with or without git."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.parts[0] in NOT_MEASURING:
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return "arena-" + digest.hexdigest()[:12]


def git_label(package: Path = PACKAGE) -> str:
    """'git 1a2b3c4' (+ ' with local changes'), or '' where there is no git checkout."""
    root = package.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "arena"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"git {sha}" + (" with local changes" if dirty else "") if sha else ""


@dataclass(frozen=True)
class Key:
    stage: str
    part: str  # a hash of the part's settings (Part.key)
    hardware: str
    code: str


class Ledger:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            db.execute("CREATE TABLE IF NOT EXISTS bench_rows (id INTEGER PRIMARY KEY AUTOINCREMENT, stage TEXT, "
                       "part TEXT, hardware TEXT, code TEXT, row TEXT, status TEXT, reason TEXT, run_id TEXT, "
                       "payload TEXT, created_at TEXT)")
            db.execute("CREATE INDEX IF NOT EXISTS bench_rows_by_key ON bench_rows(stage, part, hardware, code)")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def record(self, key: Key, row: str, status: str, reason: str = "", *, run_id: str | None = None,
               payload: Any = None) -> None:
        with closing(self._connect()) as db:
            db.execute("INSERT INTO bench_rows (stage, part, hardware, code, row, status, reason, run_id, payload, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (key.stage, key.part, key.hardware, key.code, row, status, reason, run_id,
                        None if payload is None else json.dumps(payload), now()))

    def latest(self, key: Key) -> dict[str, dict[str, Any]]:
        """row -> its newest entry (status, reason, run_id, payload), oldest row first."""
        with closing(self._connect()) as db:
            found = db.execute("SELECT * FROM bench_rows WHERE stage = ? AND part = ? AND hardware = ? AND code = ? "
                               "ORDER BY id", (key.stage, key.part, key.hardware, key.code)).fetchall()
        rows: dict[str, dict[str, Any]] = {}
        for r in found:
            entry = dict(r)
            entry["payload"] = json.loads(entry["payload"]) if entry["payload"] else None
            rows[entry["row"]] = entry
        return rows

    def done(self, key: Key, *, retry_failed: bool = False) -> dict[str, str]:
        """row -> status of the rows a call skips: measured or refused here; failed ones too
        unless `retry_failed` (a failure that repeats would cost its time limit on every call)."""
        return {row: e["status"] for row, e in self.latest(key).items()
                if e["status"] != "failed" or not retry_failed}
