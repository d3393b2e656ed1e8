"""One GPU against a split over several: a Markdown table from `python -m arena run --json` files.

    python benchmarks/multi_gpu_report.py one.json split-bf16.json split-4bit.json

Each row is one measured configuration: where it ran (settings gpus / max_memory), decoder layers
and peak memory per device, decode tokens/s, and that speed against the same configuration's
single-device row when one of the files holds it.
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
    single = {r["config"]: r for r in ok if not (r.get("settings") or {}).get("max_memory")
              and len((r.get("settings") or {}).get("gpus") or []) <= 1}  # the one-device rows
    lines = ["| configuration | placement asked | layers per device | peak MB per device | decode tok/s | vs one device |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['config']} | {_where(r)} | {r.get('status')}: {r.get('reason', '')} | | | |")
            continue
        layers = ", ".join(f"{d} {p['layers']}" for d, p in (r.get("placement") or {}).items())
        peaks = ", ".join(f"{d} {mb:.0f}" for d, mb in (r.get("device_peak_memory_mb") or {}).items())
        base = single.get(r["config"])
        ratio = (f"{r['decode_tokens_per_s'] / base['decode_tokens_per_s']:.2f}x"
                 if base and base is not r and base.get("decode_tokens_per_s") else "")
        lines.append(f"| {r['config']} | {_where(r)} | {layers} | {peaks} | {r['decode_tokens_per_s']:.1f} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="JSON written by `python -m arena run --json`")
    args = parser.parse_args()
    rows = [row for f in args.files if Path(f).is_file() for row in json.loads(Path(f).read_text(encoding="utf-8"))]
    print(report(rows))


if __name__ == "__main__":
    main()
