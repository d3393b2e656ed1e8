"""Attention implementations: transformers' `attn_implementation` (eager, sdpa, FlashAttention-2/3),
SDPA restricted to one kernel, and the retired BetterTransformer fast path.

A row's attention choice is an `Attention` (the named ones below: EAGER, SDPA, SDPA_FLASH, ...),
which says what it needs from the machine. The limits live here with the code that has them: the
kernel choice (`kernel_context`) and what SDPA's memory-efficient kernel cannot take (grouped-query
attention in some torch releases), the GPUs FlashAttention's kernels are built for, and
BetterTransformer's retirement.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, Literal

from arena.core.env import Platform, version_tuple
from arena.techniques.base import Needs, Row, Site


_SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "math": "MATH"}
_BETTERTRANSFORMER_RETIRED = ("retired upstream: BetterTransformer was removed in optimum 2.0 and needs "
                              "transformers<4.49; its decoder fast path lives on as SDPA (run sdpa)")


@dataclass(frozen=True)
class Attention:
    """A row's attention: transformers' attn_implementation, SDPA restricted to one kernel, or
    optimum's BetterTransformer fast path over eager."""

    impl: Literal["eager", "sdpa", "flash_attention_2", "flash_attention_3"] = "sdpa"
    kernel: Literal["flash", "efficient", "math"] | None = None  # SDPA's kernel, fixed (sdpa only)
    bettertransformer: bool = False  # to_bettertransformer() after loading with eager

    kind: ClassVar[str] = "attention"

    def __post_init__(self) -> None:
        if self.kernel is not None and self.impl != "sdpa":
            raise ValueError(f"an SDPA kernel choice applies to sdpa, not {self.impl}")
        if self.bettertransformer and self.impl != "eager":
            raise ValueError("BetterTransformer replaces eager attention")

    def requirements(self) -> Needs:
        if self.impl == "flash_attention_2":
            return Needs(("flash-attn",), cuda=True, half=True)
        if self.impl == "flash_attention_3":
            return Needs(("flash-attn-3",), cuda=True, half=True)
        if self.bettertransformer:
            return Needs(("optimum",))
        # SDPA's flash kernel: CUDA and fp16/bf16 only; its memory-efficient kernel: CUDA only
        return {"flash": Needs(cuda=True, half=True), "efficient": Needs(cuda=True)}.get(self.kernel, Needs())

    @property
    def retired(self) -> str | None:
        return _BETTERTRANSFORMER_RETIRED if self.bettertransformer else None


EAGER = Attention("eager")
SDPA = Attention("sdpa")
SDPA_FLASH = Attention("sdpa", "flash")
SDPA_EFFICIENT = Attention("sdpa", "efficient")
SDPA_MATH = Attention("sdpa", "math")
FLASH_ATTENTION_2 = Attention("flash_attention_2")
FLASH_ATTENTION_3 = Attention("flash_attention_3")
BETTERTRANSFORMER = Attention("eager", bettertransformer=True)


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


def conflict(config: Row) -> str | None:
    """Why `config`'s attention cannot be part of the row, or None: a PyTorch row names one."""
    if config.attention is None and config.runtime is None:
        return "a configuration run by transformers on PyTorch names its attention implementation"
    return None


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
