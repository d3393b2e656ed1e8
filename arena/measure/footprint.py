"""The weights footprint: the bytes a model's parameters and buffers really hold.

transformers' get_memory_footprint() sums numel x element_size, and a torchao tensor subclass
reports its outer dtype (bf16: 2 bytes a weight) however it is stored. Here a tensor subclass
(anything with __tensor_flatten__) counts its inner tensors: packed int4 / int8 / float8 data,
scales, zero points and any packing padding; a bitsandbytes weight adds its quantization constants.
Tied weights count once.
"""

from __future__ import annotations

import torch


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes `t` holds; a wrapper subclass counts its inner tensors (recursively)."""
    if hasattr(t, "__tensor_flatten__"):  # plain tensors and Parameters have none
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(inner) for inner in (getattr(t, n) for n in names) if inner is not None)
    return t.numel() * t.element_size() + _bnb_state_bytes(t)


def _plain_bytes(value: object) -> int:
    return value.numel() * value.element_size() if isinstance(value, torch.Tensor) else 0


def _bnb_state_bytes(t: torch.Tensor) -> int:
    """bitsandbytes keeps its quantization constants beside the packed weight: a 4-bit weight's
    quant_state (absmax per block, the code table; a nested state with double quantization), an
    8-bit weight's SCB (one scale per row)."""
    total = _plain_bytes(getattr(t, "SCB", None))
    state = getattr(t, "quant_state", None)
    while state is not None:
        total += sum(_plain_bytes(getattr(state, name, None)) for name in ("absmax", "code", "offset"))
        state = getattr(state, "state2", None)
    return total


def weights_bytes(model: torch.nn.Module) -> int:
    """All parameters and buffers of `model`, each counted once."""
    seen: set[int] = set()
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += tensor_bytes(t)
    return total
