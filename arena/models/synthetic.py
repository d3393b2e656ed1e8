"""Synthetic models: a real architecture's config with seeded random weights, for speed and
memory at real sizes without downloading. Built on the meta device, then each parameter is
created on its device (one device, or the split accelerate plans from max_memory budgets) and
filled from a generator seeded by its name (arena/models/seeded.py): no checkpoint, so a 70B
shape split over two GPUs needs no disk. Loaders that need a checkpoint (bitsandbytes quantizes
while loading, ONNX export reads a directory) get the same seeded weights saved once under
ARENA_HOME."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arena.core.paths import building, cache_dir, is_complete
from arena.models.dtypes import torch_dtype
from arena.models.seeded import build_meta, materialise
from arena.models.sources import load_config
from arena.models.spec import ModelSpec

SYNTHETIC_SEED = 0
WEIGHTS_RULE = "seeded-by-name-1"  # part of the checkpoint cache's name: a new rule, a new cache


def build_synthetic(spec: ModelSpec, dtype, device: str, attn_implementation: str | None):
    """Random-weight model on `device` in `dtype`, a torch.dtype (seeded, so every configuration
    of a run sees the same weights)."""
    model = build_meta(load_config(spec), dtype, attn_implementation)
    materialise(model, {"": device}, seed=SYNTHETIC_SEED)
    return model


def build_split(spec: ModelSpec, dtype, max_memory: Mapping[int | str, int],
                attn_implementation: str | None) -> tuple[Any, dict[str, Any]]:
    """The model split as from_pretrained(device_map="auto", max_memory=...) would split it, each
    weight made on its own device; accelerate's hooks move activations between devices.
    ValueError with one line when the budgets leave anything for the disk."""
    from accelerate import dispatch_model

    from arena.models import placement

    model = build_meta(load_config(spec), dtype, attn_implementation)
    device_map = placement.plan_model(model, dtype, max_memory)
    if "disk" in {str(v) for v in device_map.values()}:
        raise ValueError(placement.disk_refusal(max_memory))
    materialise(model, device_map, seed=SYNTHETIC_SEED)
    # The weights are already in place: with nothing offloaded dispatch_model only adds the hooks.
    # A map mixing GPUs and the cpu makes it treat the cpu part as offloaded (streamed per
    # forward), as from_pretrained does.
    model = dispatch_model(model, device_map=dict(device_map), force_hooks=len(set(device_map.values())) > 1)
    model.hf_device_map = dict(device_map)
    return model, dict(device_map)


def synthetic_checkpoint(spec: ModelSpec, dtype_name: str, device: str) -> Path:
    """A saved copy of the same seeded random weights, for loaders that need a checkpoint
    (bitsandbytes quantizes while loading; ONNX export reads a directory)."""
    target = cache_dir("synthetic") / f"{spec.ref}-{dtype_name}-{device.split(':')[0]}-{WEIGHTS_RULE}"
    if is_complete(target):
        return target
    model = build_synthetic(spec, torch_dtype(dtype_name), device, None)
    with building(target, f"seed {SYNTHETIC_SEED}") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
    del model
    return target
