"""A sweep's docs folder from its points (Result dicts of `python -m arena sweep --json` or the
store): a README of markdown tables, each chart's data as CSV and its picture as PNG.

PNG export uses Plotly's static export (kaleido, which drives a Chromium: Debian's `chromium`
package or any Chrome it finds); png=False writes the tables and CSV only."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from arena.sweep.charts import PADDED, Chart, all_charts, points_frame


def _cell_speedup(row: pd.Series) -> str:
    if row["status"] != "ok":
        return _short(row["reason"])
    speed = f"{row['speedup']:.2f}x" if pd.notna(row["speedup"]) else "-"
    return f"{speed} ({row['latency_ms']:.1f} ms, {row['peak_memory_mb'] / 1024:.1f} GB)"


def _cell_memory(row: pd.Series) -> str:
    if row["status"] != "ok":
        return _short(row["reason"])
    act = f", +{row['activation_mb']:.0f}" if pd.notna(row["activation_mb"]) else ""
    return f"{row['peak_memory_mb']:.0f}{act}"


def _cell_padded(row: pd.Series) -> str:
    if row["status"] != "ok":
        return _short(row["reason"])
    return (f"{row['decode_tokens_per_s']:.0f} tok/s (TTFT {row['ttft_ms']:.1f} ms, "
            f"{row['peak_memory_mb'] / 1024:.1f} GB)")


def _row_lengths(points: list[dict], run_id: str) -> str:
    """'batch 4: 1024, 913, 120, 597' for each batch of a generate-padded sweep (its first implementation)."""
    seen: dict[int, list[int]] = {}
    for p in points:
        if p.get("run_id") == run_id and p.get("mode") == PADDED:
            seen.setdefault(p["batch_size"], (p.get("settings") or {}).get("row_lengths") or [])
    return "; ".join(f"batch {b}: {', '.join(map(str, rows))}" for b, rows in sorted(seen.items()))


def _short(reason: object) -> str:
    text = str(reason or "not run").replace("|", "/")
    return text if len(text) <= 60 else text[:57] + "..."


def _table(data: pd.DataFrame, column: str, cell) -> str:
    """Markdown: one row per implementation, one column per value of `column`."""
    values = sorted(data[column].unique())
    lines = ["| implementation | " + " | ".join(f"{column.replace('_', ' ')} {v}" for v in values) + " |",
             "|---|" + "---|" * len(values)]
    for config in dict.fromkeys(data["config"]):
        rows = data[data["config"] == config].set_index(column)
        cells = [cell(rows.loc[v]) if v in rows.index else "-" for v in values]
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _activation_ratios(data: pd.DataFrame) -> str:
    """Eager's activation memory (peak - weights) over each implementation's, per length."""
    ok = data[(data["status"] == "ok") & data["activation_mb"].notna()]
    eager = ok[ok["config"] == "eager"].set_index("seq_len")["activation_mb"]
    lines = []
    for config in dict.fromkeys(ok["config"]):
        if config == "eager":
            continue
        mine = ok[ok["config"] == config].set_index("seq_len")["activation_mb"]
        pairs = [f"{s}: {eager[s] / mine[s]:.1f}x" for s in mine.index if s in eager.index and mine[s] > 0]
        if pairs:
            lines.append(f"- {config}: " + ", ".join(pairs))
    return "\n".join(lines)


def _header(points: list[dict]) -> str:
    env = points[0].get("env") or {}
    pk = env.get("packages") or {}
    facts = [f"hardware: {points[0].get('hardware', '?')}"]
    for key in ("driver", "cuda"):
        if env.get(key):
            facts.append(f"{key} {env[key]}")
    facts += [f"{name} {pk[name]}" for name in ("torch", "transformers", "flash-attn") if pk.get(name)]
    if "flash-attn" not in pk or not pk.get("flash-attn"):
        facts.append("flash-attn not installed")
    def values(get) -> str:
        return " or ".join(str(v) for v in sorted({get(p) for p in points}, key=str))

    return ("; ".join(facts) + f". dtype {values(lambda p: p.get('dtype'))}; "
            f"{values(lambda p: (p.get('settings') or {}).get('repeats'))} timed passes per point (median) after "
            f"{values(lambda p: (p.get('settings') or {}).get('warmup'))} warm-up.")


def write_report(points: list[dict], docs: Path, png: bool = True) -> list[Path]:
    docs.mkdir(parents=True, exist_ok=True)
    written = []
    charts: list[Chart] = all_charts(points)
    frame = points_frame(points)
    (docs / "points.csv").write_text(frame.to_csv(index=False), encoding="utf-8")
    written.append(docs / "points.csv")
    if all(p.get("mode") == PADDED for p in points):
        md = ["# Generation on a padded batch", "", _header(points), "",
              "Each row's prompt length is drawn from the sweep's LO..HI range (seeded; the first row is the "
              "longest), the rows are left padded with the attention mask set, and every row generates the "
              "same number of new tokens (greedy, end of sequence disabled). Decode tokens/s = batch x "
              "(new - 1) / time after the first token; TTFT = time to the batch's first token; both the "
              "median of the timed generations (see arena/sweep/plan.py). Each chart's data is in the CSV "
              "of the same name; all points in points.csv.", ""]
    else:
        md = ["# Attention sweep", "", _header(points), "",
              "Speedup = eager's latency / this latency at the same batch, length and padding. "
              "Cells: speedup (median latency, peak memory). Padding: left padding with the attention "
              "mask set, rows after the first carry it (see arena/sweep/plan.py). Each chart's data is in "
              "the CSV of the same name; all points in points.csv.", ""]
    for chart in charts:
        (docs / f"{chart.key}.csv").write_text(chart.csv(), encoding="utf-8")
        written.append(docs / f"{chart.key}.csv")
        md += [f"## {chart.title}", ""]
        if png:
            # kaleido's browser driver logs (and ignores) stray non-JSON lines from Chromium
            logging.getLogger("choreographer").setLevel(logging.CRITICAL)
            path = docs / f"{chart.key}.png"
            chart.figure.write_image(str(path), width=1000, height=560, scale=1)
            written.append(path)
            md += [f"![{chart.key}]({chart.key}.png)", ""]
        if chart.key.startswith("speedup-"):
            md += [_table(chart.data, chart.x, _cell_speedup), ""]
        elif chart.key.startswith("padded-decode-"):
            md += ["Cells: decode tokens/s of the whole batch (median TTFT, peak memory). Prompt lengths of "
                   "the rows: " + _row_lengths(points, chart.data["run_id"].iloc[0]) + ".", "",
                   _table(chart.data, "batch_size", _cell_padded), ""]
        elif chart.key.startswith("padded-"):
            md += ["Values: the table under the decode chart.", ""]
        else:
            weights = chart.data["weights_mb"].dropna()
            w = f" (weights {weights.median():.0f} MB)" if len(weights) else ""
            above = ", + the part above the weights" if chart.data["activation_mb"].notna().any() else ""
            md += [f"Peak memory MB{above}{w}:", "",
                   _table(chart.data, "seq_len", _cell_memory), ""]
            ratios = _activation_ratios(chart.data)
            if ratios:
                md += ["Eager's memory above the weights divided by each implementation's:", "", ratios, ""]
        md += [f"Data: [{chart.key}.csv]({chart.key}.csv)", ""]
    lost = frame[frame["status"] != "ok"]
    if len(lost):
        md += ["## Points that did not run", "", "| model | implementation | points | reason |", "|---|---|---|---|"]
        for (model, config, reason), rows in lost.groupby(["model_id", "config", "reason"], sort=False):
            md.append(f"| {model} | {config} | {len(rows)} | {_short(reason)} |")
        md.append("")
    (docs / "README.md").write_text("\n".join(md), encoding="utf-8")
    written.append(docs / "README.md")
    return written
