"""Markdown tables of measured rows (Result.to_dict() dicts, as stored or written to JSON): the
run table every stage shows, and the bandwidth, quantization and multi-GPU tables of their
benchmarks. Plain functions of rows: the same table from a fresh run or from JSON files."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from arena.core.units import GiB
from arena.measure.quality import agreement

Row = dict[str, Any]


def num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _cell(text: object) -> str:
    return str(text or "").replace("|", "/").replace("\n", " ")


def markdown(columns: list[tuple[str, Callable[[Row], str]]], rows: Iterable[Row],
             failed: Callable[[Row], list[str]] | None = None) -> str:
    """A table: one heading and one cell function per column. A row that did not measure keeps
    its first cell, then `failed(row)`'s cells (default: its status and reason)."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |",
             "|---|" + "---:|" * (len(columns) - 1)]
    for r in rows:
        if r.get("status") == "ok":
            cells = [cell(r) for _, cell in columns]
        else:
            why = failed(r) if failed else [f"{r.get('status')}: {r.get('reason') or ''}"]
            cells = [columns[0][1](r), *why] + [""] * (len(columns) - 1 - len(why))
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- a run's table

RUN_COLUMNS: list[tuple[str, Callable[[Row], str]]] = [
    ("configuration", lambda r: r["config"]),
    ("TTFT ms", lambda r: num(r.get("ttft_ms"))),
    ("decode tok/s", lambda r: num(r.get("decode_tokens_per_s"))),
    ("% of BW limit", lambda r: num(r.get("percent_of_bandwidth_limit")) + (" ⚠ over" if r.get("over_limit") else "")),
    ("p50 ms", lambda r: num(r.get("token_latency_p50_ms"), 2)),
    ("peak MB", lambda r: num(r.get("peak_memory_mb"), 0)),
    ("weights MB", lambda r: num(r.get("weights_mb"), 0)),
    ("load s", lambda r: num(r.get("load_s"), 1)),
    ("export s", lambda r: num(r.get("export_s"), 1)),
    ("J/token", lambda r: num(r.get("energy_j_per_token"), 3)),
    ("speedup", lambda r: "-" if r.get("speedup") is None else f"{r['speedup']:.2f}x"),
    ("agreement", lambda r: share(r.get("token_agreement"))),
    ("NLL", lambda r: num(r.get("nll"), 3)),
]


def run_table(rows: list[Row]) -> str:
    """The arena's run table: speed, memory, load and export apart, energy, and agreement / NLL
    against the row's own baseline (named under the table)."""
    table = markdown(RUN_COLUMNS, rows)
    baselines = sorted({r.get("baseline") for r in rows if r.get("baseline")})
    notes = sorted({r.get("quality_note") for r in rows if r.get("quality_note")})
    tail = [f"Agreement and NLL: against {', '.join(baselines)} of the same call."] if baselines else []
    return "\n".join([table, "", *tail, *[f"Note: {n}" for n in notes]]).rstrip()


# ----------------------------------------------------------------------------- speculative decoding

SPECULATIVE_COLUMNS: list[tuple[str, Callable[[Row], str]]] = [
    ("configuration", lambda r: r["config"]),
    ("TTFT ms", lambda r: num(r.get("ttft_ms"))),
    ("decode tok/s", lambda r: num(r.get("decode_tokens_per_s"))),
    ("speedup", lambda r: "-" if r.get("speedup") is None else f"{r['speedup']:.2f}x"),
    ("accepted", lambda r: share(r.get("acceptance_rate"))),
    ("tok/step", lambda r: num(r.get("tokens_per_step"), 2)),
    ("draft load s", lambda r: num(r.get("draft_load_s"), 2)),
    ("draft MB", lambda r: num(r.get("draft_memory_mb"), 0)),
    ("peak MB", lambda r: num(r.get("peak_memory_mb"), 0)),
    ("agreement", lambda r: share(r.get("token_agreement"))),
]


def speculative_table(rows: list[Row]) -> str:
    """Speculative rows beside their baseline: speed, what their guesses did, the draft's own cost."""
    table = markdown(SPECULATIVE_COLUMNS, rows)
    baselines = sorted({r.get("baseline") for r in rows if r.get("baseline")})
    tail = [f"Speedup and agreement: against {', '.join(baselines)} of the same call."] if baselines else []
    return "\n".join([table, "", *tail]).rstrip()


