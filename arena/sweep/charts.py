"""Plotly figures of sweep points, and the data behind each figure as CSV.

    charts = all_charts(results)          # results: Results or their dicts (run_sweep, store, JSON)
    for chart in charts:
        chart.title, chart.figure, chart.csv()   # a go.Figure and its data as CSV text

- speedup_charts: speedup over eager against batch size, one line per implementation, one
  chart per (model, hardware, mode, quantization, sequence length, padding); a sweep of one
  batch size gets speedup against sequence length instead, one chart per padding.
- memory_charts: peak memory against sequence length, one line per implementation, one chart
  per (model, hardware, mode, quantization, batch size, padding) with two or more lengths.
- padded_charts (generate-padded sweeps): decode tokens/s, TTFT and peak memory against batch
  size, one line per implementation, one chart each per (model, hardware, quantization).
Points that did not run are kept in each chart's data (status, reason) and named in its
legend; they are never silently missing. Each sweep (run_id) gets its own charts, so points
of several sweeps (from the store, or several JSON files) are never mixed in one line.
Each point's spread over its timed repeats (stored in its `spread`) is drawn as an error bar
(min to max); a speedup whose spread is larger than its effect (its range high/low wider than
its distance from 1x, as ratios) is drawn hollow, named under the chart and flagged `noisy` in
its data: a measurement that does not support its number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from arena.core.results import Result
from arena.measure.trust import SPREAD_BOUND_PCT, spread_pct

COLUMNS = (
    "model_id", "model_display", "hardware", "mode", "quant", "config", "label", "status", "reason",
    "dtype", "batch_size", "seq_len", "padding", "padding_achieved", "latency_ms", "speedup",
    "tokens_per_s", "ttft_ms", "decode_tokens_per_s", "peak_memory_mb", "weights_mb", "activation_mb",
    "memory_method", "run_id", "baseline", "repeats", "latency_ms_low", "latency_ms_high", "ttft_ms_low",
    "ttft_ms_high", "decode_tokens_per_s_low", "decode_tokens_per_s_high", "speedup_low", "speedup_high", "noisy",
    "spread_pct", "unstable",
)
_SPREAD = ("latency_ms", "ttft_ms", "decode_tokens_per_s")  # metrics whose repeats are kept
PADDED = "sweep-generate-padded"
_GROUP = ["run_id", "model_id", "hardware", "mode", "quant"]  # one sweep's points at one quantization


@dataclass
class Chart:
    key: str  # short, file-name safe: e.g. "speedup-llama-2-7b-seq4096-pad0.3"
    title: str
    figure: go.Figure
    data: pd.DataFrame  # the points behind the figure, failed ones included
    x: str = "batch_size"  # the data column on the x axis: "batch_size" or "seq_len"

    def csv(self) -> str:
        return self.data.to_csv(index=False)


def points_frame(points: Iterable[Result | dict[str, Any]]) -> pd.DataFrame:
    """Sweep points (mode sweep-*) as a flat table with the columns of COLUMNS."""
    rows = []
    for p in points:
        d = p.to_dict() if isinstance(p, Result) else dict(p)
        if not str(d.get("mode") or "").startswith("sweep"):
            continue
        settings = d.get("settings") or {}
        peak, weights = d.get("peak_memory_mb"), d.get("weights_mb")
        spread = d.get("spread") or {}
        ranges = {}
        for metric in _SPREAD:
            values = [v for v in spread.get(metric) or [] if v is not None]
            ranges[f"{metric}_low"] = min(values) if values else None
            ranges[f"{metric}_high"] = max(values) if values else None
        rows.append({
            **ranges, "spread_pct": spread_pct(spread.get("latency_ms")), "baseline": d.get("baseline"), "repeats": len(spread.get("latency_ms") or []) or None,
            **{k: d.get(k) for k in ("model_id", "model_display", "hardware", "mode", "config", "label",
                                     "status", "reason", "dtype", "batch_size", "padding", "latency_ms",
                                     "speedup", "ttft_ms", "decode_tokens_per_s", "peak_memory_mb",
                                     "weights_mb", "memory_method", "run_id")},
            "quant": settings.get("quant", "none"),
            "seq_len": d.get("prompt_tokens"),
            "padding_achieved": settings.get("padding_achieved"),
            "tokens_per_s": d.get("e2e_tokens_per_s"),
            # memory above the weights: only where the peak counts torch's allocations alone (CUDA);
            # a CPU process's resident memory also holds the Python runtime
            "activation_mb": peak - weights if peak is not None and weights is not None
            and str(d.get("memory_method", "")).startswith("torch.cuda") else None,
        })
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    # stable: implementations keep the order they ran in (eager first)
    frame = frame.sort_values(["model_id", "quant", "seq_len", "padding", "batch_size"],
                              kind="stable", ignore_index=True)
    return _speedup_spread(frame)


def _speedup_spread(frame: pd.DataFrame) -> pd.DataFrame:
    """Each speedup's range over the repeats: the baseline's slowest and fastest repeat at the
    same point over this point's fastest and slowest (the baseline itself: its median over its
    own range); `noisy` where that range is wider than the speedup's distance from 1, both as
