"""Inductor flag sets for the compiled configurations, side by side in one call (issue 24: bf16 at
80% of the bandwidth limit, the embedded default at 1,500 tok/s, int4 at twice bf16).

Every compiled configuration compiles under one flag set (arena/backends/inductor.py); the
developer switch ARENA_INDUCTOR_FLAGS merges a JSON object over it for one process. This script
runs `python -m arena run` once per flag set and round, alternating the sets (A B C A B C ...),
each in a fresh process and so a fresh compile, and prints per configuration the median decode
tok/s, its share of the bandwidth limit and its ratio to the first set's, measured in this one
call. Results are not stored (--no-store); --json keeps every row.

    python -m benchmarks.fast_path --model synthetic:llama-2-7b --configs compiled-decode,torchao-int4wo+compiled-decode
    python -m benchmarks.fast_path --model default --configs compiled-decode --sets default,combo,max-autotune
    python -m benchmarks.fast_path --sets 'default,{"max_autotune": true, "coordinate_descent_tuning": false}'

A set is a name from SETS or a JSON object. On the CPU the same step runs without its CUDA graph:
the script works there, its figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What each named set merges over arena/backends/inductor.py's FLAGS, and why it is a candidate.
SETS: dict[str, dict] = {
    "default": {},
    # the one-row matmul as a tuned Triton reduction is what the default gets from this: the control
    "no-coordinate-descent": {"coordinate_descent_tuning": False},
    # autotuned templates for the matmuls (prefill) and more reduction configs (decode)
    "max-autotune": {"max_autotune": True},
    # independent small kernels of a layer (norms, rotary, residual adds) launched as one:
    # fewer kernels per step for a small model whose step is launch-bound
    "combo": {"combo_kernels": True},
    # the reduction split over more blocks when one row leaves SMs idle
    "split-reductions-off": {"split_reductions": False},
    # Programmatic Dependent Launch (Hopper+): each Triton kernel may start while the one before it
    # finishes, its prologue overlapping the other's tail; inside one CUDA graph (the decode step)
    # that shortens the gap between dependent kernels, which is most of a small model's step
    "pdl": {"triton.enable_pdl": True},
    "combo+pdl": {"combo_kernels": True, "triton.enable_pdl": True},
}


def unknown_flags(flags: dict) -> list[str]:
    """The keys of `flags` this torch's inductor config does not have (a set written for another
    release): such a set is reported and skipped, not run under a silently ignored flag."""
    from torch._inductor import config

    missing = []
    for key in flags:
        node = config
        for part in key.split("."):
            if not hasattr(node, part):
                missing.append(key)
                break
            node = getattr(node, part)
    return missing


def parse_set(text: str) -> tuple[str, dict]:
    text = text.strip()
    if text in SETS:
        return text, SETS[text]
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise SystemExit(f"unknown flag set {text!r}: one of {', '.join(SETS)}, or a JSON object") from None
    if not isinstance(value, dict):
        raise SystemExit(f"a flag set is a JSON object, not {text!r}")
    return json.dumps(value, sort_keys=True), value


def split_sets(text: str) -> list[str]:
    """Comma-separated names and JSON objects (whose own commas stay inside their braces)."""
    out, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    return [s for s in out + [current] if s.strip()]


def run_once(args: argparse.Namespace, flags: dict, out: Path) -> list[dict]:
    """One `arena run` under `flags`, in a fresh process: its rows. Raises RuntimeError when the
    run gave no rows or ran without the flags."""
    # over FLAGS alone: a GPU generation's own additions (inductor.GENERATION_FLAGS) are one of the sets
    env = {**os.environ, "ARENA_INDUCTOR_FLAGS": json.dumps(flags), "ARENA_GENERATION_FLAGS": "0"}
    cmd = [sys.executable, "-m", "arena", "run", "--model", args.model, "--configs", args.configs,
           "--dtype", args.dtype, "--max-new-tokens", str(args.tokens), "--repeats", str(args.repeats),
           "--prompt-tokens", str(args.prompt_tokens), "--timeout", str(args.timeout),
           "--no-store", "--quiet", "--json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"run failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    rows = json.loads(out.read_text())
    for r in rows:  # the switch reached the run (results carry it in their environment)
        if (r.get("env") or {}).get("inductor_flags", "{}") != json.dumps(flags):
            raise RuntimeError(f"{r['config']} ran without the flag set {json.dumps(flags)}")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="synthetic:llama-2-7b")
    ap.add_argument("--configs", default="compiled-decode,torchao-int4wo+compiled-decode")
    ap.add_argument("--sets", default="default,max-autotune,combo",
                    help=f"flag sets, the first is the reference: names ({', '.join(SETS)}) or JSON objects")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--prompt-tokens", type=int, default=128, help="synthetic models' prompt length")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1, help="each set this many times, alternating")
    ap.add_argument("--timeout", type=float, default=540.0, help="per configuration, seconds")
    ap.add_argument("--json", help="every row, with its flag set and round, here")
    args = ap.parse_args(argv)
    sets = [parse_set(s) for s in split_sets(args.sets)]
    import torch

    rows: list[dict] = []
    configs = args.configs.split(",")
    runnable = []
    for name, flags in sets:
        if missing := unknown_flags(flags):  # every configuration of the set: one failed row, no run
            reason = f"torch {torch.__version__}'s inductor has no {', '.join(missing)}"
            print(f"{name}: skipped, {reason}", flush=True)
            rows += [{"config": c, "status": "failed", "reason": reason, "flag_set": name, "round": 0} for c in configs]
        else:
            runnable.append((name, flags))
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, flags in runnable:
                print(f"round {round_ + 1}, {name} {json.dumps(flags)}", flush=True)
                try:
                    got = run_once(args, flags, Path(tmp) / "out.json")
                except RuntimeError as exc:  # this set's round is lost, not the others' rows
                    print(f"  {exc}", flush=True)
                    got = [{"config": c, "status": "failed", "reason": str(exc)} for c in configs]
                for r in got:
                    rows.append({**r, "flag_set": name, "round": round_ + 1})
                    print(f"  {r['config']}: {r['status']}, {r.get('decode_tokens_per_s') or 0:.1f} tok/s "
                          f"{r.get('reason') or ''}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    table = summarize(rows, list(dict.fromkeys(r["flag_set"] for r in rows)))
    print(f"\n{args.model}, {args.dtype}, batch 1, {args.tokens} new, {args.repeats} repeats, median of "
          f"{args.rounds} round(s); one call, one machine")
    print(table)
    return 0


def summarize(rows: list[dict], order: list[str]) -> str:
    """A markdown table: per configuration and flag set, median tok/s, % of the limit, ratio to the
    first set's (none where the first set has no figure); a set without a figure says why."""
    lines = ["| configuration | flag set | decode tok/s | % of limit | vs first set |", "|---|---|---:|---:|---:|"]
    for config in dict.fromkeys(r["config"] for r in rows):
        ref = None
        for name in order:
            tried = [r for r in rows if r["config"] == config and r["flag_set"] == name]
            mine = [r for r in tried if r["status"] == "ok"]
            if not mine:
                why = next((r["reason"] for r in tried if r.get("reason")), "")
                lines.append(f"| {config} | {name} | – {why} | – | – |" if why else f"| {config} | {name} | – | – | – |")
                continue
            speed = statistics.median(r["decode_tokens_per_s"] for r in mine)
            share = [r["percent_of_bandwidth_limit"] for r in mine if r.get("percent_of_bandwidth_limit") is not None]
            if name == order[0]:
                ref = speed
            pct = f"{statistics.median(share):.1f}" if share else "–"
            ratio = f"{speed / ref:.2f}x" if ref else "–"
            lines.append(f"| {config} | {name} | {speed:,.1f} | {pct} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
