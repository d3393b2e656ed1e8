"""The leaderboard: stored results read a page at a time from SQLite (filters and order in
SQL), each run's speedup over its own baseline, charts over a bounded sample, and a CSV export.

Nothing here reads the whole store: a page is `PAGE_SIZE` rows, the charts use the newest
`SAMPLE_ROWS` matching rows (a bounded sample, not an aggregate over every row), the CSV (made
when asked for) the newest `CSV_ROWS`, and the quality table the newest `QUALITY_ROWS` runs of
each rated (model, configuration).

The page shows its tables as plain HTML (`html_table`), sorted on the page by a click on a
heading: Gradio's Dataframe spends seconds of script on every update of a wide table in this
page (measured in Chromium: 5-10 s per filter change with ten rows), plain HTML a few ms."""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from arena.core.results import PRIVATE_FIELDS, from_flat_row, headings, result_fields, table_columns
from arena.data.store import Store
from arena.measure.quality import decode_speedup
from arena.ui.web.panels import agreement_text, limit_text, stable_text

FILTERS = ("mode", "model_display", "hardware", "family", "dtype")
FILTER_LABELS = ("kind (arena run or sweep point)", "model", "hardware", "family", "dtype")
MODES = ("arena", "sweep-forward", "sweep-generate")  # the kind filter's choices, even on an empty store
PAGE_SIZE = 100
SAMPLE_ROWS = 2000
CSV_ROWS = 10_000
QUALITY_ROWS = 1000
# What a visitor compares first, then where and how it ran, then the rest.
LEAD_COLUMNS = ("model_display", "config", "decode_tokens_per_s", "ttft_ms", "peak_memory_mb",
                "percent_of_bandwidth_limit", "token_agreement", "unstable")
CONTEXT_COLUMNS = ("created_at", "hardware", "batch_size", "mode", "family", "dtype", "prompt_tokens",
                   "new_tokens", "padding", "latency_ms", "speedup")
DETAIL_COLUMNS = ("run_id", "memory_method", "repeats")


def page_headings() -> dict[str, str]:
    """The schema's headings, with the page's own word for the verdict: stable (yes/unstable)."""
    return headings() | {"unstable": "stable"}


# The charts' columns (a bounded sample never carries text).
SAMPLE_COLUMNS = ("run_id", "config", "baseline", "status", "mode", "model_id", "model_display", "hardware",
                  "dtype", "batch_size", "ttft_ms", "decode_tokens_per_s", "peak_memory_mb", "speedup", "unstable")


def shown_columns() -> list[str]:
    out: list[str] = []
    for c in (*LEAD_COLUMNS, *CONTEXT_COLUMNS, *(k for k, _ in table_columns()), *DETAIL_COLUMNS):
        if c not in out:
            out.append(c)
    return out


def columns_frame(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Result dicts as a table of (field, heading) columns: the CLI's tables, on the page.
    With no rows it is an empty table with the real headings."""
    keys = [k for k, _ in columns]
    frame = pd.DataFrame([{k: r.get(k) for k in keys} for r in rows], columns=keys)
    return round_sig(frame.rename(columns=dict(columns)))


def round_sig(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Numbers to `digits` significant figures: what a measurement here can support."""
    def sig(v: Any) -> Any:
        if isinstance(v, float) and v == v and v not in (0.0, float("inf"), float("-inf")):
            return float(f"{v:.{digits}g}")
        return v

    out = frame.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].map(sig)
    return out


def empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=[page_headings().get(c, c) for c in shown_columns()])


def rows_frame(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns or result_fields()))


def add_speedup(frame: pd.DataFrame, store: Store | None = None) -> pd.DataFrame:
    """Rows stored before runs recorded `speedup` get it here: decode tokens/s over that of
    the run's baseline configuration (same run, prompt and settings), looked up in the store
    for just these rows' runs."""
    frame = frame.copy()
    if not len(frame):
        return frame
    missing = frame["speedup"].isna() & (frame["mode"].fillna("arena") == "arena")
    if not missing.any():
        return frame
    runs = sorted(set(frame.loc[missing, "run_id"].dropna()))
    if store is not None:
        base = rows_frame(store.page({"run_id": runs}, include_failed=True, limit=len(runs) * 64,
                                     columns=("run_id", "config", "baseline", "status", "decode_tokens_per_s")),
                          ("run_id", "config", "baseline", "status", "decode_tokens_per_s"))
    else:
        base = frame
    base = base[(base["config"] == base["baseline"]) & (base["status"] == "ok")]
    base_speed = base.groupby("run_id")["decode_tokens_per_s"].first()
    derived = pd.Series([decode_speedup(own, b) for own, b in
                         zip(frame["decode_tokens_per_s"], frame["run_id"].map(base_speed))], index=frame.index)
    frame.loc[missing, "speedup"] = derived[missing]
    return frame


