"""The Arena tab's cards and run charts (arena/ui/web/panels.py, arena/ui/web/charts.py)."""

from __future__ import annotations

from arena.measure.quality import SYNTHETIC_NOTE


def test_quality_is_shown_greyed_with_its_reason_on_the_cards():
    from arena.ui.web.panels import RunState, render

    state = RunState(["sdpa"])
    state.apply({"type": "run", "run_id": "r", "order": ["sdpa"], "baseline": "eager"})
    state.apply({"type": "result", "config": "sdpa", "result": {
        "config": "sdpa", "status": "ok", "text": "Paris.", "token_agreement": 0.5, "compared_tokens": 8,
        "quality_note": SYNTHETIC_NOTE, "tokens_after_eos": 16}})
    page = render(state)
    assert "agreement 50% over 8 tokens" in page and 'class="arena-grey"' in page
    assert "16 tokens generated after end-of-text" in page
    from arena.ui.web.charts import run_speedup_quality

    rows = [{"config": c, "status": "ok", "decode_tokens_per_s": 2.0, "token_agreement": 1.0,
             "quality_note": SYNTHETIC_NOTE} for c in ("eager", "sdpa")]
    fig = run_speedup_quality(rows, "eager")
    grey = [t for t in fig.data if t.name.startswith("grey:")]
    assert grey and grey[0].marker.color == "#b0b0b0" and "not a quality" in grey[0].name
    # the reason is in the legend and on hover, never appended to a subplot's title (it ran over the next)
    assert [a.text for a in fig.layout.annotations] == ["decode speedup vs eager", "token agreement with eager"]


def test_unstable_rows_give_no_speedup_and_are_flagged_on_card_and_table():
    from arena.ui.web.charts import leaderboard_speedups, run_speedup_quality
    from arena.ui.web.panels import RunState, render, run_table

    rows = [{"config": "eager", "status": "ok", "decode_tokens_per_s": 2.0},
            {"config": "sdpa", "status": "ok", "decode_tokens_per_s": 4.0},
            {"config": "sdpa-math", "status": "ok", "decode_tokens_per_s": 9.0, "unstable": True,
             "trust_note": "decode tok/s varied 30% over the repeats (bound 10%)"}]
    fig = run_speedup_quality(rows, "eager")
    speedup = next(t for t in fig.data if t.name == "decode speedup")
    assert list(speedup.x) == ["eager", "sdpa"] and list(speedup.y) == [1.0, 2.0]
    assert any(t.name.startswith("unstable") and list(t.x) == ["sdpa-math"] for t in fig.data)
    # an unstable baseline: no speedup at all
    fig = run_speedup_quality([{**rows[0], "unstable": True}, rows[1]], "eager")
    assert not any(t.name == "decode speedup" and len(t.x) for t in fig.data)
    table = run_table(rows)
    assert list(table["stable"]) == ["yes", "yes", "unstable"]
    state = RunState(["sdpa-math"])
    state.apply({"type": "result", "config": "sdpa-math", "result": rows[2]})
    assert 'data-unstable="1"' in render(state) and "left out of speedups" in render(state)
    # the leaderboard's medians leave unstable rows out, and rows of a run whose baseline is unstable
    import pandas as pd

    frame = pd.DataFrame([
        {"run_id": "r1", "config": "eager", "baseline": "eager", "speedup": 1.0, "unstable": False},
        {"run_id": "r1", "config": "sdpa", "baseline": "eager", "speedup": 2.0, "unstable": False},
        {"run_id": "r2", "config": "sdpa", "baseline": "eager", "speedup": 40.0, "unstable": True},
        {"run_id": "r3", "config": "eager", "baseline": "eager", "speedup": 1.0, "unstable": True},
        {"run_id": "r3", "config": "sdpa", "baseline": "eager", "speedup": 30.0, "unstable": False},
    ]).assign(model_display="m", hardware="h")
    fig = leaderboard_speedups(frame)
    drawn = {x: y for t in fig.data for x, y in zip(t.x, t.y)}
    assert drawn == {"eager": 1.0, "sdpa": 2.0}, drawn
    assert "3 unstable left out" in fig.layout.title.text


def test_a_row_over_its_limit_is_flagged_never_a_plain_percentage():
    from arena.ui.web.panels import RunState, render, run_table

    row = {"config": "ort-cpu", "status": "ok", "decode_tokens_per_s": 23.3, "percent_of_bandwidth_limit": 120.0,
           "over_limit": True}
    assert run_table([row])["% of BW limit"][0] == "120 ⚠ over its limit"
    state = RunState(["ort-cpu"])
    state.apply({"type": "result", "config": "ort-cpu", "result": row})
    assert 'data-over-limit="1"' in render(state) and "faster than the limit allows" in render(state)


def test_stages_results_and_a_cards_first_text_reach_the_page_at_once_later_text_on_the_tick():
    from arena.ui.web.panels import RunState
    from arena.ui.web.session import urgent

    state = RunState(["eager", "sdpa"])
    events = [{"type": "status", "config": "eager", "stage": "running"},
              {"type": "token", "config": "eager", "text": "Paris"},
              {"type": "token", "config": "eager", "text": " is"},
              {"type": "token", "config": "sdpa", "text": "Paris"},
              {"type": "result", "config": "eager", "result": {"config": "eager", "status": "ok", "text": "Paris is"}}]
    seen = []
    for event in events:
        seen.append(urgent(state, event))
        state.apply(event)
    assert seen == [True, True, False, True, True]
