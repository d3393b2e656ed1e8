"""The memory limit of one configuration's worker (ARENA_WORKER_MEMORY_MB).

- CPU: the runner watches the worker's resident memory (its children included) from outside
  and kills it (SIGKILL) the moment it passes the limit; the configuration fails with
  `exceeded(limit)` as its reason. The count is the whole process, Python and torch included.
- CUDA: the worker caps the torch caching allocator with
  `torch.cuda.set_per_process_memory_fraction`, so an allocation past the limit raises
  torch's out-of-memory error inside the worker, which reports `exceeded(limit)`. Memory that
  ONNX Runtime allocates outside torch is not covered by this cap.
"""

from __future__ import annotations

import threading

from arena.core.units import MiB


def exceeded(limit_mb: float, seen_mb: float | None = None, what: str = "resident memory") -> str:
    """The failure reason of a configuration stopped at the limit."""
    seen = f" ({what} reached {seen_mb:.0f} MB)" if seen_mb is not None else ""
    return f"exceeded the memory limit of {limit_mb:g} MB{seen}"


class RssWatch:
    """Samples a process's resident memory every `interval` seconds in a thread and kills the
    process (and its children) as soon as the total passes `limit_mb`."""

    def __init__(self, pid: int, limit_mb: float, interval: float = 0.02) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self.limit_mb = limit_mb
        self.interval = interval
        self.peak_mb = 0.0
        self.exceeded_mb: float | None = None  # the reading that broke the limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"rss-watch-{pid}", daemon=True)

    def start(self) -> RssWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _rss_mb(self) -> float:
        import psutil

        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total / MiB

    def _watch(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                rss = self._rss_mb()
            except psutil.Error:  # the process is gone
                return
            self.peak_mb = max(self.peak_mb, rss)
            if rss > self.limit_mb:
                self.exceeded_mb = rss
                self._kill()
                return
            self._stop.wait(self.interval)

    def _kill(self) -> None:
        import psutil

        try:
            children = self._proc.children(recursive=True)
        except psutil.Error:
            children = []
        for proc in [self._proc, *children]:
            try:
                proc.kill()
            except psutil.Error:
                pass


def cap_cuda(limit_mb: float, device: str) -> None:
    """In the worker: torch allocations on `device` beyond `limit_mb` raise OutOfMemoryError."""
    import torch

    index = torch.device(device).index or 0
    total = torch.cuda.get_device_properties(index).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, limit_mb * MiB / total), index)
