"""Quantization that is faster, not only smaller: torchao and bitsandbytes beside bf16 compiled-decode.

Run mode: every configuration through the arena (one spawned worker each, as `python -m arena run`),
bf16 compiled-decode first, so it is the run's baseline: agreement and NLL are against it. The
table: decode tok/s, ratio to bf16 compiled-decode, % of the bandwidth limit (from each row's real
bytes), weights MB and their ratio to bf16, peak MB, NLL and agreement, and PASS / MISS against
the targets (a quantized configuration >= 1.5x bf16 with weights <= 35% of bf16's; int8
weight-only >= 1.25x).

    python benchmarks/quant_report.py --model synthetic:llama-2-7b --prompt-tokens 128 \
        --max-new-tokens 128 --json out/quant-7b.json
    python benchmarks/quant_report.py --from-json out/quant-7b.json      # the table again, no GPU

Profile mode (CUDA): load one configuration in this process, warm up at the timed shape, then run
torch.profiler over one generation. Each streamed token is one device-to-host copy on the GPU
timeline; between the first and the last of them: kernel time per decode step, the gaps between
kernels (host time the GPU waited for), and the top kernels and host calls per step. Meant for the
compiled-decode configurations (exactly one such copy per token).

    python benchmarks/quant_report.py --profile compiled-decode,torchao-int4wo+compiled-decode \
        --model synthetic:llama-2-7b --trace-dir out/traces
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BF16 = "compiled-decode"
DEFAULT_CONFIGS = (f"{BF16},torchao-int8wo+compiled-decode,torchao-int4wo+compiled-decode,"
                   "torchao-int4wo-g64+compiled-decode,torchao-float8wo+compiled-decode,"
                   "torchao-float8dq+compiled-decode,bnb-4bit")
SPEEDUP_TARGET, WEIGHTS_TARGET, INT8_TARGET = 1.5, 0.35, 1.25


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def verdict(name: str, speed_ratio: float | None, weights_ratio: float | None) -> str:
    """PASS / MISS against the issue's targets; '' for a row no target applies to."""
    if speed_ratio is None or name == BF16:
        return ""
    if "int8wo" in name:
        return "PASS" if speed_ratio >= INT8_TARGET else f"MISS (int8 target {INT8_TARGET}x)"
    if weights_ratio is not None and weights_ratio <= WEIGHTS_TARGET:
        ok = speed_ratio >= SPEEDUP_TARGET
        return "PASS" if ok else f"MISS ({SPEEDUP_TARGET}x target)"
    return ""


