"""Synthetic models: a real architecture's config with seeded random weights, for speed and
memory at real sizes without downloading. Built directly on the target device and dtype;
loaders that need a checkpoint (bitsandbytes quantizes while loading, ONNX export reads a
directory, accelerate's device_map) get the same seeded weights saved once under ARENA_HOME."""

from __future__ import annotations

from pathlib import Path

from arena.core.paths import building, cache_dir, is_complete
from arena.models.dtypes import torch_dtype
from arena.models.sources import load_config
from arena.models.spec import ModelSpec

SYNTHETIC_SEED = 0


def build_synthetic(spec: ModelSpec, dtype, device: str, attn_implementation: str | None):
    """Random-weight model built directly on `device` in `dtype`, a torch.dtype (seeded, so every
    configuration of a run sees the same weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = load_config(spec)
    torch.manual_seed(SYNTHETIC_SEED)
    if device.startswith("cuda"):
        torch.cuda.manual_seed_all(SYNTHETIC_SEED)
    kwargs = {"dtype": dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    return model.eval()


def synthetic_checkpoint(spec: ModelSpec, dtype_name: str, device: str) -> Path:
    """A saved copy of the same seeded random weights, for loaders that need a checkpoint
    (bitsandbytes quantizes while loading; ONNX export reads a directory)."""
    target = cache_dir("synthetic") / f"{spec.ref}-{dtype_name}-{device.split(':')[0]}"
    if is_complete(target):
        return target
    model = build_synthetic(spec, torch_dtype(dtype_name), device, None)
    with building(target, f"seed {SYNTHETIC_SEED}") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
    del model
    return target
