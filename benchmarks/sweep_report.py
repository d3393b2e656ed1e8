"""Turn sweep JSON (python -m arena sweep --json) into a docs folder: markdown tables, each
chart's data as CSV and its picture as PNG (arena/bench/sweep_docs.py).

    python -m benchmarks.sweep_report out/sweep-*.json --docs docs/sweep-h100

PNG export uses Plotly's static export (kaleido, which drives a Chromium: Debian's `chromium`
package or any Chrome it finds); --no-png writes the tables and CSV only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from arena.bench.sweep_docs import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", nargs="+", help="sweep JSON files (python -m arena sweep --json)")
    parser.add_argument("--docs", required=True, help="folder to write README.md, CSV and PNG into")
    parser.add_argument("--no-png", action="store_true", help="tables and CSV only")
    args = parser.parse_args(argv)
    points: list[dict] = []
    for name in args.json:
        points += json.loads(Path(name).read_text(encoding="utf-8"))
    if not any(str(p.get("mode", "")).startswith("sweep") for p in points):
        print("error: no sweep points in the given files", file=sys.stderr)
        return 2
    for path in write_report(points, Path(args.docs), png=not args.no_png):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
