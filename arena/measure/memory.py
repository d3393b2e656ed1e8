"""Peak memory of one measured phase.

torch's max_memory_allocated/reserved per GPU, NVML process memory (ONNX Runtime allocates
outside torch) sampled in a thread on CUDA; the process's resident-memory high-water mark on
the CPU.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from arena.core.units import MiB
from arena.measure.nvml import Nvml


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
        self.nvml = Nvml(self.gpus[0]) if self.on_cuda else None
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
            rss = self._peak / MiB
            return MemoryReport(rss, f"rss-peak (process resident memory, {every})", rss_peak_mb=rss,
                                device_peak_memory_mb={"cpu": rss})
        import torch

        for gpu in self.gpus:
            torch.cuda.synchronize(gpu)
        self._sample_once()
        per_gpu = {f"cuda:{gpu}": torch.cuda.max_memory_allocated(gpu) / MiB for gpu in self.gpus}
        allocated = sum(per_gpu.values())
        reserved = sum(torch.cuda.max_memory_reserved(gpu) for gpu in self.gpus) / MiB
        nvml_mb = self._peak / MiB if self._peak else None
        cpu = {"cpu": self._rss_peak / MiB} if self.track_cpu else {}
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
