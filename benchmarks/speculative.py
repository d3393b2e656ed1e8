"""Prompt lookup against sdpa on the embedded default, on a prompt whose answer copies a pasted
passage (edit) and on a free-form one: both rows loaded once in this process, warmed up, then timed
in alternating rounds (sdpa first in odd rounds, prompt lookup first in even ones), each through the
arena's own clock (arena/measure/clocks.py: TTFT to the first step, decode tok/s over the tokens
after it). Per prompt: the median decode tok/s and end-to-end time of each, their ratios measured
side by side, prompt lookup's acceptance and tokens per model step, and whether the tokens equal
sdpa's over the compared span (up to sdpa's first end-of-text; greedy: they must, or diverge at
a near-tie).

    python -m benchmarks.speculative [--rounds 5] [--new-tokens 64] [--dtype auto] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from arena.backends import make_backend
from arena.backends.base import Backend, Sampling
from arena.core.env import collect_env
from arena.core.prompts import EDIT_PROMPT, STORY
from arena.measure.clocks import TokenClock, timing_from_stamps
from arena.models.dtypes import resolve_dtype
from arena.models.spec import parse_model
from arena.measure.quality import compared_span
from arena.models.tokenizers import encode_prompt, eos_ids, load_tokenizer
from arena.techniques import registry

PROMPTS = {"edit a passage": EDIT_PROMPT, "free-form": STORY}
ROWS = ("sdpa", "prompt-lookup")


def timed(backend: Backend, ids: torch.Tensor, new_tokens: int) -> dict[str, Any]:
    """One generate() through the arena's clock, with prompt lookup's counts where it has them."""
    clock = TokenClock()
    if backend.drafts is not None:
        backend.drafts.reset()
    clock.begin()
    out = backend.generate(ids, new_tokens, Sampling(), streamer=clock)
    wall = time.perf_counter() - clock.start
    timing = timing_from_stamps(clock.start, clock.stamps, 1, clock.counts)
    counts = backend.drafts.fields(clock.tokens) if backend.drafts is not None else {}
    return {"decode_tokens_per_s": timing.decode_tokens_per_s, "ttft_ms": timing.ttft_ms, "wall_s": wall,
            "tokens": out[0].tolist(), **counts}


def compare(backends: dict[str, Backend], ids: torch.Tensor, new_tokens: int, rounds: int,
            eos: set[int]) -> dict[str, Any]:
    for backend in backends.values():  # warm-up: allocator and kernels at these shapes
        timed(backend, ids, new_tokens)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in backends}
    for r in range(rounds):
        for name in (ROWS if r % 2 == 0 else ROWS[::-1]):
            runs[name].append(timed(backends[name], ids, new_tokens))
    med = {name: {k: statistics.median(run[k] for run in rs) for k in ("decode_tokens_per_s", "ttft_ms", "wall_s")}
           for name, rs in runs.items()}
    lookup, plain = runs["prompt-lookup"][0], runs["sdpa"][0]["tokens"]
    span = compared_span(plain, eos)  # up to and including sdpa's first end-of-text, as the arena compares
    same = all(run["tokens"][:span] == plain[:span] for rs in runs.values() for run in rs)
    first_diff = next((i for i, (a, b) in enumerate(zip(lookup["tokens"][:span], plain[:span])) if a != b), None)
    return {
        "prompt_tokens": ids.shape[1], "medians": med,
        "decode_speedup": med["prompt-lookup"]["decode_tokens_per_s"] / med["sdpa"]["decode_tokens_per_s"],
        "e2e_speedup": med["sdpa"]["wall_s"] / med["prompt-lookup"]["wall_s"],
        "acceptance_rate": lookup["acceptance_rate"], "tokens_per_step": lookup["tokens_per_step"],
        "compared_tokens": span, "identical_tokens": same, "first_divergence": first_diff,
        "per_round_decode": {name: [round(run["decode_tokens_per_s"], 2) for run in rs] for name, rs in runs.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = resolve_dtype(args.dtype)
    spec = parse_model("default")
    tokenizer = load_tokenizer(spec)
    backends = {name: make_backend(registry.get(name), spec, dtype, device) for name in ROWS}
    for backend in backends.values():
        backend.load()
    env = collect_env()
    report: dict[str, Any] = {"model": spec.display, "device": env["device"], "hardware": env["hardware"],
                              "torch": torch.__version__, "dtype": dtype, "new_tokens": args.new_tokens,
                              "rounds": args.rounds, "prompts": {}}
    print(f"{spec.display}, {dtype} on {env['hardware']}, torch {torch.__version__}, {args.new_tokens} new tokens, "
          f"{args.rounds} alternating rounds (medians)")
    print(f"{'prompt':<16} {'sdpa tok/s':>10} {'lookup tok/s':>12} {'decode x':>8} {'e2e x':>6} {'accepted':>8} "
          f"{'tok/step':>8}  tokens")
    for label, prompt in PROMPTS.items():
        ids = torch.tensor([encode_prompt(spec, tokenizer, prompt)])
        row = compare(backends, ids, args.new_tokens, args.rounds, eos_ids(spec, tokenizer))
        report["prompts"][label] = row
        med = row["medians"]
        acc = "n/a" if row["acceptance_rate"] is None else f"{row['acceptance_rate']:.2f}"
        tokens = (f"identical over {row['compared_tokens']}" if row["identical_tokens"]
                  else f"diverge at {row['first_divergence']} of {row['compared_tokens']}")
        plain, lookup = med["sdpa"]["decode_tokens_per_s"], med["prompt-lookup"]["decode_tokens_per_s"]
        print(f"{label:<16} {plain:>10.1f} {lookup:>12.1f} {row['decode_speedup']:>8.2f} {row['e2e_speedup']:>6.2f} "
              f"{acc:>8} {row['tokens_per_step']:>8.2f}  {tokens}",
              flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
