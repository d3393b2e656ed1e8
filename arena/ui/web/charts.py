"""Plotly figures for one run and for the leaderboard."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots


BANDWIDTH_COLOR = "#2ca02c"
# What the dashed line is: decode cannot beat reading the weights (and KV cache) once per token.
BANDWIDTH_LABEL = "memory-bandwidth limit (the most decode tok/s the weights' reads allow)"


def _ok(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r.get("status") == "ok"]


UNSTABLE_COLOR = "#b0b0b0"


def _empty(title: str, why: str = "no measured configuration yet") -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, height=320, annotations=[dict(
        text=why, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)])
    return fig


def run_speed_memory(results: list[dict[str, Any]]) -> go.Figure:
    """Decode tokens/s and peak memory per configuration, with the memory-bandwidth limit
    as a reference line where the results carry it."""
    ok = _ok(results)
    if not ok:
        return _empty("Decode speed and peak memory")
    names = [r["config"] for r in ok]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("decode tokens/s", "peak memory (MB)"))
    # A bar above its limit says so on the bar (arena/measure/trust.py): never a plain number.
    fig.add_bar(x=names, y=[r.get("decode_tokens_per_s") for r in ok], name="decode tok/s",
                text=[f"{r.get('decode_tokens_per_s') or 0:.1f}" + (" ⚠ over limit" if r.get("over_limit") else "")
                      for r in ok],
                marker_color=["#d97706" if r.get("over_limit") else "#636efa" for r in ok],
                hovertext=[r.get("trust_note") or "" for r in ok], row=1, col=1)
    fig.add_bar(x=names, y=[r.get("peak_memory_mb") for r in ok], name="peak MB",
                hovertext=[r.get("memory_method") for r in ok], row=1, col=2)
    limits = [r.get("bandwidth_limit_tokens_per_s") for r in ok if r.get("bandwidth_limit_tokens_per_s")]
    fig.update_traces(showlegend=False)
    if limits:
        # Each configuration has its own limit (its weight bytes differ): drawn per bar, the one
        # line with a legend entry, so that the dashed line says what it is.
        fig.add_scatter(x=names, y=[r.get("bandwidth_limit_tokens_per_s") for r in ok], mode="markers+lines",
                        line=dict(dash="dash", color=BANDWIDTH_COLOR), marker=dict(color=BANDWIDTH_COLOR),
                        name=BANDWIDTH_LABEL, showlegend=True, row=1, col=1,
                        hovertemplate="%{x}: memory-bandwidth limit %{y:.3g} tok/s<extra></extra>")
    fig.update_layout(height=360, showlegend=bool(limits), title="Decode speed and peak memory",
                      legend=dict(orientation="h", x=0, y=-0.18, xanchor="left", yanchor="top"))
    return fig


def run_speedup_quality(results: list[dict[str, Any]], baseline: str) -> go.Figure:
    """Speedup of decode tokens/s over the baseline, and greedy token agreement with it. An
    unstable row (arena/measure/trust.py) has no speedup bar, only a grey "unstable" mark; an
    unstable baseline gives no speedups at all. Notes go to the legend and hover, not the titles."""
    ok = _ok(results)
    base = next((r for r in ok if r["config"] == baseline), None)
    if not ok or base is None or not base.get("decode_tokens_per_s"):
        why = ("no measured configuration yet" if not ok else
               f"the baseline ({baseline or 'none'}) has no measurement in this run")
        return _empty(f"Speedup and agreement versus the baseline ({baseline or 'none'})", why)
    names = [r["config"] for r in ok]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"decode speedup vs {baseline}",
                                                        f"token agreement with {baseline}"))
    trusted = [r for r in ok if not r.get("unstable") and not base.get("unstable")]
    speedups = [r["decode_tokens_per_s"] / base["decode_tokens_per_s"] for r in trusted]
    fig.add_bar(x=[r["config"] for r in trusted], y=speedups, text=[f"{v:.2f}×" for v in speedups],
                name="decode speedup", marker_color="#636efa", row=1, col=1)
    left_out = [r for r in ok if r not in trusted]
    if left_out:
        fig.add_scatter(x=[r["config"] for r in left_out], y=[1.0] * len(left_out), mode="markers+text",
                        text=["unstable"] * len(left_out), textposition="top center",
                        marker=dict(color=UNSTABLE_COLOR, symbol="x"), row=1, col=1,
                        name="unstable: no speedup drawn" + (" (the baseline is unstable)" if base.get("unstable")
                                                             else ""),
                        hovertext=[r.get("trust_note") or "baseline unstable" for r in left_out])
    fig.add_hline(y=1.0, line_dash="dot", row=1, col=1)
    # Agreement with a reason (random weights, a near-tie) is drawn grey, the reason in the
    # legend and on hover: in a title it ran over the next one.
    notes = [r.get("quality_note") or "" for r in ok]
    for grey in (False, True):
        rows = [(r, n) for r, n in zip(ok, notes) if bool(n) == grey]
        if rows:
            kind = next((n.split(":")[0] for _, n in rows if n), "")
            fig.add_bar(x=[r["config"] for r, _ in rows], y=[r.get("token_agreement") for r, _ in rows],
                        hovertext=[n for _, n in rows], row=1, col=2,
                        name=f"grey: {kind}" if grey else "token agreement",
                        marker_color=UNSTABLE_COLOR if grey else "#00cc96")
    fig.update_xaxes(categoryorder="array", categoryarray=names)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", row=1, col=2)
    fig.update_layout(height=380, showlegend=True, title=f"Speedup and agreement versus the baseline ({baseline})",
                      legend=dict(orientation="h", x=0, y=-0.2, xanchor="left", yanchor="top"))
    return fig


def leaderboard_bubbles(frame: pd.DataFrame) -> go.Figure:
    """Decode tokens/s against peak memory; bubble size is TTFT, colour the configuration."""
    data = frame.dropna(subset=["decode_tokens_per_s", "peak_memory_mb"]) if len(frame) else frame
    if not len(data):
        return _empty("Decode speed against peak memory")
    data = data.assign(ttft_size=data["ttft_ms"].fillna(0).clip(lower=1))
    fig = px.scatter(
        data, x="peak_memory_mb", y="decode_tokens_per_s", size="ttft_size", color="config",
        hover_data=["model_display", "hardware", "dtype", "batch_size", "ttft_ms", "run_id"],
        labels={"peak_memory_mb": "peak memory (MB)", "decode_tokens_per_s": "decode tokens/s",
                "ttft_size": "TTFT (ms)", "ttft_ms": "TTFT (ms)", "model_display": "model", "config": "configuration",
                "batch_size": "batch", "run_id": "run"},
        title="Decode speed against peak memory (bubble size: time to first token)",
    )
    # Magnitudes: both axes from zero, so that a 0.3% difference looks like one.
    fig.update_xaxes(rangemode="tozero")
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(height=460)
    return fig


def trusted_speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose speedup can be a headline: measured, stable, and from a run whose baseline is
    stable too (arena/measure/trust.py); unstable rows stay in the table, greyed."""
    if not len(frame) or "unstable" not in frame.columns:
        return frame
    unstable = frame["unstable"].fillna(False).astype(bool)
    bases = frame[(frame["config"] == frame["baseline"]) & unstable]
    return frame[~unstable & ~frame["run_id"].isin(set(bases["run_id"]))]


