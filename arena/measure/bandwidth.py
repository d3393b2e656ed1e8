"""The device's memory bandwidth, the yardstick's denominator (see arena/measure/bandwidth_limit.py).

The bandwidth is measured once per device (a large device-to-device copy on a GPU timed with
CUDA events; on the CPU the better of a large tensor copy, bytes read + written, and a read-only
sum, bytes read, since decoding only reads its weights and a copy's writes cost the CPU an extra
read of each written line; best of several) and cached as JSON under ARENA_HOME, keyed by the
hardware label of `arena.core.env`. A re-measurement (`remeasure`, when a result beats its limit)
keeps the better of the old and new figures: a copy slowed by a busy machine never lowers it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena.core.paths import arena_home, write_text_atomic
from arena.core.units import MiB

CACHE_FILE = "memory_bandwidth.json"


@dataclass(frozen=True)
class Bandwidth:
    gb_s: float  # 1e9 bytes per second, read + written
    method: str
    hardware: str


def _cache_path() -> Path:
    return arena_home() / CACHE_FILE


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def cached(hardware: str) -> Bandwidth | None:
    """The cached measurement for a hardware label, or None."""
    entry = _read_cache().get(hardware)
    if not isinstance(entry, dict) or not isinstance(entry.get("gb_s"), (int, float)):
        return None
    return Bandwidth(float(entry["gb_s"]), str(entry.get("method", "")), hardware)


def _store(bw: Bandwidth) -> None:
    data = _read_cache()
    data[bw.hardware] = {"gb_s": bw.gb_s, "method": bw.method,
                         "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_text_atomic(_cache_path(), json.dumps(data, indent=2, sort_keys=True))


def measure_gpu(size_mb: int = 1024, repeats: int = 10) -> tuple[float, str]:
    """Device-to-device copy of `size_mb`, timed with CUDA events; best of `repeats`."""
    import torch

    n = size_mb * MiB
    src = torch.empty(n, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * n / best / 1e9, f"device-to-device copy of {size_mb} MiB, CUDA events, best of {repeats}"


def measure_cpu(size_mb: int = 256, repeats: int = 10) -> tuple[float, str]:
    """Host memory: a tensor copy of `size_mb` (bytes read + written) and a read-only sum of it
    (bytes read), timed with perf_counter; the better of the two, each best of `repeats`."""
    import torch

    n = size_mb * MiB
    src = torch.ones(n // 4, dtype=torch.float32)
    dst = torch.zeros_like(src)
    copy = read = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        t1 = time.perf_counter()
        src.sum()
        t2 = time.perf_counter()
        copy, read = min(copy, t1 - t0), min(read, t2 - t1)
    copy_gb_s, read_gb_s = 2 * n / copy / 1e9, n / read / 1e9
    if read_gb_s > copy_gb_s:
        return read_gb_s, f"host memory read (sum) of {size_mb} MiB, best of {repeats} (above its copy)"
    return copy_gb_s, f"host memory copy of {size_mb} MiB, best of {repeats}"


def device_bandwidth(device: str, hardware: str, *, refresh: bool = False) -> Bandwidth:
    """The device's bandwidth: from the cache, or measured now (then cached)."""
    if not refresh:
        hit = cached(hardware)
        if hit is not None:
            return hit
    gb_s, method = measure_gpu() if device.startswith("cuda") else measure_cpu()
    old = cached(hardware)
    if old is not None and old.gb_s >= gb_s:  # the best measurement holds: a busy moment never lowers it
        return old
    bw = Bandwidth(gb_s, method, hardware)
    _store(bw)
    return bw


def hardware_key(device: str) -> str:
    """The cache key for the device a worker runs on: the GPU's name, or the CPU's label also on
    a GPU machine (a CPU configuration there reads host memory)."""
    from arena.core.env import collect_env, hardware_label

    env = collect_env()
    return hardware_label(env if device.startswith("cuda") else {**env, "gpu_name": None})


def for_device(device: str, *, refresh: bool = False) -> Bandwidth | None:
    """The bandwidth of the device a worker runs on (cached, else measured; `refresh`: measured
    again, the better figure kept); None when it cannot be measured — the run goes on without the
    yardstick."""
    try:
        return device_bandwidth(device, hardware_key(device), refresh=refresh)
    except Exception:
        return None
