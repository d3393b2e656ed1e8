"""How close does each configuration come to the memory-bandwidth limit? One run, side by side.

Every configuration runs through the arena (one spawned worker each, the same measurement as
`python -m arena run`); the table (arena/bench/tables.py, bandwidth_table) shows decode tokens/s,
the bandwidth limit for that configuration (measured device bandwidth / bytes read per decode
step), the share of it reached, agreement with eager greedy decoding, and the speed-up over
plain sdpa.

    python -m benchmarks.bandwidth_limit --model synthetic:llama-2-7b --dtype bf16 \
        --prompt-tokens 128 --max-new-tokens 128
"""

from __future__ import annotations

import argparse
import sys


from arena.bench.runs import add_run_arguments, measure_args
from arena.bench.tables import bandwidth_table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(p, configs="eager,sdpa,static-cache,compiled-decode", max_new_tokens=128,
                      prompt="Write a short story about a lighthouse keeper.", timeout_s=600.0)
    p.add_argument("--compare-to", default="static-cache", help="a second configuration to compare tokens with")
    args = p.parse_args(argv)
    measured = measure_args(args)
    if measured is None:
        return 2
    print(measured.header())
    print(bandwidth_table([r.to_dict() for r in measured.results], args.compare_to))
    return 0


if __name__ == "__main__":
    sys.exit(main())