def leaderboard_speedups(frame: pd.DataFrame) -> go.Figure:
    """Median decode speedup over each run's baseline, per configuration, one panel per model;
    unstable rows (and runs with an unstable baseline) are left out of the medians."""
    data = frame.dropna(subset=["speedup"]) if len(frame) else frame
    left_out = len(data)
    data = trusted_speedups(data)
    left_out -= len(data)
    if not len(data):
        return _empty("Speedup versus the baseline, per model",
                      f"{left_out} unstable speedup{'s' if left_out != 1 else ''} left out, none stable"
                      if left_out else "no measured speedup yet")
    grouped = data.groupby(["model_display", "hardware", "config"], as_index=False)["speedup"].median()
    fig = px.bar(grouped, x="config", y="speedup", color="hardware", barmode="group",
                 facet_row="model_display", labels={"speedup": "median decode speedup", "config": "configuration"},
                 title="Decode speedup versus each run's baseline, per model"
                       + (f" ({left_out} unstable left out)" if left_out else ""))
    words_only(fig)
    fig.update_yaxes(rangemode="tozero")
    fig.add_hline(y=1.0, line_dash="dot")
    fig.update_layout(height=max(320, 260 * grouped["model_display"].nunique()))
    return fig


def words_only(fig: go.Figure) -> go.Figure:
    """Facet titles as the value alone ("SmolLM2-135M"), not plotly's "model_display=SmolLM2-135M"."""
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]) if a.text and "=" in a.text else None)
    return fig


def quality_vs_speed(quality: pd.DataFrame) -> go.Figure:
    """Blind-vote rating (95% bootstrap interval where there are enough votes) against median
    decode tokens/s; a configuration with too few votes is drawn as an open marker, no bar."""
    data = quality.dropna(subset=["decode_tokens_per_s"]) if len(quality) else quality
    if not len(data):
        return _empty("Quality rating against decode speed", "no blind votes yet: vote in the Blind check tab")
    data = data.assign(
        interval=[("too few votes" if pd.isna(lo) else f"{lo:,.0f}–{hi:,.0f}")
                  for lo, hi in zip(data["rating_low"], data["rating_high"])])
    fig = px.scatter(
        data, x="decode_tokens_per_s", y="rating", color="config", symbol="model_display",
        error_y=(data["rating_high"] - data["rating"]).fillna(0),
        error_y_minus=(data["rating"] - data["rating_low"]).fillna(0),
        hover_data=["votes", "interval", "peak_memory_mb"],
        labels={"decode_tokens_per_s": "median decode tokens/s", "rating": "blind-vote rating (Bradley-Terry)",
                "model_display": "model", "config": "configuration", "interval": "95% interval",
                "peak_memory_mb": "median peak MB"},
        title="Quality (blind votes) against speed",
    )
    few = {f"{c}, {m}" for c, m in data.loc[data["rating_low"].isna(), ["config", "model_display"]].itertuples(
        index=False, name=None)}
    fig.for_each_trace(lambda t: t.update(marker=dict(symbol="circle-open", size=11)) if t.name in few else None)
    fig.update_xaxes(rangemode="tozero")
    fig.update_layout(height=420)
    return fig