def markdown(rows: list[dict[str, Any]]) -> str:
    # each row against the bf16 compiled-decode of its own run (several runs' JSON may be joined)
    bases = {r.get("run_id"): r for r in rows if r.get("status") == "ok" and r["config"] == BF16}
    baseline = next((r.get("baseline") for r in rows if r.get("baseline")), BF16)
    lines = [(f"| configuration | decode tok/s | vs {BF16} | % of limit | weights MB | weights vs bf16 | "
              f"peak MB | NLL (vs {baseline}'s tokens) | agreement with {baseline} | target |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['config']} | {r.get('status')}: {r.get('reason')} | | | | | | | | |")
            continue
        base = bases.get(r.get("run_id")) or next(iter(bases.values()), None)
        base_speed = base["decode_tokens_per_s"] if base else None
        base_weights = base["weights_mb"] if base else None
        speed = r.get("decode_tokens_per_s")
        ratio = speed / base_speed if speed and base_speed else None
        wratio = r["weights_mb"] / base_weights if base_weights and r.get("weights_mb") else None
        agree = r.get("token_agreement")
        lines.append(
            f"| {r['config']} | {_num(speed)} | {'-' if ratio is None else f'{ratio:.2f}x'} | "
            f"{_num(r.get('percent_of_bandwidth_limit'))}% | {_num(r.get('weights_mb'), 1)} | "
            f"{'-' if wratio is None else f'{100 * wratio:.0f}%'} | {_num(r.get('peak_memory_mb'), 0)} | "
            f"{_num(r.get('nll'), 3)} | {'-' if agree is None else f'{100 * agree:.1f}%'} | "
            f"{verdict(r['config'], ratio, wratio)} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- profile


@dataclass
class StepProfile:
    steps: int
    window_ms: float  # first streamed token's copy end -> last one's
    kernel_ms: float  # GPU busy (kernels, copies) inside the window
    top_kernels: list[tuple[str, float, int]] = field(default_factory=list)  # name, ms per step, launches/step
    top_host: list[tuple[str, float]] = field(default_factory=list)  # host call, ms per step

    @property
    def per_step_ms(self) -> float:
        return self.window_ms / self.steps

    @property
    def kernel_per_step_ms(self) -> float:
        return self.kernel_ms / self.steps

    @property
    def gap_per_step_ms(self) -> float:
        return self.per_step_ms - self.kernel_per_step_ms


def _busy_ns(intervals: list[tuple[int, int]]) -> int:
    """Length of the union of [start, end) intervals (a stream's kernels may overlap copies)."""
    total, reach = 0, None
    for start, end in sorted(intervals):
        if reach is None or start >= reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def summarize(device_events: list[tuple[str, int, int]], host_events: list[tuple[str, int, int]],
              top: int = 12) -> StepProfile:
    """Device events (name, start_ns, end_ns): kernels, memcpys, memsets; host events likewise. The
    decode steps lie between consecutive device-to-host copies (one per streamed token)."""
    copies = sorted(end for name, _, end in device_events if "DtoH" in name)
    if len(copies) < 2:
        raise ValueError("fewer than two device-to-host copies: no decode step to measure")
    lo, hi = copies[0], copies[-1]
    steps = len(copies) - 1
    inside = [(n, s, e) for n, s, e in device_events if lo <= s < hi]
    per_kernel: dict[str, list[int]] = defaultdict(list)
    for name, start, end in inside:
        per_kernel[name].append(end - start)
    kernels = sorted(per_kernel.items(), key=lambda kv: -sum(kv[1]))[:top]
    per_host: dict[str, int] = defaultdict(int)
    for name, start, end in host_events:
        if lo <= start < hi:
            per_host[name] += end - start
    host = sorted(per_host.items(), key=lambda kv: -kv[1])[:top]
    return StepProfile(
        steps=steps, window_ms=(hi - lo) / 1e6, kernel_ms=_busy_ns([(s, e) for _, s, e in inside]) / 1e6,
        top_kernels=[(n, sum(d) / 1e6 / steps, round(len(d) / steps)) for n, d in kernels],
        top_host=[(n, d / 1e6 / steps) for n, d in host])


def profile_text(name: str, prof: StepProfile, tokens_per_s: float | None) -> str:
    lines = [f"### {name}: {prof.steps} decode steps, {prof.per_step_ms:.3f} ms/step"
             + (f" ({tokens_per_s:,.0f} tok/s timed)" if tokens_per_s else ""),
             (f"GPU busy {prof.kernel_per_step_ms:.3f} ms/step ({100 * prof.kernel_ms / prof.window_ms:.0f}%), "
              f"gaps {prof.gap_per_step_ms:.3f} ms/step (the GPU waiting for the host)"),
             "", "| kernel | ms/step | launches/step |", "|---|---:|---:|"]
    lines += [f"| {n[:90]} | {ms:.4f} | {k} |" for n, ms, k in prof.top_kernels]
    lines += ["", "| host call | ms/step |", "|---|---:|"]
    lines += [f"| {n[:90]} | {ms:.4f} |" for n, ms in prof.top_host]
    return "\n".join(lines)


def profile_config(name: str, model: str, dtype: str, prompt: str, prompt_tokens: int, new_tokens: int,
                   trace_dir: Path | None) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from arena.backends import make_backend
    from arena.backends.base import Sampling
    from arena.core import registry
    from arena.measure.clocks import TokenClock, timing_from_stamps
    from arena.models.spec import parse_model
    from arena.models.tokenizers import encode_prompt, load_tokenizer

    cfg = registry.get(name)
    av = registry.availability(cfg, dtype)
    if not av.ok:
        return f"### {name}: unavailable: {av.reason}"
    spec = parse_model(model)
    ids = torch.tensor([encode_prompt(spec, load_tokenizer(spec), prompt, prompt_tokens=prompt_tokens)])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backend = make_backend(cfg, spec, dtype, device)
    backend.load()
    backend.generate(ids, new_tokens, Sampling(), streamer=TokenClock())  # compile + capture
    clock = TokenClock()
    clock.begin()
    backend.generate(ids, new_tokens, Sampling(), streamer=clock)  # a timed run without the profiler
    speed = timing_from_stamps(clock.start, clock.stamps, 1).decode_tokens_per_s
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        backend.generate(ids, new_tokens, Sampling(), streamer=TokenClock())
        if device == "cuda":
            torch.cuda.synchronize()
    dev, host = [], []
    for e in prof.profiler.kineto_results.events():
        row = (e.name(), e.start_ns(), e.end_ns())
        (dev if e.device_type() == torch.autograd.DeviceType.CUDA else host).append(row)
    if trace_dir is not None:
        trace_dir.mkdir(parents=True, exist_ok=True)
        raw = trace_dir / f"{name.replace('+', '_')}.json"
        prof.export_chrome_trace(str(raw))
        with raw.open("rb") as src, gzip.open(f"{raw}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        raw.unlink()
    del backend
    if device == "cuda":
        torch.cuda.empty_cache()
    if not dev:
        return f"### {name}: {speed:,.0f} tok/s; no device timeline on {device} (the profile needs CUDA)"
    # host: CUDA runtime calls and the Python-side spans around them (nested spans overlap: a listing)
    return profile_text(name, summarize(dev, host, top=16), speed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="synthetic:llama-2-7b")
    p.add_argument("--configs", default=DEFAULT_CONFIGS)
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--prompt", default="Write a short story about a lighthouse keeper.")
    p.add_argument("--prompt-tokens", type=int, default=128, help="prompt length for synthetic models")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout", type=float, default=400.0, help="seconds per configuration")
    p.add_argument("--db", help="also record the results in this SQLite store")
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--from-json", nargs="+", help="print the table from results written by --json")
    p.add_argument("--profile", help="comma-separated configurations to profile in this process (CUDA)")
    p.add_argument("--profile-tokens", type=int, default=21, help="new tokens in a profiled generation")
    p.add_argument("--trace-dir", type=Path, help="also write each profile's Chrome trace (.json.gz) here")
    args = p.parse_args(argv)

    if args.profile:
        for name in args.profile.split(","):
            print(profile_config(name.strip(), args.model, args.dtype, args.prompt, args.prompt_tokens,
                                 args.profile_tokens, args.trace_dir), flush=True)
            print()
        return 0
    if args.from_json:
        rows = [row for path in args.from_json for row in json.loads(Path(path).read_text(encoding="utf-8"))]
        print(markdown(rows))
        return 0

    from arena.core.request import RequestError, RunRequest, validate
    from arena.data.store import Store
    from arena.execute import runner

    names = args.configs.split(",")
    if BF16 in names:  # first, so the run's baseline (eager absent) is bf16 compiled-decode
        names = [BF16] + [n for n in names if n != BF16]
    request = RunRequest(model=args.model, prompt=args.prompt, configs=names, max_new_tokens=args.max_new_tokens,
                         dtype=args.dtype, repeats=args.repeats, prompt_tokens=args.prompt_tokens,
                         timeout_s=args.timeout)
    try:
        prepared = validate(request)
    except RequestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = runner.execute(prepared, store=Store(args.db) if args.db else None)
    rows = [r.to_dict() for r in results]
    first = next((r for r in results if r.status == "ok"), None)
    print(f"model: {prepared.spec.display}   dtype: {prepared.dtype}   prompt tokens: {len(prepared.prompt_ids)}   "
          f"new tokens: {args.max_new_tokens}   repeats: {args.repeats} (median)")
    if first is not None:
        pk = first.env.get("packages", {})
        print(f"hardware: {first.hardware}   bandwidth: {_num(first.memory_bandwidth_gb_s, 0)} GB/s   "
              f"torch {pk.get('torch')}, torchao {pk.get('torchao')}, mslk-cuda {pk.get('mslk-cuda')}")
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
