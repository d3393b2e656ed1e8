"""Attention implementations: transformers' `attn_implementation` (eager, sdpa, FlashAttention-2/3),
SDPA restricted to one kernel, and the retired BetterTransformer fast path.

The limits live here with the code that has them: the kernel choice (`kernel_context`) and what
SDPA's memory-efficient kernel cannot take (grouped-query attention in some torch releases), the
GPUs FlashAttention's kernels are built for, and BetterTransformer's retirement.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import TYPE_CHECKING

from arena.core.env import Platform, version_tuple
from arena.techniques.base import Site

if TYPE_CHECKING:
    from arena.techniques.registry import Config

_SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "math": "MATH"}


def kernel_context(kernel: str) -> contextlib.AbstractContextManager:
    """SDPA restricted to one kernel ("flash", "efficient", "math") inside the context."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(getattr(SDPBackend, _SDPA_BACKENDS[kernel]))


def retired(config: Config, plat: Platform) -> str | None:
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


def blocker(config: Config, site: Site) -> str | None:
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
    torch 2.11 does not (only flash, cuDNN and math did; the kernel choice then fails with "No
    available kernel"); later releases added it and say so in scaled_dot_product_attention's docs."""
    import torch

    doc = torch.nn.functional.scaled_dot_product_attention.__doc__ or ""
    return "Memory-efficient attention also supports GQA" in " ".join(doc.split())


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
