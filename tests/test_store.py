import sqlite3

from arena.core.results import RESULT_FIELDS, Result
from arena.data.store import Store


def test_results_persist_across_instances(tmp_path):
    path = tmp_path / "a.sqlite"
    s = Store(path)
    s.start_run("run1", {"prompt": "x"})
    s.add(Result(run_id="run1", config="eager", status="ok", decode_tokens_per_s=12.5, token_ids=[5, 6]))
    s.add(Result(run_id="run1", config="sdpa-flash", status="unavailable", reason="needs a CUDA GPU"))
    s.finish_run("run1")
    again = Store(path)
    rows = again.results()
    assert [r.config for r in rows] == ["eager", "sdpa-flash"]
    assert rows[0].decode_tokens_per_s == 12.5 and rows[0].token_ids == [5, 6]
    assert again.results(status="unavailable")[0].reason == "needs a CUDA GPU"
    assert again.runs()[0]["status"] == "complete"
    assert again.integrity_ok()


def test_interrupted_runs_marked_incomplete(tmp_path):
    s = Store(tmp_path / "b.sqlite")
    s.start_run("cut", {})
    assert Store(s.path).mark_interrupted() == 1
    assert s.runs()[0]["status"] == "incomplete"


def test_schema_columns_follow_result_fields(tmp_path):
    s = Store(tmp_path / "c.sqlite")
    cols = {row[1] for row in sqlite3.connect(s.path).execute("PRAGMA table_info(results)")}
    assert set(RESULT_FIELDS) <= cols
