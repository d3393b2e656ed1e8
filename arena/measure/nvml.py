"""NVIDIA's management library (nvidia-ml-py), best-effort: every reading is None where it
cannot be had (no GPU, no permission, a container that hides process ids)."""

from __future__ import annotations


class Nvml:
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
