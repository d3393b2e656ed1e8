"""The metric contract (arena/core/results.py): a field declared once with `metric(...)` reaches
the store's columns, the run tables, the CSVs, the leaderboard and the rank aggregation."""

import csv
import sqlite3
from dataclasses import dataclass

import pytest

from arena.core import results
from arena.core.results import Result, metric
from arena.data.store import Store
from arena.execute.tensor_parallel import merge
from arena.ui import cli
from arena.ui.web import leaderboard, panels  # imported before a test declares its field


@dataclass
class _WithJoules(Result):
    """One more metric, declared in one place and nowhere else."""
    total_joules: float | None = metric(unit="J", heading="total J", repeats="pooled", ranks="sum", table=True)


@pytest.fixture
def joules(monkeypatch):
    monkeypatch.setattr(results, "Result", _WithJoules)
    return _WithJoules


def _rows(cls):
    return [cls(run_id="r1", config="eager", status="ok", baseline="eager", decode_tokens_per_s=10.0,
                total_joules=12.5, model_display="m", mode="arena"),
            cls(run_id="r1", config="sdpa", status="ok", baseline="eager", decode_tokens_per_s=20.0,
                total_joules=7.25, model_display="m", mode="arena")]


def test_a_declared_metric_reaches_store_tables_csv_and_leaderboard(joules, tmp_path):
    store = Store(tmp_path / "a.sqlite")
    store.add_many(_rows(joules))
    types = {row[1]: row[2] for row in sqlite3.connect(store.path).execute("PRAGMA table_info(results)")}
    assert types["total_joules"] == "REAL"
    back = Store(store.path).results()
    assert [r.total_joules for r in back] == [12.5, 7.25]

    table = cli.format_table([r.to_dict() for r in back], cli.table_columns(back))
    assert "total J" in table.splitlines()[0] and "12.5" in table
    assert "total J" in panels.run_table([r.to_dict() for r in back]).columns

    cli.write_outputs(back, None, str(tmp_path / "run.csv"))
    with open(tmp_path / "run.csv", newline="") as fh:
        assert [row["total_joules"] for row in csv.DictReader(fh)] == ["12.5", "7.25"]

    page = leaderboard.table(leaderboard.page_rows(store, {}))
    assert list(page["total J"]) == [7.25, 12.5]  # fastest first
    assert "total_joules" in leaderboard.csv_frame(store, {}, False, True).columns


def test_a_metric_combines_over_ranks_by_its_declared_rule(joules):
    per_rank = {r: {"decode_tokens_per_s": 10.0 + r, "total_joules": 2.0, "peak_memory_mb": 100.0,
                    "device_peak_memory_mb": {"cpu": 100.0}, "placement": {}} for r in range(3)}
    merged = merge(per_rank, [])
    assert merged["total_joules"] == 6.0 and merged["peak_memory_mb"] == 300.0
    assert merged["decode_tokens_per_s"] == 10.0  # rank 0's


def test_a_store_written_before_a_field_was_declared_reads_it_as_its_default(joules, tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the oldest schema: a handful of columns
        db.execute("CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, config TEXT, "
                   "status TEXT, decode_tokens_per_s REAL)")
        db.execute("INSERT INTO results (run_id, config, status, decode_tokens_per_s) VALUES ('r', 'eager', 'ok', 5)")
    [row] = Store(path).results()
    assert row.decode_tokens_per_s == 5 and row.total_joules is None and row.mode == "arena"
    assert row.token_ids == [] and row.warm is False and row.batch_size == 1


def test_every_field_declares_its_rules_and_the_table_headings_are_declared():
    for m in results.schema():
        assert m.sql in ("REAL", "INTEGER", "TEXT", "JSON"), m
        if m.table:
            assert m.heading, f"{m.name} is in the run table without a heading"
        if m.kind is float:
            assert m.unit, f"{m.name}: a measured float declares its unit"
