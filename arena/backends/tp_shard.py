"""Tensor parallelism with plain tensors, as gpt-fast does it: each rank keeps a slice of every
planned linear layer and one all-reduce joins the partial sums after each row-wise layer.

transformers' own `tp_plan="auto"` wraps every sharded weight and activation in a DTensor, whose
dispatch runs in Python for every linear layer of every decode step; plain local tensors keep the
decode step as fast as one GPU's and let torch.compile capture it (collectives included, through
functional collectives) like any other step.

Which layers are split, and how, comes from the model's own plan (`config.base_model_tp_plan`):
"colwise" layers keep rows [r*n/w, (r+1)*n/w) of their weight (output features: attention heads,
MLP columns), "rowwise" layers keep the matching input columns and are followed by the all-reduce.
Attention then runs on this rank's heads only: the projections' outputs are viewed as
(-1, head_dim), so the local head count follows from the slice, and the KV cache is allocated from
the key states it is handed (a quarter of the heads on four ranks). Everything else (embeddings,
norms, lm_head) is replicated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

SUPPORTED_STYLES = ("colwise", "rowwise")


def layer_styles(model_config: Any) -> dict[str, str]:
    """The model's tensor-parallel plan as {module name pattern: "colwise" | "rowwise"}, e.g.
    {"layers.*.self_attn.q_proj": "colwise", ...}; {} when the architecture has none."""
    return dict(getattr(model_config, "base_model_tp_plan", None) or {})


def blocker(model_config: Any, world: int) -> str | None:
    """Why this architecture cannot be split over `world` ranks here, or None."""
    plan = layer_styles(model_config)
    name = getattr(model_config, "model_type", "this model")
    if not plan:
        return f"{name} has no tensor-parallel plan in transformers (base_model_tp_plan)"
    odd = sorted({style for style in plan.values() if style not in SUPPORTED_STYLES})
    if odd:
        return f"{name}'s tensor-parallel plan uses {', '.join(odd)} layers, which this launcher does not split"
    heads = getattr(model_config, "num_attention_heads", 0)
    kv_heads = getattr(model_config, "num_key_value_heads", None) or heads
    for what, n in (("attention heads", heads), ("key/value heads", kv_heads),
                    ("MLP columns", getattr(model_config, "intermediate_size", 0))):
        if not n or n % world:
            return f"{name}'s {n} {what} do not split evenly over {world} GPUs"
    return None


def style_of(module_name: str, plan: dict[str, str]) -> str | None:
    """The plan's style for a module ("model.layers.3.mlp.up_proj"), matching '*' to a layer index."""
    parts = module_name.split(".")
    for pattern, style in plan.items():
        pat = pattern.split(".")
        for start in range(len(parts) - len(pat) + 1):
            window = parts[start:start + len(pat)]
            if start + len(pat) == len(parts) and all(p == "*" or p == w for p, w in zip(pat, window)):
                return style
    return None


def local_slice(full: torch.Tensor, style: str | None, param_type: str, rank: int, world: int) -> torch.Tensor:
    """This rank's part of one parameter: colwise weights and biases split along the output
    features (dim 0), rowwise weights along the input features (dim 1); a rowwise bias is added
    once, after the all-reduce, so only rank 0 keeps it."""
    if style == "colwise":
        return full.chunk(world, dim=0)[rank]
    if style == "rowwise" and param_type == "weight":
        return full.chunk(world, dim=1)[rank]
    if style == "rowwise" and param_type == "bias":
        return full if rank == 0 else torch.zeros_like(full)
    return full


def shard(model: torch.nn.Module, fill: Callable[[str, torch.nn.Parameter], torch.Tensor],
          rank: int, world: int, device: torch.device | str) -> None:
    """Give every parameter of `model` (on the meta device or anywhere) this rank's part, on
    `device`. `fill(name, param)` returns the parameter's full value (from a checkpoint, or seeded
    random weights); it is sliced at once, so only one full parameter is held at a time.
    Tied parameters are visited once and stay tied."""
    plan = layer_styles(model.config)
    for name, param in list(model.named_parameters()):  # a tied parameter appears once
        module_name, _, param_type = name.rpartition(".")
        module = model.get_submodule(module_name)
        style = style_of(module_name, plan)
        part = local_slice(fill(name, param), style, param_type, rank, world)
        # A copy, never a view: a row slice of the full tensor would keep all of it alive (on a
        # 70B model that is the whole model on every rank).
        value = torch.nn.Parameter(part.to(device=device, copy=True).contiguous(), requires_grad=False)
        setattr(module, param_type, value)
        for other_name, other in model.named_modules():  # re-tie: every module that shared it
            if other is not module and getattr(other, param_type, None) is param:
                setattr(other, param_type, value)
    for module_name, module in model.named_modules():
        if style_of(module_name, plan) is not None and isinstance(module, torch.nn.Linear):
            module.out_features, module.in_features = module.weight.shape


def join_partial_sums(model: torch.nn.Module, group: Any = None) -> int:
    """After every rowwise layer, sum the ranks' partial outputs (one all-reduce each). Uses
    functional collectives so that torch.compile (and CUDA graphs) can capture the step.
    Returns how many layers got the hook."""
    import torch.distributed as dist
    from torch.distributed import _functional_collectives as funcol

    group = group or dist.group.WORLD
    plan = layer_styles(model.config)
    count = 0
    for module_name, module in model.named_modules():
        if style_of(module_name, plan) == "rowwise":
            module.register_forward_hook(lambda _m, _i, out: funcol.all_reduce(out, "sum", group))
            count += 1
    return count
