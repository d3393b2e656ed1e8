"""Peak memory of one measured phase, one headline method per device for every backend.

- GPU headline: the process's device memory above its own idle CUDA context, from NVML
  (per-process where NVML shows this process; the device's used memory otherwise), summed over the
  GPUs a split model uses. PyTorch backends read it once at the end of the phase, adding the part
  of torch's reserved peak that was given back before then (torch's caching allocator keeps what
  it reserved, so its peak is still reserved at the end): no sampler thread runs beside timed
  PyTorch code. ONNX Runtime allocates outside torch, so there only a sampler thread (NVML every
  5 ms) can see its peak. torch allocated / reserved and the raw NVML figure (context included)
  stay as detail.
- CPU headline: resident memory above the worker's idle baseline after its imports (the model's
  own share; library pages differ by installation), from the kernel's high-water mark (VmHWM,
  reset through /proc/self/clear_refs), no thread. The whole-process peak is detail. The worker
  gives the heap's freed pages back after loading (malloc_trim), as it empties torch's CUDA cache
  on a GPU: what an in-place quantization freed is not the configuration's memory.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from arena.core.units import MiB
from arena.measure.nvml import Nvml

Headline = Literal["process", "torch-allocated"]


@dataclass
class MemoryReport:
    peak_memory_mb: float
    memory_method: str
    torch_allocated_mb: float | None = None
    torch_reserved_mb: float | None = None
    nvml_process_mb: float | None = None
    process_peak_memory_mb: float | None = None
    device_peak_memory_mb: dict[str, float] = field(default_factory=dict)  # "cuda:0", "cpu" -> MB (headline method)


def release_freed_memory() -> None:
    """Give the heap's freed pages back to the system (glibc malloc_trim): after a load (what an
    in-place quantization freed) and between configurations of one process, so that resident
    memory is what the process holds now, not freed-but-kept pages (the CPU headline is RSS
    above the idle baseline)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to trim this way
        pass


def _status_kb(key: str) -> int | None:
    try:
        match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


