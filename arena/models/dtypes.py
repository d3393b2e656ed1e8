"""Dtypes: the names a request may use, what they mean to torch, and their size."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from arena.core.env import Platform

DTYPES = ("auto", "fp32", "fp16", "bf16")  # what a request may ask for
HALF_DTYPES = ("fp16", "bf16")
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def resolve_dtype(requested: str, plat: Platform | None = None) -> str:
    """'auto' -> bf16 on a GPU that supports it, else fp16 on GPU, fp32 on CPU."""
    if requested not in DTYPES:
        raise ValueError(f"unknown dtype {requested!r}; valid: {', '.join(DTYPES)}")
    if requested != "auto":
        return requested
    if plat is None:
        from arena.core.env import platform

        plat = platform()
    if not plat.has_cuda:
        return "fp32"
    return "bf16" if plat.bf16_supported else "fp16"
