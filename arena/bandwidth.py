"""The memory-bandwidth yardstick: how fast decoding could possibly be on this device.

Decoding one step at batch B reads every weight once and each row's KV cache once, so decode
tokens/s can never pass

    B x bandwidth / (weights bytes + B x KV-cache bytes read per step)

The bandwidth is measured once per device (a large device-to-device copy on a GPU timed with
CUDA events, a large tensor copy on the CPU; bytes read + written; best of several) and cached
as JSON under ARENA_HOME, keyed by the hardware label of `arena.env`. The KV-cache term is
averaged over the decode positions (prompt + 1 .. prompt + new - 1 entries per layer).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena.paths import arena_home

CACHE_FILE = "memory_bandwidth.json"
_DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


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
    path = _cache_path()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a file


def measure_gpu(size_mb: int = 1024, repeats: int = 10) -> tuple[float, str]:
    """Device-to-device copy of `size_mb`, timed with CUDA events; best of `repeats`."""
    import torch

    n = size_mb * 2**20
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
    """Tensor copy of `size_mb` in host memory, timed with perf_counter; best of `repeats`."""
    import torch

    n = size_mb * 2**20
    src = torch.ones(n, dtype=torch.uint8)
    dst = torch.zeros_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * n / best / 1e9, f"host memory copy of {size_mb} MiB, best of {repeats}"


def device_bandwidth(device: str, hardware: str, *, refresh: bool = False) -> Bandwidth:
    """The device's bandwidth: from the cache, or measured now (then cached)."""
    if not refresh:
        hit = cached(hardware)
        if hit is not None:
            return hit
    gb_s, method = measure_gpu() if device.startswith("cuda") else measure_cpu()
    bw = Bandwidth(gb_s, method, hardware)
    _store(bw)
    return bw


def kv_bytes_per_position(model_config: Any, dtype: str) -> int:
    """Bytes of K and V one cached position holds across all layers (one row)."""
    cfg = model_config
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", 0)
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", 1)
    if getattr(cfg, "multi_query", False) and not getattr(cfg, "new_decoder_architecture", False):
        kv_heads = 1  # Falcon-7B style multi-query attention (its num_kv_heads says otherwise)
    else:
        kv_heads = getattr(cfg, "num_key_value_heads", None) or getattr(cfg, "num_kv_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return int(layers) * 2 * int(kv_heads) * int(head_dim) * _DTYPE_BYTES.get(dtype, 2)


def limit_tokens_per_s(bandwidth_gb_s: float, weights_bytes: float, kv_bytes_per_pos: float,
                       batch: int, prompt_tokens: int, new_tokens: int) -> float:
    """The decode tokens/s that reading the weights and the KV cache at full bandwidth allows.
    Decode step k (k = 1 .. new-1) attends to prompt + k positions; their mean is used."""
    mean_positions = prompt_tokens + new_tokens / 2 if new_tokens > 1 else prompt_tokens + 1
    per_step = weights_bytes + batch * kv_bytes_per_pos * mean_positions
    return batch * bandwidth_gb_s * 1e9 / per_step


def result_fields(bw: Bandwidth, *, weights_bytes: float, model_config: Any, dtype: str, batch: int,
                  prompt_tokens: int, new_tokens: int, decode_tokens_per_s: float | None) -> dict[str, Any]:
    """The three result fields for one measured configuration."""
    limit = limit_tokens_per_s(bw.gb_s, weights_bytes, kv_bytes_per_position(model_config, dtype),
                               batch, prompt_tokens, new_tokens)
    percent = (100 * decode_tokens_per_s / limit
               if decode_tokens_per_s is not None and decode_tokens_per_s == decode_tokens_per_s else None)
    return {"memory_bandwidth_gb_s": bw.gb_s, "bandwidth_limit_tokens_per_s": limit,
            "percent_of_bandwidth_limit": percent}


def limit_for(result: Any) -> float | None:
    """The bandwidth limit in decode tokens/s for a stored result (a Result or its dict), for
    a chart's reference line: the stored value, else computed from the cached bandwidth of its
    hardware; None when neither is known."""
    data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    if data.get("bandwidth_limit_tokens_per_s"):
        return float(data["bandwidth_limit_tokens_per_s"])
    bw_gb_s = data.get("memory_bandwidth_gb_s")
    if not bw_gb_s:
        hit = cached(str(data.get("hardware", "")))
        bw_gb_s = hit.gb_s if hit else None
    if not bw_gb_s or not data.get("weights_mb"):
        return None
    try:
        from arena import models

        config = models.load_config(models.parse_model(str(data.get("model_id") or "default")))
        kv = kv_bytes_per_position(config, str(data.get("dtype") or "bf16"))
    except Exception:  # a model whose config cannot be read here: weights alone
        kv = 0
    return limit_tokens_per_s(float(bw_gb_s), float(data["weights_mb"]) * 2**20, kv,
                              int(data.get("batch_size") or 1), int(data.get("prompt_tokens") or 0),
                              int(data.get("new_tokens") or 1))


def hardware_key(device: str) -> str:
    """The cache key for the device a worker runs on: the GPU's name, or the CPU's label also on
    a GPU machine (a CPU configuration there reads host memory)."""
    from arena.env import collect_env, hardware_label

    env = collect_env()
    return hardware_label(env if device.startswith("cuda") else {**env, "gpu_name": None})


def for_device(device: str) -> Bandwidth | None:
    """The bandwidth of the device a worker runs on (cached, else measured); None when it cannot
    be measured — the run goes on without the yardstick."""
    try:
        return device_bandwidth(device, hardware_key(device))
    except Exception:
        return None


def fields_for(bw: Bandwidth | None, spec: Any, **kwargs: Any) -> dict[str, Any]:
    """result_fields() for a worker's model spec; empty when the bandwidth or the model's
    config is unknown."""
    if bw is None:
        return {}
    try:
        from arena import models

        return result_fields(bw, model_config=models.load_config(spec), **kwargs)
    except Exception:
        return {}
