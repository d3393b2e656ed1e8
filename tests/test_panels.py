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
    assert set(fig.data[1].marker.color) == {"#b0b0b0"} and "grey: not a quality" in fig.layout.annotations[1].text


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
