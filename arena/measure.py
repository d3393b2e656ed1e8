"""Timers and trackers, following optimum-benchmark's rules.

- Each new token is timestamped in a streamer's put(), after the token ids are copied to the
  host: that copy waits for the device, so the timestamps are synchronized (no CUDA event
  needed, and no extra sync beyond what streaming needs).
- TTFT = first token's timestamp - start of generate (prefill + first selection).
- Decode tokens/s = batch x (new - 1) / (last token - first token).
- Per-token latencies are the gaps between consecutive token timestamps.
- Peak memory: torch's max_memory_allocated/reserved, NVML process memory (ONNX Runtime
  allocates outside torch) sampled in a thread on CUDA; process RSS high-water mark on CPU.
- Energy: NVML's total-energy counter around the timed region.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

MB = 2**20


class TokenClock:
    """A transformers streamer: timestamps every generated step and forwards row 0's new
    token ids to `on_tokens` (for live text)."""

    def __init__(self, on_tokens: Callable[[list[int]], None] | None = None) -> None:
        self.on_tokens = on_tokens
        self.start = 0.0
        self.stamps: list[float] = []
        self._prompt_seen = False

    def begin(self) -> None:
        self.start = time.perf_counter()
        self.stamps = []
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        ids = value.tolist()  # device -> host copy: waits for the step to finish
        now = time.perf_counter()
        if not self._prompt_seen:  # generate() first hands the streamer the prompt itself
            self._prompt_seen = True
            return
        self.stamps.append(now)
        if self.on_tokens is not None:
            # generate() hands one token per row, shape (batch,); others hand (batch, n) columns.
            row0 = ids[0] if isinstance(ids, list) and ids else ids
            self.on_tokens(row0 if isinstance(row0, list) else [row0])

    def end(self) -> None:
        pass


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Timing:
    ttft_ms: float
    decode_tokens_per_s: float
    e2e_tokens_per_s: float
    token_latency_p50_ms: float
    token_latency_p90_ms: float
    total_s: float


def timing_from_stamps(start: float, stamps: list[float], batch: int) -> Timing:
    if not stamps:
        raise ValueError("no token was generated")
    n = len(stamps)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    decode_s = stamps[-1] - stamps[0]
    total = stamps[-1] - start
    return Timing(
        ttft_ms=(stamps[0] - start) * 1e3,
        decode_tokens_per_s=batch * (n - 1) / decode_s if n > 1 and decode_s > 0 else float("nan"),
        e2e_tokens_per_s=batch * n / total,
        token_latency_p50_ms=percentile(gaps, 50) * 1e3 if gaps else float("nan"),
        token_latency_p90_ms=percentile(gaps, 90) * 1e3 if gaps else float("nan"),
        total_s=total,
    )


def median_timing(timings: list[Timing]) -> tuple[Timing, dict[str, list[float]]]:
    """The median of each metric over repeats, and the per-repeat values (the spread)."""
    keys = Timing.__dataclass_fields__.keys()
    spread = {k: [getattr(t, k) for t in timings] for k in keys}
    return Timing(**{k: statistics.median(v) for k, v in spread.items()}), spread


# ---------------------------------------------------------------- NVML


class _Nvml:
    """Thin wrapper over nvidia-ml-py; every call is best-effort (None when unavailable)."""

    def __init__(self, index: int = 0) -> None:
        self.handle = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.pynvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:
            self.handle = None

    @property
    def ok(self) -> bool:
        return self.handle is not None

    def process_used_bytes(self, pid: int) -> int | None:
        if not self.ok:
            return None
        try:
            for proc in self.pynvml.nvmlDeviceGetComputeRunningProcesses(self.handle):
                if proc.pid == pid and proc.usedGpuMemory is not None:
                    return int(proc.usedGpuMemory)
        except Exception:
            pass
        return None

    def device_used_bytes(self) -> int | None:
        if not self.ok:
            return None
        try:
            return int(self.pynvml.nvmlDeviceGetMemoryInfo(self.handle).used)
        except Exception:
            return None

    def energy_mj(self) -> int | None:
        if not self.ok:
            return None
        try:
            return int(self.pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except Exception:
            return None


# ---------------------------------------------------------------- memory


@dataclass
class MemoryReport:
    peak_memory_mb: float
    memory_method: str
    torch_allocated_mb: float | None = None
    torch_reserved_mb: float | None = None
    nvml_process_mb: float | None = None
    rss_peak_mb: float | None = None
    device_peak_memory_mb: dict[str, float] = field(default_factory=dict)  # "cuda:0", "cpu" -> MB


@dataclass
class MemoryTracker:
    """Peak memory, sampled in a thread (RSS on CPU, NVML on CUDA) plus torch's own peak
    counters; reset_peak() after loading makes the report cover generation only. `gpus`: every
    GPU a split model uses (default: the device's own); `track_cpu`: part of the model is on cpu."""

    device: str
    interval_s: float = 0.005
    gpus: tuple[int, ...] = ()
    track_cpu: bool = False
    _peak: int = 0
    _method: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        import psutil

        self.process = psutil.Process(os.getpid())
        self.on_cuda = self.device.startswith("cuda")
        self._rss_peak = 0
        if self.on_cuda and not self.gpus:
            import torch

            self.gpus = (torch.device(self.device).index or 0,)
        self.nvml = _Nvml(self.gpus[0]) if self.on_cuda else None
        self._device_base = None
        if self.on_cuda:
            import torch

            # Before CUDA is initialized in this process there is nothing to reset (and torch
            # refuses with "Invalid device argument").
            if torch.cuda.is_initialized():
                for gpu in self.gpus:
                    torch.cuda.reset_peak_memory_stats(gpu)
            # Without per-process accounting (containers hide PIDs), fall back to the device's
            # used memory minus what was in use before this worker touched the GPU.
            self._device_base = self.nvml.device_used_bytes() if self.nvml else None
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample_once(self) -> None:
        if self.track_cpu:
            self._rss_peak = max(self._rss_peak, self.process.memory_info().rss)
        if not self.on_cuda:
            value, method = self.process.memory_info().rss, "rss"
        else:
            value, method = self.nvml.process_used_bytes(self.process.pid), "nvml-process"
            if value is None:
                used = self.nvml.device_used_bytes()
                value = used - self._device_base if used is not None and self._device_base is not None else None
                method = "nvml-device-delta"
        if value is not None and value >= self._peak:
            self._peak, self._method = value, method

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._sample_once()
            self._stop.wait(self.interval_s)

    def reset_peak(self) -> None:
        """Forget the load-time peak so that report() covers generation only."""
        self._peak = self._rss_peak = 0
        if self.on_cuda:
            import torch

            if torch.cuda.is_initialized():  # not with ONNX Runtime, whose CUDA is its own
                for gpu in self.gpus:
                    torch.cuda.synchronize(gpu)
                    torch.cuda.reset_peak_memory_stats(gpu)

    def report(self, torch_backend: bool) -> MemoryReport:
        every = f"sampled every {self.interval_s * 1e3:.0f} ms during generation"
        if not self.on_cuda:
            self._sample_once()
            rss = self._peak / MB
            return MemoryReport(rss, f"rss-peak (process resident memory, {every})", rss_peak_mb=rss,
                                device_peak_memory_mb={"cpu": rss})
        import torch

        for gpu in self.gpus:
            torch.cuda.synchronize(gpu)
        self._sample_once()
        per_gpu = {f"cuda:{gpu}": torch.cuda.max_memory_allocated(gpu) / MB for gpu in self.gpus}
        allocated = sum(per_gpu.values())
        reserved = sum(torch.cuda.max_memory_reserved(gpu) for gpu in self.gpus) / MB
        nvml_mb = self._peak / MB if self._peak else None
        cpu = {"cpu": self._rss_peak / MB} if self.track_cpu else {}
        if torch_backend:
            method = "torch.cuda.max_memory_allocated during generation"
            if len(self.gpus) > 1:
                method = f"sum over {', '.join(per_gpu)} of {method} (per GPU in device_peak_memory_mb)"
            return MemoryReport(allocated, method, allocated, reserved, nvml_mb,
                                device_peak_memory_mb={**per_gpu, **cpu})
        if nvml_mb is None:
            return MemoryReport(float("nan"), "unavailable (NVML could not be read)")
        return MemoryReport(nvml_mb, f"{self._method} (NVML, {every}; includes the CUDA context)",
                            allocated, reserved, nvml_mb, device_peak_memory_mb={f"cuda:{self.gpus[0]}": nvml_mb})

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)


class EnergyMeter:
    """Joules spent by the GPU between start() and stop() (NVML total energy counter)."""

    def __init__(self, device: str) -> None:
        self.nvml = _Nvml() if device.startswith("cuda") else None
        self._start: int | None = None
        self.joules: float | None = None

    def start(self) -> None:
        self._start = self.nvml.energy_mj() if self.nvml else None

    def stop(self) -> float | None:
        end = self.nvml.energy_mj() if self.nvml else None
        self.joules = (end - self._start) / 1e3 if end is not None and self._start is not None else None
        return self.joules
