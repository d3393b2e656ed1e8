"""Attention implementations: transformers' `attn_implementation` (eager, sdpa, FlashAttention-2/3),
SDPA restricted to one kernel, and the retired BetterTransformer fast path.

The limits live here with the code that has them: the kernel choice (`kernel_context`) and what
SDPA's memory-efficient kernel cannot take (grouped-query attention in some torch releases), the
GPUs FlashAttention's kernels are built for, and BetterTransformer's retirement.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

from arena.core.env import Platform, version_tuple
from arena.techniques.base import Row, Site


_SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "math": "MATH"}


def kernel_context(kernel: str) -> contextlib.AbstractContextManager:
    """SDPA restricted to one kernel ("flash", "efficient", "math") inside the context."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(getattr(SDPBackend, _SDPA_BACKENDS[kernel]))


def retired(config: Row, plat: Platform) -> str | None:
    """A technique retired upstream, unless this is the legacy stack it still runs on
    (BetterTransformer: optimum < 2 and transformers < 4.49)."""
    if not config.retired:
        return None
    legacy = (
        plat.has("optimum")
        and version_tuple(plat.packages.get("optimum")) < (2,)
        and version_tuple(plat.packages.get("transformers")) < (4, 49)
    )
    return None if legacy else config.retired


def blocker(config: Row, site: Site) -> str | None:
    """Why `config`'s attention cannot run at `site`, or None."""
    capability = site.plat.capability
    if config.attn == "flash_attention_2" and capability and capability < (8, 0):
        return "FlashAttention-2 needs an Ampere or newer GPU (compute 8.0+)"
    if config.attn == "flash_attention_3" and capability and capability[0] != 9:
        return "FlashAttention-3 needs a Hopper GPU (compute 9.0, e.g. H100)"
    placement = site.placement
    if config.bettertransformer and placement is not None and placement.mapped:
        return "cannot be split over devices: to_bettertransformer() is not supported with a device_map"
    if config.sdpa_kernel == "efficient":
        return gqa_blocker(site.model_config)
    return None


@lru_cache(maxsize=1)
def efficient_kernel_has_gqa() -> bool:
    """Does this torch's memory-efficient SDPA kernel take grouped-query attention (enable_gqa)?
    Asked of torch's own kernel check (the one SDPA runs before choosing a kernel) with a GQA
    shape on fake CUDA tensors, so nothing is allocated and no CUDA context is made here. torch
    2.11 says no (only flash, cuDNN and math took GQA; the kernel choice then fails with "No
    available kernel"); later releases say yes. Without a CUDA GPU the kernel cannot run: False."""
    import torch

    if not torch.cuda.is_available():
        return False
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.backends.cuda import SDPAParams, can_use_efficient_attention

    with FakeTensorMode():
        query = torch.empty(1, 4, 8, 64, device="cuda", dtype=torch.float16)
        kv = torch.empty(1, 2, 8, 64, device="cuda", dtype=torch.float16)  # 4 query heads share 2
    try:
        return bool(can_use_efficient_attention(SDPAParams(query, kv, kv, None, 0.0, False, True), False))
    except (TypeError, RuntimeError):  # SDPAParams without enable_gqa: a torch from before GQA
        return False


def gqa_blocker(model_config: object) -> str | None:
    """Why SDPA's memory-efficient kernel cannot run this model's attention here, or None."""
    heads = getattr(model_config, "num_attention_heads", None)
    kv = getattr(model_config, "num_key_value_heads", None) or heads
    if heads and kv and kv < heads and not efficient_kernel_has_gqa():
        import torch

        return (f"SDPA's memory-efficient kernel cannot run grouped-query attention in torch "
                f"{torch.__version__.split('+')[0]} (this model: {heads} query heads share {kv} key/value "
                f"heads); run sdpa or sdpa-flash")
    return None
