"""Point readings of memory from outside a worker: what a process holds on the host and on a
GPU, and what a device has in all and free. The warm pool sizes its budget with these; none is
a measurement of a configuration (arena/measure/memory.py is). Each is best-effort: 0 or None
where it cannot be read."""

from __future__ import annotations

from arena.core.units import MiB


def gpu_index(device: str) -> int | None:
    """The CUDA index of "cuda" / "cuda:N"; None off CUDA."""
    if not device.startswith("cuda"):
        return None
    return int(device.split(":")[1]) if ":" in device else 0


def host_mb(pid: int) -> float:
    """Resident memory of `pid` and every process it started, in MB (0 once it is gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return (proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))) / MiB
    except psutil.Error:
        return 0.0


def gpu_mb(pid: int, device: str) -> float:
    """What NVML lists `pid` as holding on `device`, in MB (0 off CUDA or where it is not listed)."""
    index = gpu_index(device)
    if index is None:
        return 0.0
    from arena.measure.nvml import Nvml

    used = Nvml(index).process_used_bytes(pid)
    return used / MiB if used else 0.0


def _device_memory(index: int):
    from arena.measure.nvml import Nvml

    nvml = Nvml(index)
    if not nvml.ok:
        return None
    try:
        return nvml.pynvml.nvmlDeviceGetMemoryInfo(nvml.handle)
    except Exception:
        return None


def _memory_mb(device: str, host: str, gpu: str) -> float | None:
    """Field `host` of psutil's virtual memory for "cpu", else field `gpu` of NVML's memory
    info for the GPU, in MB; None if unknown."""
    index = gpu_index(device)
    if index is None:
        import psutil

        return getattr(psutil.virtual_memory(), host) / MiB
    info = _device_memory(index)
    return getattr(info, gpu) / MiB if info is not None else None


def free_mb(device: str) -> float | None:
    """Memory still available on `device` (the host's for "cpu"), in MB; None if unknown."""
    return _memory_mb(device, "available", "free")


def total_mb(device: str) -> float | None:
    """The size of `device`'s memory (the host's for "cpu"), in MB; None if unknown."""
    return _memory_mb(device, "total", "total")
