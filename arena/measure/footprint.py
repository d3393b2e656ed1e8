"""The weights footprint: the bytes a model's parameters and buffers really hold.

transformers' get_memory_footprint() sums numel x element_size, and a torchao tensor subclass
reports its outer dtype (bf16: 2 bytes a weight) however it is stored. Here a tensor subclass
(anything with __tensor_flatten__) counts its inner tensors: packed int4 / int8 / float8 data,
scales, zero points and any packing padding. Tied weights count once.
"""

from __future__ import annotations

import torch


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes `t` holds; a wrapper subclass counts its inner tensors (recursively)."""
    if hasattr(t, "__tensor_flatten__"):  # plain tensors and Parameters have none
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(inner) for inner in (getattr(t, n) for n in names) if inner is not None)
    return t.numel() * t.element_size()


def weights_bytes(model: torch.nn.Module) -> int:
    """All parameters and buffers of `model`, each counted once."""
    seen: set[int] = set()
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += tensor_bytes(t)
    return total
