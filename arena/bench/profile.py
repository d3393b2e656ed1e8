"""Where a decode step's time goes: torch.profiler over one generation of a configuration loaded in
this process, after a warm-up at the timed shape. Each streamed token is one device-to-host copy
on the GPU timeline; between the first and the last of them: kernel time per decode step, the
gaps between kernels, and the top kernels and host calls per step. Meant for the compiled-decode
configurations (exactly one such copy per token); CUDA only.

The step is split into what bounds it: attention kernels, short kernels (under 5 us: norms,
rotary, residual adds, and on a small model its matmuls too), the rest (on a 7B model the
weight-reading matmuls), copies, the short gaps between consecutive kernels inside the step (a
CUDA graph's launch latency) and the longer ones (the host: a replay's launch, waiting to
stream). With the weights' bytes and the measured copy bandwidth it also says how fast the
kernels read the weights. A saved Chrome trace is analysed the same way:

    python -m arena.bench.profile TRACE.json.gz --weights-gb 13.21 --copy-gb-s 4202
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

SHORT_NS = 5_000  # a kernel or a gap under this is "short": launch-latency scale on a current GPU
# attention libraries' kernels (cuDNN, flash-attn, torch's flash / memory-efficient); inductor's
# own Triton kernels are named after the ops they fuse, attention's inputs included: not these
ATTENTION = re.compile(r"attention|flash|fmha|sdpa|attn", re.I)


def is_attention(name: str) -> bool:
    return not name.startswith("triton") and ATTENTION.search(name) is not None


def is_copy(name: str) -> bool:
    return name.startswith(("Memcpy", "Memset"))


@dataclass
class StepProfile:
    steps: int
    window_ms: float  # first streamed token's copy end -> last one's
    kernel_ms: float  # GPU busy (kernels, copies) inside the window
    top_kernels: list[tuple[str, float, int]] = field(default_factory=list)  # name, ms per step, launches/step
    top_host: list[tuple[str, float]] = field(default_factory=list)  # host call, ms per step
    events: int = 0  # device events (kernels, copies) inside the window
    long_ms: float = 0.0  # kernels of SHORT_NS or more, not attention: on a large model, the matmuls
    attention_ms: float = 0.0  # attention kernels
    short_ms: float = 0.0  # other kernels under SHORT_NS
    short_count: int = 0
    copy_ms: float = 0.0  # memcpy / memset (the token's copy to the host)
    graph_gap_ms: float = 0.0  # idle stretches under SHORT_NS between consecutive device events
    graph_gap_count: int = 0
    graph_gap_median_us: float = 0.0
    host_gap_ms: float = 0.0  # longer idle stretches

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
    gaps, reach = [], lo  # idle stretches of the window: before, between and after its events
    for _, start, end in sorted(inside, key=lambda e: e[1]):
        if start > reach:
            gaps.append(start - reach)
        reach = max(reach, end)
    if hi > reach:
        gaps.append(hi - reach)
    graph_gaps = [g for g in gaps if g < SHORT_NS]
    kernels_only = [(n, e - s) for n, s, e in inside if not is_copy(n) and not is_attention(n)]
    short = [d for _, d in kernels_only if d < SHORT_NS]
    return StepProfile(
        steps=steps, window_ms=(hi - lo) / 1e6, kernel_ms=_busy_ns([(s, e) for _, s, e in inside]) / 1e6,
        top_kernels=[(n, sum(d) / 1e6 / steps, round(len(d) / steps)) for n, d in kernels],
        top_host=[(n, d / 1e6 / steps) for n, d in host],
        events=len(inside),
        long_ms=sum(d for _, d in kernels_only if d >= SHORT_NS) / 1e6,
        attention_ms=sum(e - s for n, s, e in inside if is_attention(n)) / 1e6,
        short_ms=sum(short) / 1e6, short_count=len(short),
        copy_ms=sum(e - s for n, s, e in inside if is_copy(n)) / 1e6,
        graph_gap_ms=sum(graph_gaps) / 1e6, graph_gap_count=len(graph_gaps),
        graph_gap_median_us=statistics.median(graph_gaps) / 1e3 if graph_gaps else 0.0,
        host_gap_ms=sum(g for g in gaps if g >= SHORT_NS) / 1e6)


def breakdown_text(prof: StepProfile, weights_gb: float | None = None, copy_gb_s: float | None = None) -> str:
    """The step split into what bounds it, per step, with each part's share of the step. With the
    weights' size and the copy bandwidth: how fast the kernels read the weights."""
    n, step = prof.steps, prof.per_step_ms

    def row(part: str, ms: float, note: str = "") -> str:
        return f"| {part} | {ms / n:.3f} | {100 * ms / n / step:.1f}% | {note} |"

    lines = [f"Where a step goes ({prof.events / n:.0f} kernels and copies a step):", "",
             "| part | ms/step | share | |", "|---|---:|---:|---|",
             row("kernels of 5 us or more, not attention", prof.long_ms),
             row("attention kernels", prof.attention_ms),
             row("short kernels (under 5 us)", prof.short_ms, f"{prof.short_count / n:.0f} a step"),
             row("copies", prof.copy_ms, "the token to the host"),
             row("gaps under 5 us between kernels", prof.graph_gap_ms,
                 f"{prof.graph_gap_count / n:.0f} a step, median {prof.graph_gap_median_us:.2f} us: launch latency"),
             row("longer gaps", prof.host_gap_ms, "the host: a replay's launch, waiting to stream")]
    if weights_gb and copy_gb_s:
        def rate(ms: float) -> str:
            gb_s = weights_gb / (ms / n / 1e3)
            return f"{gb_s:,.0f} GB/s ({100 * gb_s / copy_gb_s:.0f}%)"

        limit_ms = 1e3 * weights_gb / copy_gb_s
        lines += ["", f"The {weights_gb:.2f} GB of weights, against the {copy_gb_s:,.0f} GB/s copy bandwidth (a limit "
                      f"of {limit_ms:.3f} ms a step), are read at {rate(prof.long_ms)} by the kernels of 5 us or "
                      f"more, at {rate(prof.long_ms + prof.short_ms)} counting the short kernels too, and at "
                      f"{100 * limit_ms / step:.0f}% over the whole step."]
    return "\n".join(lines)