# ----------------------------------------------------------------------------- bandwidth limit


def bandwidth_table(rows: list[Row], compare_to: str = "static-cache") -> str:
    """One row per configuration against the memory-bandwidth limit. Agreement is with the run's
    baseline (eager when it runs) and with `compare_to` (the same static cache and attention
    through generate()): on random weights in half precision, near-tied logits make any change
    of kernel order diverge early."""
    ok = {r["config"]: r for r in rows if r.get("status") == "ok"}
    sdpa = ok["sdpa"].get("decode_tokens_per_s") if "sdpa" in ok else None
    other = ok.get(compare_to)
    baseline = next((r["baseline"] for r in rows if r.get("baseline")), "eager")

    def with_other(r: Row) -> str:
        return share(agreement(other["token_ids"], r["token_ids"])[0]) if other is not None else "-"

    return markdown([
        ("configuration", lambda r: r["config"]),
        ("decode tok/s", lambda r: num(r.get("decode_tokens_per_s"))),
        ("limit tok/s", lambda r: num(r.get("bandwidth_limit_tokens_per_s"))),
        ("% of limit", lambda r: f"{num(r.get('percent_of_bandwidth_limit'))}%" + (" ⚠ over" if r.get("over_limit") else "")),
        (f"agreement with {baseline}", lambda r: share(r.get("token_agreement"))),
        (f"agreement with {compare_to}", with_other),
        ("vs sdpa", lambda r: ratio(r.get("decode_tokens_per_s"), sdpa)),
    ], rows)


# ----------------------------------------------------------------------------- quantization

QUANT_BASELINE = "compiled-decode"  # bf16 compiled-decode: what quantization has to beat
SPEEDUP_TARGET, WEIGHTS_TARGET, INT8_TARGET = 1.5, 0.35, 1.25


def quant_verdict(name: str, speed_ratio: float | None, weights_ratio: float | None) -> str:
    """PASS / MISS against the targets (a quantized configuration >= 1.5x bf16 with weights <= 35%
    of bf16's; int8 weight-only >= 1.25x); '' for a row no target applies to."""
    if speed_ratio is None or name == QUANT_BASELINE:
        return ""
    if "int8wo" in name:
        return "PASS" if speed_ratio >= INT8_TARGET else f"MISS (int8 target {INT8_TARGET}x)"
    if weights_ratio is not None and weights_ratio <= WEIGHTS_TARGET:
        return "PASS" if speed_ratio >= SPEEDUP_TARGET else f"MISS ({SPEEDUP_TARGET}x target)"
    return ""


def quant_table(rows: list[Row]) -> str:
    """Each row against the bf16 compiled-decode of its own run (several runs' rows may be joined):
    speed and weights ratios, % of the bandwidth limit, peak, NLL, agreement and the verdict."""
    bases = {r.get("run_id"): r for r in rows if r.get("status") == "ok" and r["config"] == QUANT_BASELINE}
    baseline = next((r.get("baseline") for r in rows if r.get("baseline")), QUANT_BASELINE)

    def against(r: Row) -> tuple[float | None, float | None]:
        base = bases.get(r.get("run_id")) or next(iter(bases.values()), None)
        speed, weights = r.get("decode_tokens_per_s"), r.get("weights_mb")
        s = speed / base["decode_tokens_per_s"] if base and speed and base.get("decode_tokens_per_s") else None
        w = weights / base["weights_mb"] if base and weights and base.get("weights_mb") else None
        return s, w

    return markdown([
        ("configuration", lambda r: r["config"]),
        ("decode tok/s", lambda r: num(r.get("decode_tokens_per_s"))),
        (f"vs {QUANT_BASELINE}", lambda r: "-" if against(r)[0] is None else f"{against(r)[0]:.2f}x"),
        ("% of limit", lambda r: f"{num(r.get('percent_of_bandwidth_limit'))}%" + (" ⚠ over" if r.get("over_limit") else "")),
        ("weights MB", lambda r: num(r.get("weights_mb"), 1)),
        ("weights vs bf16", lambda r: "-" if against(r)[1] is None else f"{100 * against(r)[1]:.0f}%"),
        ("peak MB", lambda r: num(r.get("peak_memory_mb"), 0)),
        (f"NLL (vs {baseline}'s tokens)", lambda r: num(r.get("nll"), 3)),
        (f"agreement with {baseline}", lambda r: share(r.get("token_agreement"))),
        ("target", lambda r: quant_verdict(r["config"], *against(r))),
    ], rows)


