"""The Leaderboard tab: stored results a page at a time with their filters, charts, a CSV, and
the blind-vote quality ratings (the queries and tables: arena/ui/web/leaderboard.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from arena.ui.web import charts, leaderboard
from arena.ui.web.state import ArenaApp

READ_ONLY = dict(queue=False, api_visibility="private")


@dataclass
class LeaderboardTab:
    refresh: Callable[..., tuple]
    inputs: list[Any]
    outputs: list[Any]

    def refresh_after(self, event: Any) -> None:
        """Redraw the leaderboard once `event` (a run, a vote) is over."""
        event.then(self.refresh, self.inputs, self.outputs, **READ_ONLY)


def build_tab(app: ArenaApp) -> LeaderboardTab:
    """Add the Leaderboard tab to the Blocks being built."""
    lim = app.limits
    with gr.Tab("Leaderboard") as tab:
        with gr.Row():
            filters = [gr.Dropdown(list(leaderboard.MODES) if key == "mode" else [],
                                   value=["arena"] if key == "mode" else [],
                                   multiselect=True, label=label, elem_id=f"lb-{key}")
                       for key, label in zip(leaderboard.FILTERS, leaderboard.FILTER_LABELS)]
            include_failed = gr.Checkbox(False, label="include failed and unavailable")
            page = gr.Number(1, precision=0, minimum=1, label="page", elem_id="lb-page", min_width=80)
            refresh_btn = gr.Button("Refresh", elem_id="lb-refresh")
        caption = gr.Markdown(elem_id="lb-caption")
        table = gr.Dataframe(leaderboard.empty_table(), label="Stored results, fastest decode first "
                             "(click a heading to sort this page)", interactive=False, elem_id="lb-table")
        with gr.Row():
            csv_btn = gr.Button(f"Make CSV (the newest {leaderboard.CSV_ROWS:,} matching results)",
                                elem_id="lb-csv", scale=0)
            csv_file = gr.File(label="CSV", elem_id="lb-csv-file", interactive=False, height=90)
        bubble_plot = gr.Plot(elem_id="lb-bubbles")
        speedup_plot = gr.Plot(elem_id="lb-speedups")
        gr.Markdown("### Quality from blind votes\nRating per configuration within each model "
                    "(Bradley-Terry on the Elo scale, mean 1000; 95% bootstrap interval), beside "
                    "the configuration's median decode speed and peak memory for that model.")
        quality_table = gr.Dataframe(leaderboard.quality_table(leaderboard.empty_quality()), interactive=False,
                                     elem_id="lb-quality")
        quality_plot = gr.Plot(elem_id="lb-quality-plot")

    def refresh(*values):
        *selected, failed, page_v = values
        view = leaderboard.view(app.store, dict(zip(leaderboard.FILTERS, selected)), failed, page_v or 1,
                                lim.share_outputs)
        updates = [gr.update(choices=view.choices[k]) for k in leaderboard.FILTERS]
        return (*updates, view.page, view.caption(), view.table, charts.leaderboard_bubbles(view.sample),
                charts.leaderboard_speedups(view.sample), leaderboard.quality_table(view.quality),
                charts.quality_vs_speed(view.quality))

    def make_csv(*values):
        *selected, failed, _ = values
        frame = leaderboard.csv_frame(app.store, dict(zip(leaderboard.FILTERS, selected)), failed,
                                      lim.share_outputs)
        return str(leaderboard.to_csv(frame, app.downloads.path("leaderboard.csv")))

    inputs = [*filters, include_failed, page]
    outputs = [*filters, page, caption, table, bubble_plot, speedup_plot, quality_table, quality_plot]
    for trigger in (refresh_btn.click, include_failed.change, tab.select, page.submit,
                    *(f.input for f in filters)):
        trigger(refresh, inputs, outputs, **READ_ONLY)
    csv_btn.click(make_csv, inputs, csv_file, **READ_ONLY)
    return LeaderboardTab(refresh, inputs, outputs)