ratios (log scale)."""
    if not len(frame):
        return frame
    point = ["run_id", "model_id", "hardware", "mode", "quant", "seq_len", "padding", "batch_size"]
    base = frame[frame["config"] == frame["baseline"]][point + ["latency_ms", "latency_ms_low",
                                                                "latency_ms_high"]]
    base = base.drop_duplicates(point).rename(columns={"latency_ms": "_b", "latency_ms_low": "_b_low",
                                                       "latency_ms_high": "_b_high"})
    joined = frame.merge(base, on=point, how="left")
    own = joined["config"] == joined["baseline"]
    low = pd.Series(joined["_b_low"] / joined["latency_ms_high"], dtype=float)
    high = pd.Series(joined["_b_high"] / joined["latency_ms_low"], dtype=float)
    low[own] = joined["_b"][own] / joined["latency_ms_high"][own]
    high[own] = joined["_b"][own] / joined["latency_ms_low"][own]
    frame = frame.copy()
    frame["speedup_low"], frame["speedup_high"] = low.to_numpy(), high.to_numpy()
    # On a log scale, so that 2x faster and 2x slower are the same effect.
    effect = np.log(frame["speedup"].astype(float)).abs()
    width = np.log(frame["speedup_high"] / frame["speedup_low"])
    frame["noisy"] = (width > effect).fillna(False).astype(bool) & ~own.to_numpy()
    # Unstable (arena/measure/trust.py, docs/trust.md): this point's or its eager point's latency
    # varied past the bound over the repeats; its speedup is drawn off the line, grey.
    base_cv = joined.groupby(point, dropna=False)["spread_pct"].transform(
        lambda s: s[joined.loc[s.index, "config"] == joined.loc[s.index, "baseline"]].max())
    frame["unstable"] = ((joined["spread_pct"] > SPREAD_BOUND_PCT) | (base_cv > SPREAD_BOUND_PCT)).fillna(
        False).astype(bool).to_numpy()
    return frame


def _slug(text: Any) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in str(text)).strip("-")


def _padding_text(padding: float) -> str:
    return "no padding" if not padding else f"{padding:.0%} padding"


def _lines(fig: go.Figure, data: pd.DataFrame, x: str, y: str, hover: str) -> None:
    """One line per configuration (input order kept), with each point's spread over its
    repeats as an error bar; what did not run is listed under the plot with its reason (a line
    with some points missing says how many), and so are speedups whose spread is larger than
    their effect (drawn hollow)."""
    notes, noisy = [], []
    for config in dict.fromkeys(data["config"]):
        rows = data[data["config"] == config]
        ok = rows[(rows["status"] == "ok") & rows[y].notna()]
        lost = rows[rows["status"] != "ok"]
        reasons = "; ".join(dict.fromkeys(lost["reason"].astype(str)))
        if len(lost):
            what = "all points" if len(ok) == 0 else f"{len(lost)} of {len(rows)} points"
            notes.append(f"{config} ({what}): {reasons[:90]}")
        if len(ok) == 0:
            continue
        trace = go.Scatter(
            x=ok[x], y=ok[y], name=str(config) + (f" ({len(lost)} not run)" if len(lost) else ""),
            mode="lines+markers", customdata=ok[["latency_ms", "peak_memory_mb", "latency_ms_low",
                                                 "latency_ms_high"]].to_numpy(),
            hovertemplate=hover.replace("<extra>", "<br>repeats %{customdata[2]:.1f}–%{customdata[3]:.1f} ms<extra>")
            if "latency" in hover else hover,
        )
        if f"{y}_low" in ok and ok[f"{y}_low"].notna().any():  # the spread over the repeats
            trace.error_y = dict(type="data", symmetric=False, thickness=1, width=3,
                                 array=(ok[f"{y}_high"] - ok[y]).clip(lower=0).fillna(0).to_numpy(),
                                 arrayminus=(ok[y] - ok[f"{y}_low"]).clip(lower=0).fillna(0).to_numpy())
        if y == "speedup" and ok["unstable"].any():
            off = ok[ok["unstable"].astype(bool)]
            fig.add_trace(go.Scatter(x=off[x], y=off[y], mode="markers", name=f"{config}: unstable, off the line",
                                     marker=dict(symbol="circle-open", size=10, color="#b0b0b0"),
                                     hovertemplate="unstable: latency varied past 10% over the repeats"
                                                   "<extra></extra>"))
            ok = ok[~ok["unstable"].astype(bool)]
            if len(ok) == 0:
                continue
            trace.update(x=ok[x], y=ok[y], customdata=ok[["latency_ms", "peak_memory_mb", "latency_ms_low",
                                                           "latency_ms_high"]].to_numpy())
            if trace.error_y and trace.error_y.array is not None:
                trace.error_y.update(array=(ok[f"{y}_high"] - ok[y]).clip(lower=0).fillna(0).to_numpy(),
                                     arrayminus=(ok[y] - ok[f"{y}_low"]).clip(lower=0).fillna(0).to_numpy())
        if y == "speedup" and ok["noisy"].any():
            trace.marker = dict(symbol=["circle-open" if n else "circle" for n in ok["noisy"]], size=10)
            where = ", ".join(str(v) for v in ok.loc[ok["noisy"].astype(bool), x])
            noisy.append(f"{config} at {'batch' if x == 'batch_size' else 'sequence'} {where}")
        fig.add_trace(trace)
    lines = (["not run: " + "<br>".join(notes)] if notes else []) + \
        (["spread over the repeats larger than the effect (hollow; repeat more before trusting it): "
          + "; ".join(noisy)] if noisy else [])
    if lines:
        fig.add_annotation(text="<br>".join(lines), xref="paper", yref="paper", x=0, y=-0.16,
                           xanchor="left", yanchor="top", align="left", showarrow=False,
                           font={"size": 11, "color": "#666"})
        fig.update_layout(margin={"b": 90 + 16 * (len(notes) + len(noisy))})


def _title(main: str, first: pd.Series, hardware: str) -> str:
    return f"{main}<br><sup>{first['model_display']}, {first['dtype']}, {hardware}</sup>"


def _unpadded_sweeps(points: Iterable[Result | dict[str, Any]]) -> Iterator[tuple[str, str, str, str, pd.DataFrame]]:
    """Each sweep's points (one model, hardware, mode and quantization) but generate-padded ones,
    which have their own charts: (model id, hardware, mode, quantization, points)."""
    for keys, sweep in points_frame(points).groupby(_GROUP, sort=False, dropna=False):
        _, model_id, hardware, mode, quant = keys
        if mode != PADDED:
            yield model_id, hardware, mode, quant, sweep


def speedup_charts(points: Iterable[Result | dict[str, Any]]) -> list[Chart]:
    """Speedup over eager against batch size, for each sequence length and padding; where a
    sweep has a single batch size, against sequence length instead, for each padding."""
    charts = []
    for model_id, hardware, mode, quant, sweep in _unpadded_sweeps(points):
        by_batch = sweep["batch_size"].nunique() > 1 or sweep["seq_len"].nunique() == 1
        x, fixed = ("batch_size", "seq_len") if by_batch else ("seq_len", "batch_size")
        what = "one forward pass" if mode == "sweep-forward" else "generate()"
        quant_text = "" if quant == "none" else f", weights {quant}"
        for (value, padding), data in sweep.groupby([fixed, "padding"], sort=True):
            first = data.iloc[0]
            where = f"sequence {value}" if by_batch else f"batch {value}"
            main = f"Speedup over eager, {what}: {where}, {_padding_text(padding)}{quant_text}"
            fig = go.Figure()
            label = "batch" if by_batch else "sequence"
            _lines(fig, data, x, "speedup",
                   label + " %{x}: %{y:.2f}x<br>latency %{customdata[0]:.1f} ms<extra>%{fullData.name}</extra>")
            fig.update_layout(title=_title(main, first, hardware),
                              xaxis_title="batch size" if by_batch else "sequence length (tokens)",
                              yaxis_title="speedup over eager (x)", legend_title="implementation",
                              template="plotly_white")
            fig.update_xaxes(type="category", categoryorder="array", categoryarray=sorted(data[x].unique()))
            fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
            tag = f"seq{value}" if by_batch else f"batch{value}"
            key = f"speedup-{_slug(model_id.split(':')[-1])}-{mode}-{_slug(quant)}-{tag}-pad{padding:g}"
            charts.append(Chart(key, f"{main}: {first['model_display']} ({hardware})", fig,
                                data.reset_index(drop=True), x))
    return charts


def memory_charts(points: Iterable[Result | dict[str, Any]]) -> list[Chart]:
    """Peak memory against sequence length, for each batch size and padding that has two or
    more sequence lengths."""
    charts = []
    for model_id, hardware, mode, quant, sweep in _unpadded_sweeps(points):
        quant_text = "" if quant == "none" else f", weights {quant}"
        for (batch, padding), data in sweep.groupby(["batch_size", "padding"], sort=True):
            if data["seq_len"].nunique() < 2:
                continue
            first = data.iloc[0]
            main = f"Peak memory: batch {batch}, {_padding_text(padding)}{quant_text}"
            fig = go.Figure()
            _lines(fig, data, "seq_len", "peak_memory_mb",
                   "sequence %{x}: %{y:.0f} MB<br>latency %{customdata[0]:.1f} ms<extra>%{fullData.name}</extra>")
            weights = data["weights_mb"].dropna()
            if len(weights):
                fig.add_hline(y=float(weights.median()), line_dash="dot", line_color="grey",
                              annotation_text=f"weights {weights.median():.0f} MB",
                              annotation_position="bottom right")
            fig.update_layout(title=_title(main, first, hardware), xaxis_title="sequence length (tokens)",
                              yaxis_title="peak memory (MB)", legend_title="implementation",
                              template="plotly_white")
            fig.update_xaxes(type="log", tickvals=sorted(data["seq_len"].unique()))
            key = f"memory-{_slug(model_id.split(':')[-1])}-{mode}-{_slug(quant)}-batch{batch}-pad{padding:g}"
            charts.append(Chart(key, f"{main}: {first['model_display']} ({hardware})", fig,
                                data.reset_index(drop=True), "seq_len"))
    return charts


# generate-padded charts: (key part, data column, title, axis title, hover)
_PADDED_METRICS = (
    ("decode", "decode_tokens_per_s", "Decode tokens/s", "decode tokens/s (whole batch)",
     "batch %{x}: %{y:.0f} tok/s<br>peak %{customdata[1]:.0f} MB<extra>%{fullData.name}</extra>"),
    ("ttft", "ttft_ms", "Time to first token", "TTFT (ms)",
     "batch %{x}: %{y:.1f} ms<extra>%{fullData.name}</extra>"),
    ("memory", "peak_memory_mb", "Peak memory", "peak memory (MB)",
     "batch %{x}: %{y:.0f} MB<extra>%{fullData.name}</extra>"),
)


def padded_charts(points: Iterable[Result | dict[str, Any]]) -> list[Chart]:
    """generate-padded sweeps: decode tokens/s, TTFT and peak memory against batch size."""
    points = list(points)
    frame = points_frame(points)
    charts = []
    for keys, data in frame[frame["mode"] == PADDED].groupby(_GROUP, sort=False, dropna=False):
        _, model_id, hardware, _, quant = keys
        first = data.iloc[0]
        quant_text = "" if quant == "none" else f", weights {quant}"
        lengths = _length_text(points, first["run_id"])
        for tag, column, what, axis, hover in _PADDED_METRICS:
            main = f"{what}, generation on a padded batch ({lengths}){quant_text}"
            fig = go.Figure()
            _lines(fig, data, "batch_size", column, hover)
            fig.update_layout(title=_title(main, first, hardware), xaxis_title="batch size", yaxis_title=axis,
                              legend_title="implementation", template="plotly_white")
            fig.update_xaxes(type="category", categoryorder="array", categoryarray=sorted(data["batch_size"].unique()))
            if tag == "memory":
                weights = data["weights_mb"].dropna()
                if len(weights):
                    fig.add_hline(y=float(weights.median()), line_dash="dot", line_color="grey",
                                  annotation_text=f"weights {weights.median():.0f} MB",
                                  annotation_position="bottom right")
            key = f"padded-{tag}-{_slug(model_id.split(':')[-1])}-{_slug(quant)}"
            charts.append(Chart(key, f"{main}: {first['model_display']} ({hardware})", fig,
                                data.reset_index(drop=True), "batch_size"))
    return charts


def _length_text(points: list, run_id: Any) -> str:
    """'prompts 64..1024 tokens, 128 new' from the settings of a sweep's points."""
    for p in points:
        d = p.to_dict() if isinstance(p, Result) else p
        if d.get("run_id") == run_id and d.get("mode") == PADDED:
            settings = d.get("settings") or {}
            return f"prompts {settings.get('prompt_lens', '?')} tokens, {d.get('new_tokens')} new"
    return "mixed prompts"


def all_charts(points: Iterable[Result | dict[str, Any]]) -> list[Chart]:
    """Every speedup chart, then every memory chart, then the generate-padded ones; keys and
    titles made unique across sweeps."""
    points = list(points)
    charts = speedup_charts(points) + memory_charts(points) + padded_charts(points)
    seen: dict[str, int] = {}
    for chart in charts:
        seen[chart.key] = seen.get(chart.key, 0) + 1
        if seen[chart.key] > 1:
            chart.key += f"-{seen[chart.key]}"
            chart.title += f" (sweep {chart.data['run_id'].iloc[0]})"
    return charts


def noisy_points(charts: list[Chart]) -> int:
    """How many points of these charts have a speedup whose spread is larger than its effect."""
    seen = set()
    for chart in charts:
        rows = chart.data[chart.data["noisy"].astype(bool)] if "noisy" in chart.data else chart.data.iloc[:0]
        seen.update(map(tuple, rows[["run_id", "config", "quant", "seq_len", "padding", "batch_size"]].astype(str)
                        .to_numpy()))
    return len(seen)
