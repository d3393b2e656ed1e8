"""NVIDIA's management library (nvidia-ml-py), best-effort: every reading is None where it
cannot be had (no GPU, no permission, a container that hides process ids).

NVML numbers GPUs its own way (all GPUs of the machine, PCI order); CUDA numbers the visible ones
(CUDA_VISIBLE_DEVICES, fastest first by default). `for_cuda_device` finds the NVML device of a
CUDA device by its UUID (PCI bus id as a fallback), never by index.
"""

from __future__ import annotations

from typing import Any


def cuda_identity(index: int) -> tuple[str | None, str | None]:
    """(UUID as NVML writes it, "GPU-..."; PCI bus id) of the visible CUDA device `index`."""
    import torch

    uuid = bus = None
    try:
        props = torch.cuda.get_device_properties(index)
        raw = str(getattr(props, "uuid", "") or "")
        if raw:
            uuid = raw if raw.startswith(("GPU-", "MIG-")) else "GPU-" + raw
        if hasattr(props, "pci_bus_id"):
            bus = f"{getattr(props, 'pci_domain_id', 0):08X}:{props.pci_bus_id:02X}:{getattr(props, 'pci_device_id', 0):02X}.0"
    except Exception:
        pass
    return uuid, bus


class Nvml:
    """Thin wrapper over nvidia-ml-py; every call is best-effort (None when unavailable)."""

    def __init__(self, index: int = 0, handle: Any = None, how: str = "NVML index") -> None:
        self.handle = handle
        self.how = how  # how the device was matched, for the method strings
        try:
            import pynvml

            pynvml.nvmlInit()
            self.pynvml = pynvml
            if self.handle is None:
                self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:
            self.handle = None

    @classmethod
    def for_cuda_device(cls, index: int) -> "Nvml":
        """The NVML device that is CUDA device `index` of this process (CUDA_VISIBLE_DEVICES respected)."""
        probe = cls(handle=False, how="")  # initialises NVML only
        probe.handle = None
        uuid, bus = cuda_identity(index)
        try:
            import pynvml

            if uuid:
                try:
                    return cls(handle=pynvml.nvmlDeviceGetHandleByUUID(uuid), how="matched by UUID")
                except Exception:
                    pass
            if bus:
                return cls(handle=pynvml.nvmlDeviceGetHandleByPciBusId_v2(bus), how="matched by PCI bus id")
        except Exception:
            pass
        return cls(index, how="matched by index (UUID and PCI bus id unavailable)")

    @property
    def ok(self) -> bool:
        return bool(self.handle)

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
