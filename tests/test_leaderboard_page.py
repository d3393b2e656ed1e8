"""What the Leaderboard tab and the run charts show, on a real SQLite store: the quality table
names a model as the results table does, says "too few votes" instead of a zero-width interval,
tables are whole plain HTML, and the bandwidth-limit line says what it is."""

import re

import pandas as pd

from arena.core.results import Result
from arena.data.store import now
from arena.ui.web import charts, leaderboard

DISPLAY = "SmolLM2-135M-Instruct (embedded)"


def _fill(store, runs: int = 3) -> None:
    for run in range(runs):
        for cfg, speed in (("eager", 30.0 + run), ("sdpa", 40.0 + run)):
            store.add(Result(run_id=f"r{run}", config=cfg, status="ok", baseline="eager", model_id="default",
                             model_display=DISPLAY, hardware="CPU", dtype="fp32", family="attention", mode="arena",
                             created_at=now(), decode_tokens_per_s=speed, ttft_ms=20.0, peak_memory_mb=700.0,
                             prompt="p", text="t", batch_size=1, env={}, settings={}))


def _vote(store, i: int, winner: str) -> None:
    store.add_vote(dict(pair_id=f"p{i}", run_id="r0", model_id="default", prompt="p", config_a="eager",
                        config_b="sdpa", winner=winner, created_at=now()))


def test_quality_table_names_the_model_as_the_results_do_and_gives_no_interval_from_few_votes(store):
    _fill(store)
    _vote(store, 0, "b")
    frame = leaderboard.quality_frame(store, rounds=50)
    assert set(frame["model_display"]) == {DISPLAY}
    assert frame["rating_low"].isna().all() and frame["rating_high"].isna().all()  # one vote: no interval
    page = leaderboard.quality_table(frame)
    assert list(page.columns)[:4] == ["model", "configuration", "rating", "95% interval"]
    assert set(page["model"]) == {DISPLAY}
    assert set(page["95% interval"]) == {f"too few votes (1 of {leaderboard.MIN_VOTES})"}
    html = leaderboard.html_table(page)
    assert DISPLAY in html and ">default<" not in html
    # the page's chart: no error bar where there is no interval, an open marker instead
    fig = charts.quality_vs_speed(frame)
    assert {t.marker.symbol for t in fig.data} == {"circle-open"}

    # enough votes (mixed outcomes): a real interval around the rating, on the page too
    for i in range(1, leaderboard.MIN_VOTES + 2):
        _vote(store, i, "b" if i % 3 else "a")
    frame = leaderboard.quality_frame(store, rounds=50)  # a new vote: the cached ratings are not reused
    assert (frame["votes"] == leaderboard.MIN_VOTES + 2).all()
    assert (frame["rating_low"] < frame["rating"]).all() and (frame["rating"] < frame["rating_high"]).all()
    shown = leaderboard.quality_table(frame)["95% interval"]
    assert all(re.fullmatch(r"[\d,]+–[\d,]+", v) for v in shown), list(shown)
    assert not {t.marker.symbol for t in charts.quality_vs_speed(frame).data} & {"circle-open"}


def test_tables_are_plain_html_with_every_row(store):
    _fill(store, runs=50)  # a full page: 100 rows
    view = leaderboard.view(store, {"mode": ["arena"]}, rounds=10)
    html = leaderboard.html_table(view.table)
    assert html.count("<tr>") == 101  # the heading row and every result of the page
    headings = re.findall(r"<th>(.*?)</th>", html)
    assert headings[:6] == ["model", "configuration", "decode tok/s", "TTFT ms", "peak MB", "% of BW limit"]
    frame = pd.DataFrame({"configuration": ["<script>alert(1)</script>"], "decode tok/s": [1234.5]})
    tiny = leaderboard.html_table(frame)
    assert "<script>" not in tiny and "&lt;script&gt;" in tiny
    assert '<td class="num">1,234</td>' in tiny or '<td class="num">1,235</td>' in tiny
    assert "No blind votes yet." in leaderboard.html_table(frame.iloc[:0], "No blind votes yet.")


def test_the_bandwidth_limit_line_has_a_legend_entry():
    results = [{"config": c, "status": "ok", "decode_tokens_per_s": s, "peak_memory_mb": 500.0,
                "bandwidth_limit_tokens_per_s": 900.0} for c, s in (("eager", 100.0), ("sdpa", 120.0))]
    fig = charts.run_speed_memory(results)
    assert fig.layout.showlegend
    [line] = [t for t in fig.data if t.type == "scatter"]
    assert line.name == charts.BANDWIDTH_LABEL and line.showlegend and line.line.dash == "dash"
    assert all(t.showlegend is False for t in fig.data if t.type == "bar")  # bars are named on their axis
    # without a limit (no known bandwidth) there is no line and no legend
    fig = charts.run_speed_memory([{**r, "bandwidth_limit_tokens_per_s": None} for r in results])
    assert not fig.layout.showlegend and all(t.type == "bar" for t in fig.data)


def test_agreement_reads_as_on_the_cards(store):
    from arena.ui.web.panels import agreement_text

    for cfg, agree in (("eager", 1.0), ("sdpa", 0.875), ("sdpa-math", None)):
        store.add(Result(run_id="r", config=cfg, status="ok", baseline="eager", model_id="default",
                         model_display=DISPLAY, hardware="CPU", dtype="fp32", family="attention", mode="arena",
                         created_at=now(), decode_tokens_per_s=30.0, token_agreement=agree, env={}, settings={}))
    view = leaderboard.view(store, {"mode": ["arena"]}, rounds=10)
    shown = dict(zip(view.table["configuration"], view.table["agree"]))
    assert shown == {"eager": agreement_text(1.0), "sdpa": agreement_text(0.875), "sdpa-math": "–"}
    assert shown["sdpa"] == "88%"
