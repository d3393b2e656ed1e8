"""One GPU against a split over several: Markdown tables from `python -m arena run --json` files.

    python -m benchmarks.multi_gpu_report one.json split-bf16.json split-4bit.json tp.json

The first table (arena/bench/tables.py, placement_table) has one row per measured configuration:
where it ran (settings gpus / max_memory), decoder layers and peak memory per device, load time,
TTFT, decode tokens/s, its % of the bandwidth limit, and that speed against the same
configuration's single-device row when one of the files holds it.

The second (parallel_comparison) compares, per model, one GPU, the device_map split and tensor
parallelism (decode tokens/s, and the ratio tensor-parallel / device_map split). The bandwidth
limit is one GPU's: a decode step reads every weight once. In a device_map (pipelined) split the
GPUs take their turns, each reading its share while the others wait, so its limit is the same as
one GPU holding the whole model (bandwidth / total bytes); tensor parallelism reads every GPU's
share at once, so it may pass 100% of that limit (up to the number of GPUs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


from arena.bench.tables import parallel_comparison, placement_kind, placement_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="JSON written by `python -m arena run --json`")
    args = parser.parse_args()
    rows = [row for f in args.files if Path(f).is_file() for row in json.loads(Path(f).read_text(encoding="utf-8"))]
    print(placement_table(rows))
    if any(placement_kind(r) != "one GPU" for r in rows if r.get("status") == "ok"):
        print()
        print(parallel_comparison(rows))


if __name__ == "__main__":
    main()
