"""What bounds a tensor-parallel decode step: torch.profiler around a few decode steps on rank 0,
the NCCL all-reduce kernel time per step against the whole step (wall) and the other kernels.

    python -m benchmarks.tp_profile --model synthetic:llama-2-70b --dtype bf16 --gpus 0,1 --steps 16

Runs through the arena's own launcher (arena/execute/tensor_parallel.py: one process per GPU,
NCCL) and backend (TensorParallelBackend), with the profiling body below in place of run_job.
Every rank runs the same steps (the all-reduces need all of them); rank 0 profiles and reports:
    step_ms          wall time of one decode step (synchronized), median
    allreduce_ms     NCCL kernel time per step (the all-reduces, and the all-gather of lm_head),
                     from the CUDA kernel events
    compute_ms       every other kernel's time per step
    idle_ms          step - allreduce - compute: launch gaps and host work (the GPU waiting)
On the CPU (gloo, ARENA_TP_CPU_WORLD=2) there are no CUDA kernels: only step_ms is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Callable

from arena.techniques import registry
from arena.core.env import platform
from arena.execute.tensor_parallel import run_ranks
from arena.execute.worker import Job
from arena.models.placement import parse_gpus


def profile_body(job: Job, emit: Callable[[dict[str, Any]], None]) -> None:
    """One rank: load, warm up, then `job.repeats` profiled decode steps after a prefill."""
    import torch
    import torch.distributed as dist
    from transformers import DynamicCache

    from arena.backends import make_backend
    from arena.models.spec import parse_model

    backend = make_backend(registry.get("tensor-parallel"), parse_model(job.model_ref), job.dtype, job.device)
    t0 = time.perf_counter()
    backend.load()
    sync = torch.cuda.synchronize if job.device.startswith("cuda") else (lambda: None)
    sync()
    load_s = time.perf_counter() - t0
    model, steps = backend.model, job.repeats
    ids = torch.tensor([job.prompt_ids], device=job.device)

    def prefill() -> tuple[Any, Any]:
        cache = DynamicCache()
        out = model(input_ids=ids, past_key_values=cache, use_cache=True)
        sync()
        return cache, out.logits[:, -1:].argmax(-1)

    def decode(n: int, cache: Any, token: Any, stamps: list[float]) -> None:
        for _ in range(n):
            start = time.perf_counter()
            out = model(input_ids=token, past_key_values=cache, use_cache=True)
            token = out.logits[:, -1:].argmax(-1)
            sync()
            stamps.append(time.perf_counter() - start)

    with torch.inference_mode():
        decode(steps, *prefill(), [])  # warm-up
        dist.barrier()
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if job.device.startswith("cuda") else [])
        stamps: list[float] = []
        cache, token = prefill()
        with profile(activities=activities) as prof:  # decode steps only
            decode(steps, cache, token, stamps)
        plain: list[float] = []
        decode(steps, *prefill(), plain)  # the same steps without the profiler's overhead
    kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    nccl = sum(e.time_range.elapsed_us() for e in kernels if "nccl" in e.name.lower()) / 1e3
    total = sum(e.time_range.elapsed_us() for e in kernels) / 1e3
    per = steps
    top: dict[str, float] = {}
    for e in kernels:
        top[e.name[:60]] = top.get(e.name[:60], 0.0) + e.time_range.elapsed_us() / 1e3 / per
    step_ms = statistics.median(plain) * 1e3
    report = {
        "rank": dist.get_rank(), "world": dist.get_world_size(), "device": job.device, "load_s": load_s,
        "steps": steps, "step_ms": step_ms, "step_ms_profiled": statistics.median(stamps) * 1e3,
        "allreduce_ms": nccl / per if kernels else None, "compute_ms": (total - nccl) / per if kernels else None,
        "idle_ms": step_ms - total / per if kernels else None,
        "top_kernels_ms": dict(sorted(top.items(), key=lambda kv: -kv[1])[:8]),
    }
    emit({"type": "metrics", "metrics": report})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="synthetic:llama-2-7b")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--gpus", default=None, help="GPUs to use, e.g. 0,1 (default: all)")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=400)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from arena.models.placement import Placement

    plat = platform()
    gpus = parse_gpus(args.gpus, plat.gpu_count)
    world = registry.tensor_parallel_world(plat, Placement(gpus))
    if isinstance(world, str):
        raise SystemExit(f"error: tensor-parallel: {world}")
    device = "cuda:0" if plat.has_cuda else "cpu"
    job = Job(config="tensor-parallel", model_kind="synthetic" if args.model.startswith("synthetic:") else "hub",
              model_ref=args.model, dtype=args.dtype, device=device,
              prompt_ids=[(7 * i) % 1000 + 3 for i in range(args.prompt_tokens)], batch_size=1,
              max_new_tokens=args.steps, repeats=args.steps, gpus=list(gpus) or None)
    metrics, error = run_ranks(job, int(world), lambda event: None, timeout_s=args.timeout,
                               timeout_reason=f"timed out after {args.timeout:.0f} s", body=profile_body)
    if error:
        raise SystemExit(f"error: {error}")
    keep = ("world", "load_s", "steps", "step_ms", "step_ms_profiled", "allreduce_ms", "compute_ms", "idle_ms",
            "top_kernels_ms")
    report = {"model": args.model, "dtype": args.dtype, **{k: metrics.get(k) for k in keep}}
    print(json.dumps(report, indent=1))
    if report["allreduce_ms"] is not None:
        step = report["step_ms"]
        print(f"per decode step: {step:.2f} ms wall; NCCL collectives {report['allreduce_ms']:.2f} ms "
              f"({100 * report['allreduce_ms'] / step:.0f}%), other kernels {report['compute_ms']:.2f} ms "
              f"({100 * report['compute_ms'] / step:.0f}%), GPU idle (launch gaps, host) {report['idle_ms']:.2f} ms "
              f"({100 * report['idle_ms'] / step:.0f}%)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
