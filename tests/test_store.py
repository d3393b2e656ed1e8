import sqlite3
from dataclasses import fields

from arena.core.results import Result
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


def test_interrupted_runs_are_marked_incomplete_at_the_next_start(tmp_path):
    s = Store(tmp_path / "b.sqlite")
    s.start_run("cut", {})
    assert Store(s.path).mark_interrupted() == 1
    assert s.runs()[0]["status"] == "incomplete"


def _value_of_its_own(i: int, name: str, kind: str) -> object:
    """A value for field `name` of type `kind` that no other field and no default has."""
    return {
        "Status": "failed", "bool": True, "int": 1000 + i, "int | None": 1000 + i, "float | None": i + 0.25,
        "str": f"{name}: é ✓", "list[int]": [i, 7, 8], "dict[str, float]": {"cuda:0": i + 0.5},
        "dict[str, list[float]]": {"ttft_ms": [i + 0.5, 2.0]}, "dict[str, Any]": {name: {"nested": [1, "x", None]}},
    }[kind]


def test_every_result_field_is_written_and_read_back_as_it_was(tmp_path):
    """A field the schema lacks, the insert skips or the reader turns into another type fails here."""
    written = Result(**{f.name: _value_of_its_own(i, f.name, str(f.type)) for i, f in enumerate(fields(Result))})
    assert all(getattr(written, f.name) != f.default for f in fields(Result))
    s = Store(tmp_path / "c.sqlite")
    s.add(written)
    read = Store(s.path).results()[0].to_dict()
    assert read == written.to_dict()
    assert {k: type(v) for k, v in read.items()} == {k: type(v) for k, v in written.to_dict().items()}


def _many(n):
    import random

    rng = random.Random(0)
    for i in range(n):
        yield Result(run_id=f"r{i // 3}", config=("eager", "sdpa", "bnb-4bit")[i % 3], baseline="eager",
                     status="ok" if i % 7 else "failed", model_display=rng.choice(["A", "B", "C"]),
                     hardware=rng.choice(["H100", "CPU"]), mode="arena" if i % 5 else "sweep-forward",
                     decode_tokens_per_s=None if i % 11 == 0 else rng.uniform(1, 100), prompt=f"secret {i}",
                     text=f"out {i}")


def test_pages_filters_and_choices_come_from_sql_like_the_whole_list(tmp_path):
    s = Store(tmp_path / "p.sqlite")
    assert s.add_many(_many(600)) == 600
    everything = [r.to_dict() | {"order": i} for i, r in enumerate(s.results())]
    filters = {"mode": ["arena"], "model_display": ["A", "C"], "hardware": []}

    def expected(include_failed):
        rows = [r for r in everything if r["mode"] == "arena" and r["model_display"] in ("A", "C")
                and (include_failed or r["status"] == "ok")]
        # fastest first, unmeasured last, newest first among equals (the store's id order)
        return sorted(rows, key=lambda r: (r["decode_tokens_per_s"] is None, -(r["decode_tokens_per_s"] or 0),
                                           -r["order"]))

    for include_failed in (False, True):
        want = expected(include_failed)
        assert s.count(filters, include_failed) == len(want)
        pages = [s.page(filters, include_failed, "speed", 50, offset) for offset in range(0, len(want) + 50, 50)]
        got = [(r["run_id"], r["config"]) for p in pages for r in p]
        assert got == [(r["run_id"], r["config"]) for r in want]
    newest = s.page({}, True, "newest", 5, 0, ("run_id", "config"))
    assert [(r["run_id"], r["config"]) for r in newest] == [(r["run_id"], r["config"]) for r in everything[::-1][:5]]
    assert s.distinct(["model_display", "mode"]) == {"model_display": ["A", "B", "C"],
                                                     "mode": ["arena", "sweep-forward"]}
    s.add(Result(run_id="z", config="eager", status="ok", model_display="D", mode="sweep-generate"))
    assert s.distinct(["model_display", "mode", "hardware"]) == {
        "model_display": ["A", "B", "C", "D"], "mode": ["arena", "sweep-forward", "sweep-generate"],
        "hardware": ["CPU", "H100"]}
    with __import__("pytest").raises(ValueError, match="unknown field"):
        s.page({"nope; DROP TABLE results": ["x"]})


def test_old_databases_still_load(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # a results table from before these columns existed
        db.execute("CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, config TEXT, "
                   "status TEXT, speedup REAL, token_agreement REAL)")
        db.execute("INSERT INTO results (run_id, config, status, speedup, token_agreement) "
                   "VALUES ('r', 'sdpa', 'ok', 1.5, 0.25)")
    old = Store(path).results()[0]
    assert old.speedup == 1.5 and old.token_agreement == 0.25
    assert old.compared_tokens is None and old.quality_note == "" and old.warmup_peak_memory_mb is None