def selection(values: dict[str, Sequence[str] | str | None]) -> dict[str, list[str]]:
    """Filter values from the page (lists) or the API (comma-separated strings)."""
    out = {}
    for key in FILTERS:
        v = values.get(key)
        items = v.split(",") if isinstance(v, str) else list(v or [])
        out[key] = [str(i).strip() for i in items if str(i).strip()]
    return out


def choices(store: Store, selected: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Each filter's choices: the values stored, plus what is selected (a filter's value must be
    among its choices) and, for the kind filter, every kind."""
    stored = store.distinct(FILTERS)
    out = {}
    for key in FILTERS:
        extra = list(MODES) if key == "mode" else []
        out[key] = sorted(set(stored[key]) | set(extra) | set((selected or {}).get(key, [])))
    return out


def private(frame: pd.DataFrame, share_outputs: bool) -> pd.DataFrame:
    """Without prompts and generated text unless this server shares them."""
    return frame if share_outputs else frame.drop(columns=[c for c in PRIVATE_FIELDS if c in frame.columns])


def page_rows(store: Store, selected: dict[str, list[str]], include_failed: bool = False, page: int = 1,
              share_outputs: bool = False, page_size: int = PAGE_SIZE) -> pd.DataFrame:
    """One page of results, fastest decode first, every field (private ones removed)."""
    rows = store.page(selected, include_failed, "speed", page_size, (max(1, int(page)) - 1) * page_size)
    frame = rows_frame([from_flat_row(r).to_dict() for r in rows])
    return private(add_speedup(frame, store), share_outputs)


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns shown, with readable headings, in the order the page gives them."""
    if not len(frame):
        return empty_table()
    frame = frame.copy()
    # As the cards and the run's table write them: a flagged limit, the verdict and warm as words.
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    for key, text in (("percent_of_bandwidth_limit", limit_text), ("unstable", stable_text),
                      ("warm", lambda r: "warm" if r.get("warm") else "")):
        if key in frame.columns:
            frame[key] = [text(r) for r in rows]
    names = page_headings()
    out = round_sig(frame[[c for c in shown_columns() if c in frame.columns]].rename(columns=names))
    agree = names["token_agreement"]
    if agree in out.columns:  # as the cards and the run's table write it: 100%, not 1
        out[agree] = out[agree].map(lambda v: agreement_text(None if v is None or v != v else v))
    return out


def sample(store: Store, selected: dict[str, list[str]], include_failed: bool = False) -> pd.DataFrame:
    """The newest SAMPLE_ROWS matching rows, the charts' columns only."""
    rows = store.page(selected, include_failed, "newest", SAMPLE_ROWS, 0, SAMPLE_COLUMNS)
    return add_speedup(rows_frame(rows, SAMPLE_COLUMNS), store)


def csv_frame(store: Store, values: dict[str, Sequence[str] | str | None], include_failed: bool,
              share_outputs: bool) -> pd.DataFrame:
    """The newest CSV_ROWS matching rows, every column (JSON fields serialized)."""
    rows = store.page(selection(values), include_failed, "newest", CSV_ROWS, 0)
    return private(add_speedup(rows_frame(rows), store), share_outputs)