def chrome_trace_events(path: str | Path) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """(device events, host events) as (name, start_ns, end_ns) from a Chrome trace written by
    torch.profiler (export_chrome_trace; gzip or not)."""
    raw = Path(path).read_bytes()
    data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    device, host = [], []
    for e in data["traceEvents"] if isinstance(data, dict) else data:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        row = (e["name"], round(e["ts"] * 1e3), round((e["ts"] + e["dur"]) * 1e3))
        if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"):
            device.append(row)
        elif e.get("cat") in ("cpu_op", "cuda_runtime", "cuda_driver"):
            host.append(row)
    return device, host


def profile_text(name: str, prof: StepProfile, tokens_per_s: float | None) -> str:
    lines = [f"### {name}: {prof.steps} decode steps, {prof.per_step_ms:.3f} ms/step"
             + (f" ({tokens_per_s:,.0f} tok/s timed)" if tokens_per_s else ""),
             (f"GPU busy {prof.kernel_per_step_ms:.3f} ms/step ({100 * prof.kernel_ms / prof.window_ms:.0f}%), "
              f"gaps {prof.gap_per_step_ms:.3f} ms/step (between kernels and waiting for the host: split below)"),
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
    from arena.techniques import registry
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
    weights_gb = backend.weights_bytes() / 1e9
    del backend
    if device == "cuda":
        torch.cuda.empty_cache()
    if not dev:
        return f"### {name}: {speed:,.0f} tok/s; no device timeline on {device} (the profile needs CUDA)"
    # host: CUDA runtime calls and the Python-side spans around them (nested spans overlap: a listing)
    from arena.measure import bandwidth

    copy = bandwidth.for_device(device)
    prof = summarize(dev, host, top=16)
    return profile_text(name, prof, speed) + "\n\n" + breakdown_text(prof, weights_gb, copy.gb_s if copy else None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m arena.bench.profile",
                                 description="Where a decode step's time goes, from a saved Chrome trace.")
    ap.add_argument("trace", help="a torch.profiler Chrome trace (.json or .json.gz) of a compiled decode")
    ap.add_argument("--weights-gb", type=float, help="the weights' size (1e9 bytes), for their read rate")
    ap.add_argument("--copy-gb-s", type=float, help="the device's measured copy bandwidth, GB/s")
    ap.add_argument("--name", default="", help="a title")
    args = ap.parse_args(argv)
    prof = summarize(*chrome_trace_events(args.trace), top=16)
    print(profile_text(args.name or Path(args.trace).name, prof, None))
    print()
    print(breakdown_text(prof, args.weights_gb, args.copy_gb_s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
