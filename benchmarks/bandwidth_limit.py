"""How close does each configuration come to the memory-bandwidth limit? One run, side by side.

Every configuration runs through the arena (one spawned worker each, the same measurement as
`python -m arena run`); the table shows decode tokens/s, the bandwidth limit for that
configuration (measured device bandwidth / bytes read per decode step), the share of it
reached, agreement with eager greedy decoding, and the speed-up over plain sdpa.

    python benchmarks/bandwidth_limit.py --model synthetic:llama-2-7b --dtype bf16 \
        --prompt-tokens 128 --max-new-tokens 128
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arena.measure.quality import agreement  # noqa: E402

DEFAULT_CONFIGS = "eager,sdpa,static-cache,compiled-decode"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def markdown(results: list, compare_to: str) -> str:
    """One row per configuration. Agreement is with the run's baseline (eager when it runs) and with
    `compare_to` (the same static cache and attention through generate()): on random weights
    in half precision, near-tied logits make any change of kernel order diverge early."""
    ok = {r.config: r for r in results if r.status == "ok"}
    sdpa = ok["sdpa"].decode_tokens_per_s if "sdpa" in ok else None
    other = ok.get(compare_to)
    baseline = next((r.baseline for r in results if r.baseline), "eager")
    lines = [f"| configuration | decode tok/s | limit tok/s | % of limit | agreement with {baseline} | "
             f"agreement with {compare_to} | vs sdpa |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if r.status != "ok":
            lines.append(f"| {r.config} | {r.status}: {r.reason} | | | | | |")
            continue
        gain = r.decode_tokens_per_s / sdpa if sdpa and r.decode_tokens_per_s else None
        with_other = agreement(other.token_ids, r.token_ids)[0] if other is not None else None
        lines.append(f"| {r.config} | {_num(r.decode_tokens_per_s)} | {_num(r.bandwidth_limit_tokens_per_s)} | "
                     f"{_num(r.percent_of_bandwidth_limit)}% | {_share(r.token_agreement)} | "
                     f"{_share(with_other)} | {'-' if gain is None else f'{gain:.2f}x'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from arena.core.request import RequestError, RunRequest, validate
    from arena.data.store import Store
    from arena.execute import runner

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--configs", default=DEFAULT_CONFIGS)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--prompt", default="Write a short story about a lighthouse keeper.")
    p.add_argument("--prompt-tokens", type=int, default=128, help="prompt length for synthetic models")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per configuration")
    p.add_argument("--compare-to", default="static-cache", help="a second configuration to compare tokens with")
    p.add_argument("--db", help="also record the results in this SQLite store")
    p.add_argument("--json", help="write the results as JSON here")
    args = p.parse_args(argv)

    request = RunRequest(model=args.model, prompt=args.prompt, configs=args.configs.split(","),
                         max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, dtype=args.dtype,
                         repeats=args.repeats, prompt_tokens=args.prompt_tokens, timeout_s=args.timeout)
    try:
        prepared = validate(request)
    except RequestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = runner.execute(prepared, store=Store(args.db) if args.db else None)
    first = next((r for r in results if r.status == "ok"), None)
    print(f"model: {prepared.spec.display}   dtype: {prepared.dtype}   batch: {args.batch_size}   "
          f"prompt tokens: {len(prepared.prompt_ids)}   new tokens: {args.max_new_tokens}   "
          f"repeats: {args.repeats} (median)")
    if first is not None:
        bw = _num(first.memory_bandwidth_gb_s, 0)
        print(f"hardware: {first.hardware}   measured memory bandwidth: {bw} GB/s   "
              f"torch {first.env.get('packages', {}).get('torch')}, "
              f"transformers {first.env.get('packages', {}).get('transformers')}")
    print(markdown(results, args.compare_to))
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in results], indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
