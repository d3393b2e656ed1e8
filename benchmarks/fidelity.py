"""Does the arena's harness measure what a bare loop measures?

One configuration, measured twice in one run on the same model and tokens:
  1. through the arena (spawned worker, streamer timestamps, events, store);
  2. through a bare reference loop in its own fresh process: plain `generate` timed with
     device synchronization, optimum-benchmark style (prefill = a 1-token generate, decode
     = (N-1) tokens over the difference), peak memory from torch (CUDA) or sampled RSS (CPU).
Arena and reference alternate for --rounds rounds; medians are compared.
Prints both and the ratios arena / reference. Target: within 5% (0.95 .. 1.05).

    python benchmarks/fidelity.py --model default --config sdpa --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def reference(model_id: str, config_name: str, dtype: str, prompt_ids: list[int], batch: int,
              new_tokens: int, repeats: int, out) -> None:
    import psutil
    import torch

    from arena.backends.torch import TorchBackend
    from arena.core import registry
    from arena.models.dtypes import torch_dtype
    from arena.models.sources import pretrained_path
    from arena.models.spec import parse_model
    from arena.models.synthetic import build_synthetic

    cfg = registry.get(config_name)
    spec = parse_model(model_id)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if spec.synthetic:
        model = build_synthetic(spec, torch_dtype(dtype), device, cfg.attn)
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            pretrained_path(spec), dtype=torch_dtype(dtype), attn_implementation=cfg.attn
        ).to(device).eval()
    backend = TorchBackend(cfg, spec, dtype, device)  # only for its sdpa_kernel / compile kwargs
    extra = backend.extra_generate_kwargs(new_tokens)
    ids = torch.tensor([prompt_ids] * batch, device=device)
    mask = torch.ones_like(ids)

    def gen(n: int) -> float:
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode(), backend.generation_context():
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                           do_sample=False, pad_token_id=0, **extra)
        sync()
        return time.perf_counter() - t0

    gen(new_tokens)  # warm-up at full length
    proc, peak, stop = psutil.Process(), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(0.005)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    prefill = statistics.median(gen(1) for _ in range(repeats))
    full = statistics.median(gen(new_tokens) for _ in range(repeats))
    stop.set()
    sampler.join()
    mem = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else peak[0] / 2**20
    out.put({"ttft_ms": prefill * 1e3, "decode_tokens_per_s": batch * (new_tokens - 1) / (full - prefill),
             "peak_memory_mb": mem})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--config", default="sdpa", help="a PyTorch configuration (eager, sdpa, sdpa-math, static-cache, ...)")
    parser.add_argument("--prompt", default="Write a short story about a lighthouse keeper.")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved arena/reference rounds")
    args = parser.parse_args()

    from arena.core import registry
    from arena.core.request import RunRequest, validate
    from arena.execute import runner

    if registry.get(args.config).backend != "torch" or registry.get(args.config).quantized:
        parser.error("the bare reference loop covers unquantized PyTorch configurations")
    prepared = validate(RunRequest(model=args.model, prompt=args.prompt, configs=[args.config],
                                   max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                   dtype=args.dtype, repeats=args.repeats, prompt_tokens=args.prompt_tokens))
    # Alternate arena and reference rounds (ABAB...): on a shared machine throughput drifts
    # between minutes, and interleaving keeps that drift out of the ratio.
    ctx = mp.get_context("spawn")
    arenas, refs = [], []
    for _ in range(args.rounds):
        arena = runner.execute(prepared)[0]
        if arena.status != "ok":
            print(f"arena run failed: {arena.reason}")
            return 1
        q = ctx.Queue()
        p = ctx.Process(target=reference, args=(args.model, args.config, prepared.dtype, prepared.prompt_ids,
                                                 args.batch_size, args.max_new_tokens, args.repeats, q))
        p.start()
        refs.append(q.get(timeout=3600))
        p.join()
        arenas.append(arena)

    print(f"model {prepared.spec.display}, config {args.config}, dtype {prepared.dtype}, "
          f"prompt {len(prepared.prompt_ids)} tokens, {args.max_new_tokens} new, batch {args.batch_size}, "
          f"{args.rounds} interleaved rounds, hardware {arenas[0].hardware}")
    print(f"{'metric':<22}{'arena':>12}{'reference':>12}{'ratio':>8}   per-round ratios")
    worst = 0.0
    for key in ("decode_tokens_per_s", "peak_memory_mb", "ttft_ms"):
        a = statistics.median(getattr(r, key) for r in arenas)
        r = statistics.median(ref[key] for ref in refs)
        rounds = [getattr(x, key) / y[key] for x, y in zip(arenas, refs)]
        ratio = a / r
        if key != "ttft_ms":  # TTFT differs by definition (streamer stamp vs 1-token generate)
            worst = max(worst, abs(ratio - 1))
        print(f"{key:<22}{a:>12.2f}{r:>12.2f}{ratio:>8.3f}   " + " ".join(f"{x:.3f}" for x in rounds))
    print(f"memory method: {arenas[0].memory_method}")
    verdict = "PASS" if worst <= 0.05 else "FAIL"
    print(f"{verdict}: decode tokens/s and peak memory within {worst * 100:.1f}% (target 5%)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
