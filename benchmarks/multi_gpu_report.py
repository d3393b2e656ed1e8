"""One GPU against a split over several: Markdown tables from `python -m arena run --json` files.

    python benchmarks/multi_gpu_report.py one.json split-bf16.json split-4bit.json tp.json

Each row of the first table is one measured configuration: where it ran (settings gpus /
max_memory), decoder layers and peak memory per device, load time, TTFT, decode tokens/s, its
% of the bandwidth limit, and that speed against the same configuration's single-device row when
one of the files holds it.

The second table compares, per model, one GPU, the device_map split and tensor parallelism
(decode tokens/s, and the ratio tensor-parallel / device_map split). The bandwidth limit is one
GPU's: a decode step reads every weight once. In a device_map (pipelined) split the GPUs take
their turns, each reading its share while the others wait, so its limit is the same as one GPU
holding the whole model (bandwidth / total bytes); tensor parallelism reads every GPU's share at
once, so it may pass 100% of that limit (up to the number of GPUs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _where(row: dict) -> str:
    settings = row.get("settings") or {}
    if settings.get("max_memory"):
        return "max_memory " + ",".join(f"{k}={v / 2**30:.0f}GiB" for k, v in settings["max_memory"].items())
    if settings.get("gpus"):
        return "gpus " + ",".join(map(str, settings["gpus"]))
    return "default device"


def report(rows: list[dict]) -> str:
    ok = [r for r in rows if r.get("status") == "ok"]
    single = {(_model(r), r["config"]): r for r in ok if not (r.get("settings") or {}).get("max_memory")
              and len((r.get("settings") or {}).get("gpus") or []) <= 1}  # the one-device rows
    lines = ["| model | configuration | placement asked | layers per device | peak MB per device | load s | TTFT ms "
             "| decode tok/s | % of bandwidth limit | vs one device |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {_model(r)} | {r['config']} | {_where(r)} | {r.get('status')}: {r.get('reason', '')} "
                         "| | | | | | |")
            continue
        layers = ", ".join(f"{d} {p['layers']}" for d, p in (r.get("placement") or {}).items())
        peaks = ", ".join(f"{d} {mb:.0f}" for d, mb in (r.get("device_peak_memory_mb") or {}).items())
        base = single.get((_model(r), r["config"]))
        ratio = (f"{r['decode_tokens_per_s'] / base['decode_tokens_per_s']:.2f}x"
                 if base and base is not r and base.get("decode_tokens_per_s") else "")
        lines.append(f"| {_model(r)} | {r['config']} | {_where(r)} | {layers} | {peaks} | {_num(r.get('load_s'), 1)} "
                     f"| {_num(r.get('ttft_ms'), 1)} | {r['decode_tokens_per_s']:.1f} "
                     f"| {_num(r.get('percent_of_bandwidth_limit'), 0)} | {ratio} |")
    return "\n".join(lines)


def _model(row: dict) -> str:
    return str(row.get("model_id") or "").replace("synthetic:", "")


def _num(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def kind(row: dict) -> str:
    """"tensor-parallel" (and +static-cache), "device_map split" or "one GPU"."""
    if row["config"].startswith("tensor-parallel"):
        return row["config"]
    gpus = [d for d in (row.get("placement") or {}) if d.startswith("cuda")]
    return "device_map split" if len(gpus) > 1 or (row.get("settings") or {}).get("max_memory") else "one GPU"


def comparison(rows: list[dict]) -> str:
    """Per model and cache, unquantized: the best decode tok/s of each way to run it (one GPU,
    device_map split, tensor-parallel), and tensor-parallel against the others."""
    best: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        if r.get("status") != "ok" or not r.get("decode_tokens_per_s") or r["config"].startswith("bnb"):
            continue  # unquantized only: like with like
        static = "static" in r["config"]
        key = (_model(r), "static cache" if static else "dynamic cache")
        way = kind(r).replace("+static-cache", "")
        cell = best.setdefault(key, {})
        cell[way] = max(cell.get(way, 0.0), r["decode_tokens_per_s"])
    lines = ["| model | cache | one GPU | device_map split | tensor-parallel | TP / device_map | TP / one GPU |",
             "|---|---|---|---|---|---|---|"]
    for (model, cache), cell in sorted(best.items()):
        one, split, tp = cell.get("one GPU"), cell.get("device_map split"), cell.get("tensor-parallel")
        # a static-cache row has no split of its own (refused): compare with the dynamic-cache split
        split = split or best.get((model, "dynamic cache"), {}).get("device_map split")
        lines.append(f"| {model} | {cache} | {_num(one, 1)} | {_num(split, 1)} | {_num(tp, 1)} "
                     f"| {_ratio(tp, split)} | {_ratio(tp, one)} |")
    return "\n".join(lines)


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="JSON written by `python -m arena run --json`")
    args = parser.parse_args()
    rows = [row for f in args.files if Path(f).is_file() for row in json.loads(Path(f).read_text(encoding="utf-8"))]
    print(report(rows))
    if any(kind(r) != "one GPU" for r in rows if r.get("status") == "ok"):
        print()
        print(comparison(rows))


if __name__ == "__main__":
    main()
