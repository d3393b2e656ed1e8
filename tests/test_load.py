"""Load on the real app: 8 concurrent gradio_client sessions, one measuring job at a time."""

from gradio_client import Client

from arena.bench.load import check, run_sessions, summary
from tests.appserver import running_app


def test_eight_concurrent_sessions_complete_in_queue_order(tmp_path):
    db = tmp_path / "arena.sqlite"
    with running_app(db) as app:
        sessions = run_sessions(app.url, 8, "eager,sdpa", max_new_tokens=4)
        assert check(sessions, db, "eager,sdpa") == []
        figures = summary(sessions)
        print("load:", {k: round(v, 2) for k, v in figures.items()})
        # one job at a time: the last session waited for most of the seven before it
        waits = [s.wait_s for s in sessions]
        assert waits[-1] > waits[0]


def test_a_full_queue_refuses_at_once(tmp_path):
    with running_app(tmp_path / "arena.sqlite", env={"ARENA_MAX_QUEUE": "1"}) as app:
        clients = [Client(app.url, verbose=False) for _ in range(3)]
        jobs = [c.submit("hi", "default", "eager", 2, 1, "auto", 1, api_name="/run") for c in clients]
        outcomes = []
        for job in jobs:
            try:
                job.result(timeout=600)
                outcomes.append("ok")
            except Exception as exc:
                outcomes.append(str(exc))
        assert outcomes.count("ok") >= 1
        assert any("The arena is busy" in o for o in outcomes), outcomes  # our words, not Gradio's


def test_app_killed_mid_run_keeps_results_and_marks_the_run_incomplete(tmp_path):
    import sqlite3
    import time

    from arena.data.store import Store

    db = tmp_path / "arena.sqlite"
    with running_app(db) as app:
        job = Client(app.url, verbose=False).submit(
            "What is the capital of France?", "default", "eager,sdpa,sdpa-math", 8, 1, "auto", 1, api_name="/run")
        deadline = time.monotonic() + 300
        while not Store(db).results() and time.monotonic() < deadline:
            time.sleep(0.2)
        app.kill()  # SIGKILL while the second configuration runs
        stored = [r.to_dict() for r in Store(db).results()]
        assert stored and len(stored) < 3
        del job
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [r["status"] for r in Store(db).runs()] == ["running"]

    with running_app(db) as app:
        runs = Store(db).runs()
        assert [r["status"] for r in runs] == ["incomplete"]
        assert [r.to_dict() for r in Store(db).results()] == stored  # every stored result, unchanged
        rows = Client(app.url, verbose=False).predict(api_name="/leaderboard")
        assert sorted(r["config"] for r in rows) == sorted(r["config"] for r in stored if r["status"] == "ok")
