"""The leaderboard: every stored result as a frame, filtered, with each run's speedup over
its own baseline (same run, same prompt, same settings) and a CSV export."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from arena.core.results import RESULT_FIELDS, TABLE_COLUMNS, flat_row
from arena.data.store import Store
from arena.measure.quality import decode_speedup

FILTERS = ("mode", "model_display", "hardware", "family", "dtype")
FILTER_LABELS = ("kind (arena run or sweep point)", "model", "hardware", "family", "dtype")
# Context columns first, then the measured columns of the results table.
CONTEXT_COLUMNS = ("created_at", "mode", "model_display", "hardware", "family", "batch_size",
                   "prompt_tokens", "new_tokens", "padding", "latency_ms", "speedup")
DETAIL_COLUMNS = ("run_id", "memory_method", "repeats")


def columns_frame(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Result dicts as a table of (field, heading) columns: the CLI's tables, on the page."""
    keys = [k for k, _ in columns]
    frame = pd.DataFrame([{k: r.get(k) for k in keys} for r in rows], columns=keys)
    return frame.rename(columns=dict(columns)).round(3)


def load_frame(store: Store) -> pd.DataFrame:
    rows = [flat_row(r) for r in store.results()]
    frame = pd.DataFrame(rows, columns=list(RESULT_FIELDS))
    return add_speedup(frame)


def add_speedup(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows stored before runs recorded `speedup` get it here: decode tokens/s over that of
    the run's baseline configuration (same run, prompt and settings)."""
    frame = frame.copy()
    if not len(frame):
        return frame
    base = frame[(frame["config"] == frame["baseline"]) & (frame["status"] == "ok")]
    base_speed = base.groupby("run_id")["decode_tokens_per_s"].first()
    derived = pd.Series([decode_speedup(own, base) for own, base in
                         zip(frame["decode_tokens_per_s"], frame["run_id"].map(base_speed))], index=frame.index)
    missing = frame["speedup"].isna() & (frame["mode"].fillna("arena") == "arena")
    frame.loc[missing, "speedup"] = derived[missing]
    return frame


def choices(frame: pd.DataFrame) -> dict[str, list[str]]:
    return {key: sorted(str(v) for v in frame[key].dropna().unique() if str(v)) for key in FILTERS}


def apply_filters(frame: pd.DataFrame, selected: dict[str, Sequence[str] | None],
                  include_failed: bool = False) -> pd.DataFrame:
    out = frame
    for key, values in selected.items():
        if values:
            out = out[out[key].astype(str).isin(list(values))]
    if not include_failed:
        out = out[out["status"] == "ok"]
    return out


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns shown, with readable headings, newest first."""
    columns = list(CONTEXT_COLUMNS) + [k for k, _ in TABLE_COLUMNS] + list(DETAIL_COLUMNS)
    seen: list[str] = []
    for c in columns:
        if c in frame.columns and c not in seen:
            seen.append(c)
    headings = dict(TABLE_COLUMNS) | {"model_display": "model", "created_at": "time", "batch_size": "batch",
                                      "prompt_tokens": "prompt tok", "new_tokens": "new tok",
                                      "speedup": "speedup (run: decode tok/s ÷ baseline's; sweep: eager latency ÷ this)", "memory_method": "memory method"}
    shown = frame.sort_values("created_at", ascending=False)[seen].rename(columns=headings)
    return shown.round(3)


def to_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Every column of the filtered rows (JSON fields serialized), for download."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def public_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows for the API: every field, NaN as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def quality_frame(store: Store, frame: pd.DataFrame, rounds: int = 200) -> pd.DataFrame:
    """Blind-vote ratings per (model, configuration) beside that configuration's median decode
    tokens/s and peak memory over the model's stored arena runs."""
    from arena.data.ratings import by_group

    cols = ["model_id", "config", "rating", "rating_low", "rating_high", "votes",
            "decode_tokens_per_s", "peak_memory_mb"]
    ratings = pd.DataFrame(by_group(store.votes(), rounds=rounds))
    if not len(ratings):
        return pd.DataFrame(columns=cols)
    runs = frame[(frame["status"] == "ok") & (frame["mode"].fillna("arena") == "arena")]
    speed = runs.groupby(["model_id", "config"], as_index=False)[["decode_tokens_per_s", "peak_memory_mb"]].median()
    return ratings.merge(speed, on=["model_id", "config"], how="left")[cols].round(2)
