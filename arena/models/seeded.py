"""Seeded random weights without a checkpoint: a model built on the meta device (no memory),
then every parameter created directly on its planned device and dtype and filled from a
generator seeded by its own name.

A parameter's values depend only on (seed, name, device type, dtype), never on the split or the
order of creation: two builds with different device maps compute the same model (CUDA's and the
CPU's generators differ, so a cpu+GPU split is not bit-identical to an all-GPU one). The fill is
PreTrainedModel._init_weights' rule with an explicit generator. Nothing touches the disk and no
full-model CPU copy is made, so a 70B shape loads straight onto its GPUs.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


def build_meta(config: Any, dtype: torch.dtype, attn_implementation: str | None = None) -> nn.Module:
    """The model of `config` with every parameter and buffer on the meta device.

    torch.device("meta"), not accelerate.init_empty_weights(), which leaves buffers (rotary
    inv_freq) on the CPU by default."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    return model.eval()


def param_seed(seed: int, name: str) -> int:
    """Stable across processes (Python's hash() is salted per process)."""
    return zlib.crc32(f"{seed}:{name}".encode())


def torch_device(value: Any) -> torch.device:
    """A device_map value (0, "1", "cpu", "cuda:1") -> torch.device; "disk" cannot hold weights."""
    if isinstance(value, int) and not isinstance(value, bool):
        return torch.device("cuda", value)
    text = str(value)
    if text.isdigit():
        return torch.device("cuda", int(text))
    if text == "disk":
        raise ValueError("a device_map that puts weights on disk cannot hold synthetic weights")
    return torch.device(text)


def lookup(device_map: Mapping[str, Any], name: str) -> Any:
    """The device_map value covering module or parameter `name` (longest matching prefix)."""
    best, where = -1, None
    for key, value in device_map.items():
        if (key == "" or name == key or name.startswith(key + ".")) and len(key) > best:
            best, where = len(key), value
    if best < 0:
        raise KeyError(f"{name!r} is not covered by the device_map")
    return where


class Generators:
    """One torch.Generator per device, re-seeded for each parameter."""

    def __init__(self) -> None:
        self._by_device: dict[torch.device, torch.Generator] = {}

    def __call__(self, device: torch.device, seed: int) -> torch.Generator:
        gen = self._by_device.get(device)
        if gen is None:
            gen = self._by_device[device] = torch.Generator(device=device)
        gen.manual_seed(seed)
        return gen


def _is_norm(module: nn.Module) -> bool:
    name = type(module).__name__  # the test of PreTrainedModel._init_weights (classes are model-prefixed)
    return isinstance(module, (nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) or \
        "LayerNorm" in name or "RMSNorm" in name


def init_std(config: Any) -> float:
    std = getattr(config, "initializer_range", None)
    if std is None and hasattr(config, "get_text_config"):
        std = getattr(config.get_text_config(), "initializer_range", None)
    return float(std if std is not None else 0.02)


@torch.no_grad()
def fill(t: torch.Tensor, module: nn.Module, pname: str, std: float, gen: torch.Generator) -> None:
    """_init_weights' rule: weights of Linear/Embedding (and any >= 2-D parameter) ~ N(0, std),
    the embedding's padding row 0; norm weights 1 and biases 0; other biases and 1-D tensors 0."""
    if _is_norm(module):
        t.fill_(1.0 if pname == "weight" else 0.0)
        return
    if pname == "bias" or t.ndim < 2:
        t.zero_()
        return
    t.normal_(0.0, std, generator=gen)
    padding = getattr(module, "padding_idx", None)
    if isinstance(module, nn.Embedding) and padding is not None and pname == "weight":
        t[padding].zero_()


def owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """(module, parameter name inside it) of a dotted parameter name."""
    if "." not in name:
        return model, name
    mname, pname = name.rsplit(".", 1)
    return model.get_submodule(mname), pname


@torch.no_grad()
def recompute_buffers(model: nn.Module, device_of: Any) -> list[str]:
    """Non-persistent buffers left on meta (rotary inv_freq): recomputed on their device by the
    module's own rope_init_fn, exactly as its __init__ does (rope_scaling types included).
    `device_of(module_name)` -> torch.device."""
    done = []
    for mname, module in model.named_modules():
        left = [b for b, v in module._buffers.items() if v is not None and v.is_meta]
        if not left:
            continue
        if not (hasattr(module, "rope_init_fn") and hasattr(module, "config")):
            raise RuntimeError(f"cannot compute buffers {left} of {mname} ({type(module).__name__}) "
                               "for a synthetic model")
        dev = device_of(mname)
        inv_freq, scaling = module.rope_init_fn(module.config, dev)
        module.register_buffer("inv_freq", inv_freq, persistent=False)
        module.original_inv_freq = inv_freq
        module.attention_scaling = scaling
        still = [b for b, v in module._buffers.items() if v is not None and v.is_meta]
        if still:
            raise RuntimeError(f"buffers {still} of {mname} ({type(module).__name__}) are still on meta")
        done.append(mname)
    return done


@torch.no_grad()
def materialise(model: nn.Module, device_map: Mapping[str, Any], seed: int = 0, reverse: bool = False) -> int:
    """Give every meta parameter seeded values on its planned device, in place; returns the
    number of elements created. A tied parameter (one meta Parameter under two names) gets one
    tensor, seeded under its first name in module order. `reverse` only serves the test that
    values do not depend on the order of creation."""
    std = init_std(model.config)
    gens = Generators()
    entries = [(mname, module, pname, p) for mname, module in model.named_modules()
               for pname, p in list(module._parameters.items()) if p is not None]
    canonical: dict[int, str] = {}
    for mname, _, pname, p in entries:
        canonical.setdefault(id(p), f"{mname}.{pname}" if mname else pname)
    made: dict[int, nn.Parameter] = {}
    elements = 0
    for mname, module, pname, p in reversed(entries) if reverse else entries:
        if id(p) not in made:
            name = canonical[id(p)]
            dev = torch_device(lookup(device_map, name))
            t = torch.empty(p.shape, dtype=p.dtype, device=dev)
            fill(t, *owner(model, name), std, gens(dev, param_seed(seed, name)))
            made[id(p)] = nn.Parameter(t, requires_grad=False)
            elements += t.numel()
        module._parameters[pname] = made[id(p)]
    recompute_buffers(model, lambda mname: torch_device(lookup(device_map, mname)))
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    left = [n for n, p in model.named_parameters() if p.is_meta]
    if left:
        raise RuntimeError(f"parameters still on meta: {', '.join(left[:3])}")
    return elements
