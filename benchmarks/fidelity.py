"""Does the arena's harness measure what a bare loop measures, for every family? Each configuration
through the arena and through its family's own reference loop (arena/bench/fidelity.py), in
alternating rounds; medians compared. Targets: decode tok/s and peak memory within 5%, energy
(GPU: J/token x tokens against the NVML counter's delta over the reference's decode) within 10%.

    python -m benchmarks.fidelity --model default --configs eager,sdpa,ort-cpu --max-new-tokens 32
"""

from __future__ import annotations

import argparse
import sys


from arena.bench import fidelity
from arena.bench.runs import add_run_arguments, request_from
from arena.core import quiet
from arena.core.request import RequestError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, configs="eager,sdpa,ort-cpu", prompt="Write a short story about a lighthouse keeper.",
                      max_new_tokens=64, repeats=5, timeout_s=600.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved arena/reference rounds")
    args = parser.parse_args(argv)
    quiet.silence()
    request = request_from(args)
    store = None
    if args.db:
        from arena.data.store import Store

        store = Store(args.db)
    rows = []
    try:
        for name in request.configs:
            rows.append(fidelity.compare(request, name, rounds=args.rounds, store=store,
                                         say=lambda line: print(line, flush=True)))
    except RequestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"model {args.model}, {args.max_new_tokens} new tokens, batch {args.batch_size}, {args.repeats} repeats, "
          f"{args.rounds} interleaved rounds; arena / reference (targets: tok/s and memory within 5%, energy 10%)")
    print(fidelity.table(rows))
    verdicts = [fidelity.met(r) for r in rows]
    ok = bool(rows) and all(v == "PASS" for v in verdicts)
    print(("PASS" if ok else "FAIL") + ": " + ", ".join(f"{r['config']} {v or r['status']}" for r, v in zip(rows, verdicts)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
