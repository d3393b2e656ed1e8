"""The Leaderboard tab: stored results a page at a time with their filters, charts, a CSV, and
the blind-vote quality ratings (the queries and tables: arena/ui/web/leaderboard.py)."""

from __future__ import annotations

import gradio as gr

from arena.ui.web import charts, leaderboard
from arena.ui.web.state import ArenaApp

READ_ONLY = dict(queue=False, api_visibility="private")
NO_VOTES = "No blind votes yet."


def build_tab(app: ArenaApp) -> None:
    """Add the Leaderboard tab to the Blocks being built."""
    lim = app.limits
    with gr.Tab("Leaderboard") as tab:
        # The filters in one row that wraps, the page controls in the next (one row held
        # eight fixed-width blocks and scrolled sideways).
        with gr.Row(equal_height=True, elem_id="lb-filters"):
            filters = [gr.Dropdown(list(leaderboard.MODES) if key == "mode" else [],
                                   value=["arena"] if key == "mode" else [],
                                   multiselect=True, label=label, elem_id=f"lb-{key}", min_width=200)
                       for key, label in zip(leaderboard.FILTERS, leaderboard.FILTER_LABELS)]
        with gr.Row():
            include_failed = gr.Checkbox(False, label="include failed and unavailable")
            page = gr.Number(1, precision=0, minimum=1, label="page", elem_id="lb-page", min_width=80)
            refresh_btn = gr.Button("Refresh", elem_id="lb-refresh", scale=0, min_width=120)
        caption = gr.Markdown(elem_id="lb-caption")
        # Plain HTML (leaderboard.html_table): a Dataframe in a tab with a select listener took
        # 5-20 s of browser script per update (Gradio 6.17); this tab must hold none.
        table = gr.HTML(leaderboard.results_html(leaderboard.empty_table()), elem_id="lb-table",
                        label="Stored results, fastest decode first (click a heading to sort this page)",
                        show_label=True, container=True, js_on_load=leaderboard.SORT_JS,
                        css_template=leaderboard.TABLE_CSS)
        with gr.Row(equal_height=True):
            # A button wide enough for its words on one line, and the file box beside it only as
            # tall as the button row.
            csv_btn = gr.Button(f"Make CSV (the newest {leaderboard.CSV_ROWS:,} matching results)",
                                elem_id="lb-csv", scale=1, min_width=340)
            csv_file = gr.File(label="CSV (made when asked)", elem_id="lb-csv-file", interactive=False, height=60,
                               scale=2)
        bubble_plot = gr.Plot(label="Decode speed against peak memory", elem_id="lb-bubbles")
        speedup_plot = gr.Plot(label="Speedup versus each run's baseline", elem_id="lb-speedups")
        gr.Markdown("### Quality from blind votes\nRating per configuration within each model "
                    "(Bradley-Terry on the Elo scale, mean 1000; 95% bootstrap interval), beside "
                    "the configuration's median decode speed and peak memory for that model.")
        quality_table = gr.HTML(leaderboard.html_table(leaderboard.quality_table(leaderboard.empty_quality()),
                                                       NO_VOTES),
                                elem_id="lb-quality", js_on_load=leaderboard.SORT_JS,
                                css_template=leaderboard.TABLE_CSS)
        quality_plot = gr.Plot(label="Quality against speed", elem_id="lb-quality-plot")

    def refresh(*values):
        *selected, failed, page_v = values
        view = leaderboard.view(app.store, dict(zip(leaderboard.FILTERS, selected)), failed, page_v or 1,
                                lim.share_outputs)
        updates = [gr.update(choices=view.choices[k]) for k in leaderboard.FILTERS]
        return (*updates, view.page, view.caption(), leaderboard.results_html(view.table),
                charts.leaderboard_bubbles(view.sample), charts.leaderboard_speedups(view.sample),
                leaderboard.html_table(leaderboard.quality_table(view.quality), NO_VOTES),
                charts.quality_vs_speed(view.quality))

    def make_csv(*values):
        *selected, failed, _ = values
        frame = leaderboard.csv_frame(app.store, dict(zip(leaderboard.FILTERS, selected)), failed,
                                      lim.share_outputs)
        return str(leaderboard.to_csv(frame, app.downloads.path("leaderboard.csv")))

    inputs = [*filters, include_failed, page]
    outputs = [*filters, page, caption, table, bubble_plot, speedup_plot, quality_table, quality_plot]
    # Drawn when the tab is opened (so a page that never opens it costs no query) and on its own
    # controls: not after every run or vote, and not while hidden, where a Gradio output never
    # shown kept a stale loading status (a spinner for good) when its tab was first opened.
    for trigger in (tab.select, refresh_btn.click, include_failed.change, page.submit,
                    *(f.input for f in filters)):
        trigger(refresh, inputs, outputs, **READ_ONLY)
    csv_btn.click(make_csv, inputs, csv_file, **READ_ONLY)