class RssPeak:
    """This process's resident-memory peak since reset(): the kernel's VmHWM, reset by writing 5
    to /proc/self/clear_refs (Linux); elsewhere a 5 ms sampler thread (method says which)."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process(os.getpid())
        self.hwm = self._reset_hwm()
        self._peak, self._stop, self._thread = 0, threading.Event(), None
        if not self.hwm:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self.method = "VmHWM, reset per phase" if self.hwm else "sampled every 5 ms"

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return _status_kb("VmHWM") is not None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self.process.memory_info().rss)
            self._stop.wait(0.005)

    def now(self) -> int:
        return int(self.process.memory_info().rss)

    def reset(self) -> None:
        if self.hwm:
            self._reset_hwm()
        self._peak = self.now()

    def peak(self) -> int:
        if self.hwm:
            return (_status_kb("VmHWM") or 0) * 1024
        return max(self._peak, self.now())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)


@dataclass
class MemoryTracker:
    """Create it after the worker's imports and before loading: it records the idle baseline
    (RSS on CPU; on CUDA the process's memory with only its CUDA context). reset_peak() starts a
    phase (warm-up, timed repeats); phase_peak_mb() / report() read it. `gpus`: every GPU a split
    model uses (default: the device's own); `track_cpu`: part of the model is on the cpu;
    `sample`: the backend allocates outside torch (ONNX Runtime), so NVML is sampled in a thread."""

    device: str
    gpus: tuple[int, ...] = ()
    track_cpu: bool = False
    sample: bool = False
    headline: Headline = "process"
    interval_s: float = 0.005

    def __post_init__(self) -> None:
        self.on_cuda = self.device.startswith("cuda")
        self.rss = RssPeak()
        self.rss_idle = self.rss.now()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.nvml: dict[int, Nvml] = {}
        self.idle: dict[int, int | None] = {}
        self.per_process = True
        if not self.on_cuda:
            return
        import torch

        if not self.gpus:
            self.gpus = (torch.device(self.device).index or 0,)
        for gpu in self.gpus:  # create each CUDA context now, so the idle baseline includes it
            torch.zeros(1, device=f"cuda:{gpu}")
            torch.cuda.synchronize(gpu)
        torch.cuda.empty_cache()
        self.nvml = {gpu: Nvml.for_cuda_device(gpu) for gpu in self.gpus}
        pid = os.getpid()
        self.per_process = all(n.process_used_bytes(pid) is not None for n in self.nvml.values())
        self.idle = {gpu: self._nvml_used(gpu) for gpu in self.gpus}
        self._sampled: dict[int, int] = {gpu: 0 for gpu in self.gpus}
        if self.sample:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    # ----------------------------------------------------------------- readings

    def _nvml_used(self, gpu: int) -> int | None:
        n = self.nvml[gpu]
        return n.process_used_bytes(os.getpid()) if self.per_process else n.device_used_bytes()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for gpu in self.gpus:
                used = self._nvml_used(gpu)
                if used is not None:
                    self._sampled[gpu] = max(self._sampled[gpu], used)
            self._stop.wait(self.interval_s)

    def reset_peak(self) -> None:
        """Start a phase: every peak counter forgets what came before."""
        self.rss.reset()
        if self.on_cuda:
            import torch

            for gpu in self.gpus:
                torch.cuda.synchronize(gpu)
                torch.cuda.reset_peak_memory_stats(gpu)
                self._sampled[gpu] = self._nvml_used(gpu) or 0

    def _gpu_peaks(self) -> tuple[dict[str, float], dict[str, float], str]:
        """Headline MB per GPU, raw NVML MB per GPU, and the method."""
        import torch

        heads, raw = {}, {}
        how = sorted({n.how for n in self.nvml.values()})
        source = "per-process" if self.per_process else "device used memory (this process not visible to NVML)"
        for gpu in self.gpus:
            torch.cuda.synchronize(gpu)
            now = self._nvml_used(gpu)
            idle = self.idle.get(gpu)
            if self.sample:
                now = max(now or 0, self._sampled[gpu]) or None
            if now is None or idle is None:
                continue
            given_back = 0 if self.sample else max(0, torch.cuda.max_memory_reserved(gpu) - torch.cuda.memory_reserved(gpu))
            heads[f"cuda:{gpu}"] = (now - idle + given_back) / MiB
            raw[f"cuda:{gpu}"] = (now + given_back) / MiB
        when = "sampled every 5 ms (ONNX Runtime allocates outside torch)" if self.sample else \
            "read at the end of the phase plus torch's reserved peak given back before it"
        method = f"NVML {source} device memory above the idle CUDA context, {when}; NVML {', '.join(how)}"
        if len(self.gpus) > 1:
            method = f"sum over {len(self.gpus)} GPUs of " + method
        return heads, raw, method

    def now_mb(self) -> float | None:
        """What the process holds now above its idle baseline, by the headline method's source
        (resident memory on the CPU, NVML on GPUs): a load's share is the difference of two
        readings (a draft model loaded after the model)."""
        if not self.on_cuda:
            return (self.rss.now() - self.rss_idle) / MiB
        import torch

        used = 0
        for gpu in self.gpus:
            torch.cuda.synchronize(gpu)
            now, idle = self._nvml_used(gpu), self.idle.get(gpu)
            if now is None or idle is None:
                return None
            used += now - idle
        return used / MiB

    def phase_peak_mb(self) -> float | None:
        """The headline peak of the phase since reset_peak()."""
        return self.report().peak_memory_mb

    def report(self, torch_backend: bool = True) -> MemoryReport:
        rss_peak = self.rss.peak()
        model_rss = max(0, rss_peak - self.rss_idle) / MiB
        cpu = {"cpu": model_rss} if self.track_cpu or not self.on_cuda else {}
        if not self.on_cuda:
            method = (f"resident memory above the worker's idle baseline after imports ({self.rss_idle / MiB:.0f} MB); "
                      f"peak from {self.rss.method}")
            return MemoryReport(model_rss, method, process_peak_memory_mb=rss_peak / MiB, device_peak_memory_mb=cpu)
        import torch

        allocated = sum(torch.cuda.max_memory_allocated(g) for g in self.gpus) / MiB
        reserved = sum(torch.cuda.max_memory_reserved(g) for g in self.gpus) / MiB
        heads, raw, method = self._gpu_peaks()
        nvml_mb = sum(raw.values()) if raw else None
        if self.headline == "torch-allocated":
            per = {f"cuda:{g}": torch.cuda.max_memory_allocated(g) / MiB for g in self.gpus}
            return MemoryReport(allocated, "torch.cuda.max_memory_allocated", allocated, reserved, nvml_mb,
                                device_peak_memory_mb=per)
        if len(heads) < len(self.gpus):  # NVML unreadable here
            if not torch_backend:
                return MemoryReport(float("nan"), "unavailable (NVML could not be read)")
            per = {f"cuda:{g}": torch.cuda.max_memory_reserved(g) / MiB for g in self.gpus}
            return MemoryReport(reserved, "torch.cuda.max_memory_reserved (NVML could not be read; "
                                "excludes the CUDA context, as the NVML method does)", allocated, reserved,
                                device_peak_memory_mb={**per, **cpu})
        return MemoryReport(sum(heads.values()), method, allocated if torch_backend else None,
                            reserved if torch_backend else None, nvml_mb,
                            process_peak_memory_mb=rss_peak / MiB if self.track_cpu else None,
                            device_peak_memory_mb={**heads, **cpu})

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        self.rss.close()
