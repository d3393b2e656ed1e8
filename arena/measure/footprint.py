"""The weights footprint: the bytes a model's parameters and buffers really hold.

transformers' get_memory_footprint() sums numel x element_size, and a torchao tensor subclass
reports its outer dtype (bf16: 2 bytes a weight) however it is stored. Here a tensor subclass
(anything with __tensor_flatten__) counts its inner tensors: packed int4 / int8 / float8 data,
scales, zero points and any packing padding. A quantization library that keeps constants beside a
plain tensor instead (bitsandbytes' absmax and row scales) counts them through `extra`: its
quantizer's `state_bytes` (arena/techniques/). Tied weights count once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ExtraBytes = Callable[[torch.Tensor], int]


def tensor_bytes(t: torch.Tensor, extra: ExtraBytes | None = None) -> int:
    """Bytes `t` holds; a wrapper subclass counts its inner tensors (recursively); `extra` adds
    what a library keeps beside a plain tensor."""
    if hasattr(t, "__tensor_flatten__"):  # plain tensors and Parameters have none
        names, _ = t.__tensor_flatten__()
        inner = (getattr(t, n) for n in names)
        return sum(tensor_bytes(i, extra) for i in inner if i is not None)
    return t.numel() * t.element_size() + (extra(t) if extra else 0)


def weights_bytes(model: torch.nn.Module, extra: ExtraBytes | None = None) -> int:
    """All parameters and buffers of `model`, each counted once."""
    seen: set[int] = set()
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += tensor_bytes(t, extra)
    return total
