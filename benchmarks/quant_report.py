"""Quantization that is faster, not only smaller: torchao and bitsandbytes beside bf16 compiled-decode.

Run mode: every configuration through the arena (one spawned worker each, as `python -m arena run`),
bf16 compiled-decode first, so it is the run's baseline: agreement and NLL are against it. The
table (arena/bench/tables.py, quant_table): decode tok/s, ratio to bf16 compiled-decode, % of the
bandwidth limit (from each row's real bytes), weights MB and their ratio to bf16, peak MB, NLL and
agreement, and PASS / MISS against the targets (a quantized configuration >= 1.5x bf16 with
weights <= 35% of bf16's; int8 weight-only >= 1.25x).

    python -m benchmarks.quant_report --model synthetic:llama-2-7b --prompt-tokens 128 \
        --max-new-tokens 128 --json out/quant-7b.json
    python -m benchmarks.quant_report --from-json out/quant-7b.json      # the table again, no GPU

Profile mode (CUDA, arena/bench/profile.py): load one configuration in this process, warm up at the
timed shape, then torch.profiler over one generation: kernel time per decode step, the gaps
between kernels, the top kernels and host calls per step.

    python -m benchmarks.quant_report --profile compiled-decode,torchao-int4wo+compiled-decode \
        --model synthetic:llama-2-7b --trace-dir out/traces
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from arena.bench.runs import add_run_arguments, measure_args
from arena.bench.tables import QUANT_BASELINE, quant_table

DEFAULT_CONFIGS = (f"{QUANT_BASELINE},torchao-int8wo+compiled-decode,torchao-int4wo+compiled-decode,"
                   "torchao-int4wo-g64+compiled-decode,torchao-float8wo+compiled-decode,"
                   "torchao-float8dq+compiled-decode,bnb-4bit")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(p, model="synthetic:llama-2-7b", configs=DEFAULT_CONFIGS, dtype="bf16", max_new_tokens=128,
                      prompt="Write a short story about a lighthouse keeper.", timeout_s=400.0)
    p.add_argument("--from-json", nargs="+", help="print the table from results written by --json")
    p.add_argument("--profile", help="comma-separated configurations to profile in this process (CUDA)")
    p.add_argument("--profile-tokens", type=int, default=21, help="new tokens in a profiled generation")
    p.add_argument("--trace-dir", type=Path, help="also write each profile's Chrome trace (.json.gz) here")
    args = p.parse_args(argv)

    if args.profile:
        from arena.bench.profile import profile_config

        for name in args.profile.split(","):
            print(profile_config(name.strip(), args.model, args.dtype, args.prompt, args.prompt_tokens,
                                 args.profile_tokens, args.trace_dir), flush=True)
            print()
        return 0
    if args.from_json:
        rows = [row for path in args.from_json for row in json.loads(Path(path).read_text(encoding="utf-8"))]
        print(quant_table(rows))
        return 0
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    if QUANT_BASELINE in names:  # first, so the run's baseline (eager absent) is bf16 compiled-decode
        names = [QUANT_BASELINE] + [n for n in names if n != QUANT_BASELINE]
    measured = measure_args(args, configs=names)
    if measured is None:
        return 2
    print(measured.header(("torch", "torchao", "mslk-cuda")))
    print(quant_table([r.to_dict() for r in measured.results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
