"""Live state of one run, a panel per configuration, and its HTML (side-by-side cards).

The state is built from the runner's events only, so the page, the API and the tests all
see the same thing."""

from __future__ import annotations

import html
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from arena.core.ending import Code
from arena.core.results import table_columns
from arena.techniques import registry
from arena.models.placement import describe

# Share of the progress bar reached when a stage starts; "running" fills the rest by repeat.
_STAGE_PROGRESS = {"queued": 0.0, "starting": 0.05, "exporting": 0.07, "loading": 0.1, "warming up": 0.4,
                   "scoring": 0.97}
_FINAL = {"done", "unavailable", "failed", "cancelled"}


@dataclass
class Panel:
    config: str
    label: str
    # queued | starting | loading | warming up | running | done | unavailable | failed | cancelled
    status: str = "queued"
    repeat: int = 0
    repeats: int = 0
    text: str = ""
    reason: str = ""
    since: float = field(default_factory=time.monotonic)
    metrics: dict[str, Any] = field(default_factory=dict)
    placement: str = ""  # a split's or GPU choice's devices: layers, weights and peak per device
    reached: float = 0.0  # the progress made before a failure or a cancel: the bar stops there
    # when the worker sent the event that set the card's stage or result, and when the server got
    # it (time.time(), one machine): how late the page shows it is what the page adds
    sent_at: float = 0.0
    server_at: float = 0.0

    @property
    def progress(self) -> float:
        if self.status == "done":
            return 1.0
        if self.status in _FINAL:
            return self.reached
        if self.status == "running" and self.repeats:
            return 0.4 + 0.6 * (self.repeat - 1) / self.repeats
        return _STAGE_PROGRESS.get(self.status, 0.0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("since")
        data["progress"] = round(self.progress, 3)
        return data


def shown_status(result: dict[str, Any]) -> str:
    """A result's status as the card and the table both show it: "done" for a measured one, and
    "cancelled" for one a cancel stopped (stored as failed, with the reason)."""
    if result.get("status") == "ok":
        return "done"
    if result.get("ending") == Code.CANCELLED:
        return "cancelled"
    return str(result.get("status") or "")


def agreement_text(value: Any) -> str:
    """Token agreement as the card and the table both show it."""
    return "–" if value is None else f"{value:.0%}"


class RunState:
    """Applies runner events; `results` holds each finished configuration's result dict.
    `note` is a stage of the run itself (the embedded model's one-time conversion); `expected`
    maps (configuration, stage) to seconds a stage is expected to take, with where that comes
    from; `new_tokens` and `batch` say what a warm-up generates."""

    def __init__(self, config_names: list[str], new_tokens: int = 0, batch: int = 1) -> None:
        self.panels = {n: Panel(n, registry.get(n).label) for n in config_names}
        self.results: list[dict[str, Any]] = []
        self.run_id = ""
        self.baseline = ""
        self.finished = False
        self.error = ""
        self.note = ""
        self.new_tokens, self.batch = new_tokens, batch
        self.expected: dict[tuple[str, str], tuple[float, str]] = {}

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one event; True when a result was added (tables and charts need redrawing)."""
        kind = event.get("type")
        if kind == "run":
            self.run_id, self.baseline = event["run_id"], event["baseline"]
            self.panels = {n: self.panels[n] for n in event["order"]}  # display in run order
            return False
        panel = self.panels.get(event.get("config", ""))
        if panel and kind in ("status", "result"):
            panel.sent_at, panel.server_at = event.get("sent_at") or 0.0, event.get("server_at") or 0.0
        if kind == "status" and panel:
            if panel.status == "warming up" and event["stage"] == "running":
                # one timed repeat does the warm-up's work: its time is each repeat's estimate
                self.expected[(panel.config, "running")] = (
                    time.monotonic() - panel.since, "each repeat does the warm-up's work, which took that long")
            panel.status, panel.since = event["stage"], time.monotonic()
            panel.repeat, panel.repeats = event.get("repeat", 0), event.get("repeats", 0)
        elif kind == "token" and panel:
            panel.text += event["text"]
        elif kind == "result" and panel:
            result = event["result"]
            panel.reached = panel.progress
            panel.status = shown_status(result)
            panel.reason = result.get("reason") or ""
            panel.text = result.get("text") or panel.text
            panel.metrics = {k: result.get(k) for k in (
                "ttft_ms", "decode_tokens_per_s", "peak_memory_mb", "token_agreement", "nll", "warm", "stage_s",
                "compared_tokens", "quality_note", "tokens_after_eos", "load_s", "unstable", "over_limit",
                "trust_note", "percent_of_bandwidth_limit", *(key for key, _, _ in SPECULATIVE_METRICS))}
            panel.placement = placement_line(result)
            self.results.append(result)
            return True
        return False

    def mark_not_run(self, status: str = "cancelled") -> None:
        """Configurations never started (a cancelled run) say so instead of staying queued."""
        for panel in self.panels.values():
            if panel.status not in _FINAL:
                panel.status, panel.reason = status, "not run: the run was cancelled"

    def snapshot(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "baseline": self.baseline,
            "finished": self.finished,
            "error": self.error,
            "note": self.note,
            "panels": [p.to_dict() for p in self.panels.values()],
            "results": self.results,
        }


def fmt(value: Any) -> str:
    """Three significant figures, what one measurement here can support (3,971.4 -> 3,970)."""
    if value is None or isinstance(value, str):
        return "–" if value is None else value
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = 2 - math.floor(math.log10(abs(value)))
    return f"{round(value, decimals):,.{max(decimals, 0)}f}"


# The card's metrics: (field, what, unit); the run's table shows the same fields, formatted alike.
CARD_METRICS = (("ttft_ms", "TTFT", "ms"), ("decode_tokens_per_s", "decode", "tok/s"),
                ("peak_memory_mb", "peak", "MB"))


# Speculative rows (arena/techniques/speculative.py) add what their guesses did, where measured.
SPECULATIVE_METRICS = (("acceptance_rate", "accepted", ""), ("tokens_per_step", "", "tok/step"),
                       ("draft_load_s", "draft load", "s"), ("draft_memory_mb", "draft", "MB"))


def _metrics_html(panel: Panel) -> str:
    m = panel.metrics
    if not m:
        return ""
    shown = CARD_METRICS + tuple(row for row in SPECULATIVE_METRICS if m.get(row[0]) is not None)
    parts = [f'<span data-field="{key}">{what} <span class="v">{fmt(m.get(key))}</span> {unit}</span>'
             for key, what, unit in shown]
    if m.get("warm"):
        parts.append("warm (model reused)")
    return " · ".join(parts) + _trust_html(m)


def _trust_html(m: dict[str, Any]) -> str:
    """The row's trust flags (docs/trust.md): unstable (left out of speedups), above its limit."""
    out = ""
    if m.get("unstable"):
        why = m.get("trust_note") or "its repeats spread too far"
        out += (f'<div class="arena-flag" data-flag="unstable">⚠ unstable: {html.escape(why.split("; faster")[0])}'
                " — left out of speedups</div>")
    if m.get("over_limit"):
        out += (f'<div class="arena-flag" data-flag="over-limit">⚠ {fmt(m.get("percent_of_bandwidth_limit"))}% of its '
                "memory-bandwidth limit: faster than the limit allows, so the limit or the timing is wrong</div>")
    return out


# The run's table: the CLI's columns (arena/core/results.py), with the fields a card also shows
# written as the card writes them (status, agreement, three significant figures), and the
# weights' load time named as such (a card's "load" stage holds more).
def limit_text(result: dict[str, Any]) -> str:
    """The share of the memory-bandwidth limit reached; a row above its limit is flagged, never a
    plain "120" (docs/trust.md)."""
    value = result.get("percent_of_bandwidth_limit")
    if value is None:
        return "–"
    return f"{fmt(value)} ⚠ over its limit" if result.get("over_limit") else fmt(value)


def stable_text(result: dict[str, Any]) -> str:
    """The stability verdict as the card, the table and the leaderboard write it."""
    if result.get("status") not in ("ok", None):
        return "–"
    return "unstable" if result.get("unstable") else "yes"


_TABLE_TEXT = {"status": shown_status, "token_agreement": lambda r: agreement_text(r.get("token_agreement")),
               "warm": lambda r: "warm" if r.get("warm") else "", "percent_of_bandwidth_limit": limit_text,
               "unstable": stable_text}
_TABLE_HEADINGS = {"load_s": "weights load s", "token_agreement": "agree", "unstable": "stable"}


def run_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per finished configuration, numbers as the cards show them."""
    columns = table_columns()
    keys = [k for k, _ in columns]
    headings = [_TABLE_HEADINGS.get(k, h) for k, h in columns]
    rows = []
    for r in results:
        row = []
        for k in keys:
            if k in _TABLE_TEXT:
                row.append(_TABLE_TEXT[k](r))
            elif isinstance(r.get(k), float):
                row.append(fmt(r[k]))
            else:
                row.append("–" if r.get(k) is None else r.get(k))
        rows.append(row)
    return pd.DataFrame(rows, columns=headings)


def placement_line(result: dict[str, Any]) -> str:
    """Where a result ran, per device, when a placement was asked for or the model spans several
    devices (tensor-parallel ranks included); "" for a plain one-device run."""
    where, peaks = result.get("placement") or {}, result.get("device_peak_memory_mb") or {}
    settings = result.get("settings") or {}
    if len(set(where) | set(peaks)) < 2 and not settings.get("max_memory") and not settings.get("gpus"):
        return ""
    return describe(where, peaks)


def _stages_line(panel: Panel) -> str:
    """Wall time by stage (start, imports, load, warm-up, timed, after). The load stage holds
    more than loading the weights (imports, tokenizer, probes): the weights' own load time,
    the table's "weights load s", is named inside it."""
    stages = (panel.metrics or {}).get("stage_s") or {}
    weights = (panel.metrics or {}).get("load_s")
    parts = []
    for k, v in stages.items():
        part = f"{html.escape(k)} {v:.2f} s"
        if k == "load" and weights is not None:
            part += f' (weights <span data-field="load_s" class="v">{fmt(weights)}</span> s)'
        parts.append(part)
    return " · ".join(parts)


def stage_detail(state: RunState, panel: Panel) -> str:
    """What a long stage does, and how long it is expected to take where something measured
    says so (this server's last run of the same shape, or an earlier configuration of this run)."""
    if panel.status == "warming up":
        what = (f"one untimed generation of {state.new_tokens:,} new tokens at batch {state.batch}, the same "
                "work as one timed repeat (compiled configurations also compile here)")
    elif panel.status == "loading":
        what = "loading the weights onto the device"
    elif panel.status == "exporting":
        what = "exporting the model to ONNX (once per model and dtype, then reused)"
    elif panel.status == "running" and (panel.config, "running") in state.expected:
        what = f"timed repeat {panel.repeat} of {panel.repeats}"
        seconds, source = state.expected[(panel.config, "running")]
        return what + f"; about {fmt(seconds)} s each ({source})"
    else:
        return ""
    known = state.expected.get((panel.config, panel.status))
    if known:
        seconds, source = known
        what += f"; about {fmt(seconds)} s expected ({source})"
    return what


def _quality_html(panel: Panel, baseline: bool = False, alone: bool = False) -> str:
    """Agreement beside the compared length; greyed with its reason where it is no quality
    (random weights) or n/a (sampling); the count of tokens cut after end-of-text. A run of one
    configuration compares nothing: it says so instead of "100%"."""
    m = panel.metrics
    agree, note, n = m.get("token_agreement"), m.get("quality_note") or "", m.get("compared_tokens")
    parts = []
    if alone and baseline:
        note = ""
        parts.append("agreement: nothing to compare with (one configuration)")
    elif agree is not None:
        value = agreement_text(agree)
        parts.append(f"agreement {value} over {n} tokens" if n else f"agreement {value}")
        if baseline:
            parts.append("the baseline itself")
    elif note:
        parts.append("agreement n/a")
    text = html.escape(" · ".join(parts))
    if note:
        text = f'<span class="arena-grey" title="{html.escape(note)}">{text} ({html.escape(note)})</span>'
    after = m.get("tokens_after_eos")
    cut = (f'<div class="arena-cut">{after} token{"s" if after != 1 else ""} generated after end-of-text '
           f"(for timing; not shown or compared)</div>") if after else ""
    shown = agreement_text(agree) if agree is not None and not (alone and baseline) else ""
    return (f'<div class="arena-quality" data-agreement="{shown}">{text}</div>' if text else "") + cut


def render(state: RunState) -> str:
    """The cards, side by side; data-* attributes let browser tests find them."""
    note = f'<div class="arena-note" id="arena-note">{html.escape(state.note)}</div>' if state.note else ""
    if not state.panels:
        return note or '<div class="arena-empty">Pick configurations and press Run.</div>'
    cards = []
    now = time.monotonic()
    for p in state.panels.values():
        stage = p.status
        if p.status == "running" and p.repeats:
            stage = f"running {p.repeat}/{p.repeats} · {now - p.since:.0f} s"
        elif p.status in ("starting", "exporting", "loading", "warming up"):
            stage = f"{p.status} · {now - p.since:.0f} s"
        detail = stage_detail(state, p)
        baseline = ' <span class="arena-base">baseline</span>' if p.config == state.baseline else ""
        cards.append(
            f'<div class="arena-panel arena-{html.escape(p.status.replace(" ", "-"))}" '
            f'data-config="{html.escape(p.config)}" data-status="{html.escape(p.status)}" '
            f'data-unstable="{int(bool(p.metrics.get("unstable")))}" data-over-limit="{int(bool(p.metrics.get("over_limit")))}">'
            f'<div class="arena-head"><b>{html.escape(p.label)}</b>{baseline}'
            f'<span class="arena-status">{html.escape(stage)}</span></div>'
            f'<div class="arena-name">{html.escape(p.config)}</div>'
            f'<div class="arena-bar"><div style="width:{p.progress * 100:.0f}%"></div></div>'
            + (f'<div class="arena-detail">{html.escape(detail)}</div>' if detail else "")
            + f'<pre class="arena-text">{html.escape(p.text)}</pre>'
            + (f'<div class="arena-reason">{html.escape(p.reason)}</div>' if p.reason else "")
            + f'<div class="arena-metrics">{_metrics_html(p)}</div>'
            + (f'<div class="arena-placement">{html.escape(p.placement)}</div>' if p.placement else "")
            + (_quality_html(p, baseline=p.config == state.baseline, alone=len(state.panels) == 1)
               if p.metrics else "")
            + (f'<div class="arena-stages" data-warm="{int(bool(p.metrics.get("warm")))}">'
               f'{_stages_line(p)}</div>' if p.metrics else "")
            + '</div>'
        )
    return note + '<div class="arena-grid">' + "".join(cards) + "</div>"


CSS = """
.arena-grid {display:grid; grid-template-columns:repeat(auto-fill,minmax(300px,1fr)); gap:12px;}
.arena-panel {border:1px solid var(--border-color-primary); border-radius:8px; padding:10px;
  background:var(--block-background-fill);}
.arena-head {display:flex; justify-content:space-between; gap:8px; align-items:baseline;}
.arena-name {font-family:monospace; font-size:12px; opacity:.7;}
.arena-status {font-size:12px; white-space:nowrap;}
.arena-stages {font-size:11px; color:#6b7280;}
.arena-base {font-size:11px; border:1px solid; border-radius:4px; padding:0 4px; margin-left:4px;}
.arena-bar {height:4px; background:var(--border-color-primary); border-radius:2px; margin:6px 0;}
.arena-bar > div {height:100%; background:var(--color-accent); border-radius:2px; transition:width .3s;}
.arena-text {white-space:pre-wrap; word-break:break-word; max-height:320px; overflow:auto;
  font-size:13px; margin:4px 0; min-height:3em;}
.arena-metrics {font-size:12px;}
.arena-placement {font-size:12px; font-family:monospace; opacity:.85;}
.arena-quality, .arena-cut {font-size:12px;}
.arena-grey, .arena-cut {opacity:.55;}
.arena-reason {font-size:12px; color:var(--error-text-color, #b91c1c);}
.arena-detail {font-size:12px; opacity:.8;}
.arena-note {font-size:14px; padding:8px 10px; margin-bottom:10px; border-left:3px solid var(--color-accent);
  background:var(--block-background-fill);}
.arena-done .arena-status {color:#15803d;}
.arena-failed .arena-status, .arena-unavailable .arena-status {color:#b91c1c;}
.arena-unavailable, .arena-cancelled {opacity:.75;}
.arena-flag {font-size:12px; color:#b45309;}
.arena-cfg-off label, .arena-cfg-off .info {opacity:.5;}
"""