def to_csv(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def public_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows for the API: every field, NaN as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


QUALITY_COLUMNS = ("model_id", "model_display", "config", "rating", "rating_low", "rating_high", "votes",
                   "decode_tokens_per_s", "peak_memory_mb", "note")
# Below this many votes for a configuration its bootstrap interval says nothing (one vote
# resampled is that vote again: an interval of zero width), so none is given.
MIN_VOTES = 10
QUALITY_HEADINGS = {"model_display": "model", "config": "configuration", "rating": "rating",
                    "interval": "95% interval", "votes": "votes", "decode_tokens_per_s": "median decode tok/s",
                    "peak_memory_mb": "median peak MB"}


def empty_quality() -> pd.DataFrame:
    return pd.DataFrame(columns=list(QUALITY_COLUMNS))


def _interval(row: pd.Series) -> str:
    if pd.isna(row["rating_low"]) or pd.isna(row["rating_high"]):
        return f"too few votes ({int(row['votes'])} of {MIN_VOTES})"
    return f"{row['rating_low']:,.0f}–{row['rating_high']:,.0f}"


def quality_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The quality frame for the page: the model's display name, the interval as one column
    ("too few votes" below MIN_VOTES), readable headings (the API keeps the field names)."""
    if not len(frame):
        return pd.DataFrame(columns=list(QUALITY_HEADINGS.values()))
    out = frame.assign(interval=frame.apply(_interval, axis=1), rating=frame["rating"].round(0))
    return out[list(QUALITY_HEADINGS)].rename(columns=QUALITY_HEADINGS)


_RATINGS: dict[tuple, list[dict[str, Any]]] = {}  # (store, votes seen, last vote id, rounds) -> by_group
_RATINGS_LOCK = threading.Lock()


def _ratings(store: Store, rounds: int) -> list[dict[str, Any]]:
    """Ratings with bootstrap intervals, recomputed only when a vote was added: the bootstrap
    is the slow part of the tab, and filters do not change it."""
    from arena.data.ratings import by_group

    votes = store.votes()
    key = (str(store.path), len(votes), votes[-1]["id"] if votes else 0, rounds)
    with _RATINGS_LOCK:
        if key in _RATINGS:
            return [dict(r) for r in _RATINGS[key]]
    ratings = by_group(votes, rounds=rounds)
    with _RATINGS_LOCK:
        for old in [k for k in _RATINGS if k[0] == key[0]]:
            del _RATINGS[old]
        _RATINGS[key] = ratings
    return [dict(r) for r in ratings]


def quality_frame(store: Store, rounds: int = 200) -> pd.DataFrame:
    """Blind-vote ratings per (model, configuration) beside that configuration's median decode
    tokens/s and peak memory over its newest QUALITY_ROWS stored arena runs, and the model's
    display name as the other tables give it. Below MIN_VOTES votes a configuration has no
    interval (rating_low and rating_high empty, note says why)."""
    cols = list(QUALITY_COLUMNS)
    ratings = _ratings(store, rounds)
    if not ratings:
        return empty_quality()
    names: dict[str, str] = {}
    for r in ratings:
        rows = rows_frame(store.page({"model_id": [r["model_id"]], "config": [r["config"]], "mode": ["arena"]},
                                     False, "newest", QUALITY_ROWS, 0, ("decode_tokens_per_s", "peak_memory_mb")),
                          ("decode_tokens_per_s", "peak_memory_mb"))
        r["decode_tokens_per_s"] = rows["decode_tokens_per_s"].median() if len(rows) else None
        r["peak_memory_mb"] = rows["peak_memory_mb"].median() if len(rows) else None
        if r["model_id"] not in names:
            named = store.page({"model_id": [r["model_id"]]}, True, "newest", 1, 0, ("model_display",))
            names[r["model_id"]] = (named[0]["model_display"] if named else None) or r["model_id"]
        r["model_display"] = names[r["model_id"]]
        r["note"] = "" if r["votes"] >= MIN_VOTES else f"too few votes for an interval (fewer than {MIN_VOTES})"
        if r["votes"] < MIN_VOTES:
            r["rating_low"] = r["rating_high"] = None
    frame = pd.DataFrame(ratings)[cols].astype({"decode_tokens_per_s": float, "peak_memory_mb": float,
                                                "rating_low": float, "rating_high": float})
    return round_sig(frame)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.{max(0, 2 - int(np.floor(np.log10(abs(value)))))}f}"
    return html.escape(str(value))


def html_table(frame: pd.DataFrame, empty: str = "No stored results match yet.", sorted_by: str = "") -> str:
    """A table as plain HTML (headings from the frame's columns; numbers right-aligned, three
    significant figures), sortable on the page by a click on a heading (SORT_JS); `sorted_by`
    names the column the rows come sorted by, largest first."""
    head = "".join(f'<th data-sort="desc">{html.escape(str(c))}</th>' if c == sorted_by
                   else f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    if not len(frame):
        return (f'<div class="lb-scroll"><table class="lb-html"><thead><tr>{head}</tr></thead>'
                f'<tbody></tbody></table><div class="lb-empty">{html.escape(empty)}</div></div>')
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    verdict = page_headings()["unstable"]
    unstable = list(frame[verdict] == "unstable") if verdict in frame.columns else [False] * len(frame)
    body = "".join(
        ('<tr class="lb-unstable" title="unstable: left out of the speedup medians">' if grey else "<tr>")
        + "".join(f'<td class="num">{_cell(v)}</td>' if num else f"<td>{_cell(v)}</td>"
                         for v, num in zip(row, numeric)) + "</tr>"
        for row, grey in zip(frame.itertuples(index=False, name=None), unstable))
    return (f'<div class="lb-scroll"><table class="lb-html"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def results_html(frame: pd.DataFrame) -> str:
    """The page's results table (`table`), marked as sorted by decode speed, as the query is."""
    return html_table(frame, sorted_by=headings()["decode_tokens_per_s"])


# gr.HTML(js_on_load=SORT_JS): a click on a heading sorts this page's rows by it (again: the
# other way). Delegated from the component's element, so it survives each new table.
SORT_JS = """
element.addEventListener('click', (event) => {
  const th = event.target.closest('th');
  const table = th && th.closest('table');
  if (!table || !element.contains(table)) return;
  const col = Array.from(th.parentNode.children).indexOf(th);
  const down = th.dataset.sort !== 'desc';
  table.querySelectorAll('th').forEach((h) => delete h.dataset.sort);
  th.dataset.sort = down ? 'desc' : 'asc';
  const key = (row) => {
    const text = row.children[col].textContent.trim();
    const num = parseFloat(text.replace(/,/g, ''));
    return text === '–' ? null : (isNaN(num) || !/^[-+]?[\d,.]+/.test(text) ? text : num);
  };
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === null || y === null) return (x === null) - (y === null);
    const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return down ? -c : c;
  });
  rows.forEach((r) => body.appendChild(r));
});
"""
TABLE_CSS = """
.lb-scroll {overflow-x:auto; max-height:640px; overflow-y:auto; border:1px solid var(--border-color-primary);
  border-radius:6px;}
.lb-html {border-collapse:collapse; width:100%; font-size:13px;}
.lb-html th {position:sticky; top:0; background:var(--block-background-fill); cursor:pointer; text-align:left;
  padding:6px 8px; border-bottom:1px solid var(--border-color-primary); white-space:nowrap;}
.lb-html th[data-sort=desc]::after {content:" ▼"; font-size:10px;}
.lb-html th[data-sort=asc]::after {content:" ▲"; font-size:10px;}
.lb-html td {padding:4px 8px; border-bottom:1px solid var(--border-color-primary); white-space:nowrap;}
.lb-html td.num {text-align:right; font-variant-numeric:tabular-nums;}
.lb-empty {padding:8px; opacity:.7;}
.lb-html tr.lb-unstable td {opacity:.5;}
"""


@dataclass
class View:
    """Everything the Leaderboard tab shows for one choice of filters and page."""
    choices: dict[str, list[str]]
    table: pd.DataFrame
    total: int
    page: int
    pages: int
    sample: pd.DataFrame
    quality: pd.DataFrame

    def caption(self) -> str:
        if not self.total:
            return "No stored results match yet."
        first = (self.page - 1) * PAGE_SIZE + 1
        last = min(self.total, self.page * PAGE_SIZE)
        return (f"Results {first:,}–{last:,} of {self.total:,}, fastest decode first (page {self.page} of "
                f"{self.pages}). Charts: the newest {min(self.total, SAMPLE_ROWS):,} matching results; CSV: the "
                f"newest {min(self.total, CSV_ROWS):,}.")


def view(store: Store, values: dict[str, Sequence[str] | str | None], include_failed: bool = False,
         page: int = 1, share_outputs: bool = False, rounds: int = 200) -> View:
    """The Leaderboard tab's contents: the functions the tab calls, in one place (the 1,000,000-row
    benchmark times this)."""
    selected = selection(values)
    total = store.count(selected, include_failed)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, int(page or 1)), pages)
    frame = page_rows(store, selected, include_failed, page, share_outputs)
    return View(choices(store, selected), table(frame), total, page, pages, sample(store, selected, include_failed),
                quality_frame(store, rounds))
