"""Where a decode step's time goes: torch.profiler over one generation of a configuration loaded in
this process, after a warm-up at the timed shape. Each streamed token is one device-to-host copy
on the GPU timeline; between the first and the last of them: kernel time per decode step, the
gaps between kernels (host time the GPU waited for), and the top kernels and host calls per step.
Meant for the compiled-decode configurations (exactly one such copy per token); CUDA only."""

from __future__ import annotations

import gzip
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


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
    del backend
    if device == "cuda":
        torch.cuda.empty_cache()
    if not dev:
        return f"### {name}: {speed:,.0f} tok/s; no device timeline on {device} (the profile needs CUDA)"
    # host: CUDA runtime calls and the Python-side spans around them (nested spans overlap: a listing)
    return profile_text(name, summarize(dev, host, top=16), speed)