# ----------------------------------------------------------------------------- several GPUs


def _model(row: Row) -> str:
    return str(row.get("model_id") or "").replace("synthetic:", "")


def _where(row: Row) -> str:
    settings = row.get("settings") or {}
    if settings.get("max_memory"):
        return "max_memory " + ",".join(f"{k}={v / GiB:.0f}GiB" for k, v in settings["max_memory"].items())
    if settings.get("gpus"):
        return "gpus " + ",".join(map(str, settings["gpus"]))
    return "default device"


def placement_kind(row: Row) -> str:
    """"tensor-parallel" (and +static-cache), "device_map split" or "one GPU"."""
    if row["config"].startswith("tensor-parallel"):
        return row["config"]
    gpus = [d for d in (row.get("placement") or {}) if d.startswith("cuda")]
    return "device_map split" if len(gpus) > 1 or (row.get("settings") or {}).get("max_memory") else "one GPU"


def placement_table(rows: list[Row]) -> str:
    """One row per measured configuration: where it ran (gpus / max_memory), decoder layers and
    peak memory per device, load, TTFT, decode tok/s, % of the bandwidth limit, and that speed
    against the same configuration's single-device row when one is among `rows`."""
    ok = [r for r in rows if r.get("status") == "ok"]
    single = {(_model(r), r["config"]): r for r in ok if not (r.get("settings") or {}).get("max_memory")
              and len((r.get("settings") or {}).get("gpus") or []) <= 1}

    def vs_one(r: Row) -> str:
        base = single.get((_model(r), r["config"]))
        return ratio(r.get("decode_tokens_per_s"), base.get("decode_tokens_per_s")) if base and base is not r else ""

    return markdown([
        ("model", _model), ("configuration", lambda r: r["config"]), ("placement asked", _where),
        ("layers per device", lambda r: ", ".join(f"{d} {p['layers']}" for d, p in (r.get("placement") or {}).items())),
        ("peak MB per device", lambda r: ", ".join(f"{d} {mb:.0f}" for d, mb in (r.get("device_peak_memory_mb") or {}).items())),
        ("load s", lambda r: num(r.get("load_s"), 1)), ("TTFT ms", lambda r: num(r.get("ttft_ms"), 1)),
        ("decode tok/s", lambda r: num(r.get("decode_tokens_per_s"), 1)),
        ("% of bandwidth limit", lambda r: num(r.get("percent_of_bandwidth_limit"), 0)),
        ("vs one device", vs_one),
    ], rows, failed=lambda r: [r["config"], _where(r), f"{r.get('status')}: {r.get('reason') or ''}"])


def parallel_comparison(rows: list[Row]) -> str:
    """Per model and cache, unquantized: the best decode tok/s of each way to run it (one GPU,
    device_map split, tensor-parallel), and tensor-parallel against the others. The bandwidth
    limit is one GPU's: a device_map split's GPUs take turns, tensor parallelism reads every
    share at once, so only it may pass 100% of that limit."""
    best: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        if r.get("status") != "ok" or not r.get("decode_tokens_per_s") or r["config"].startswith("bnb"):
            continue  # unquantized only: like with like
        key = (_model(r), "static cache" if "static" in r["config"] else "dynamic cache")
        way = placement_kind(r).replace("+static-cache", "")
        cell = best.setdefault(key, {})
        cell[way] = max(cell.get(way, 0.0), r["decode_tokens_per_s"])
    lines = ["| model | cache | one GPU | device_map split | tensor-parallel | TP / device_map | TP / one GPU |",
             "|---|---|---|---|---|---|---|"]
    for (model, cache), cell in sorted(best.items()):
        one, split, tp = cell.get("one GPU"), cell.get("device_map split"), cell.get("tensor-parallel")
        # a static-cache row has no split of its own (refused): compare with the dynamic-cache split
        split = split or best.get((model, "dynamic cache"), {}).get("device_map split")
        fmt = lambda v: "" if v is None else f"{v:.1f}"  # noqa: E731
        lines.append(f"| {model} | {cache} | {fmt(one)} | {fmt(split)} | {fmt(tp)} "
                     f"| {ratio(tp, split) if tp and split else ''} | {ratio(tp, one) if tp and one else ''} |")
    return "\n".join(lines)
