"""Tensor parallelism: every decoder layer's linear weights sliced over the GPUs, one process per
GPU (the launcher: arena/execute/tensor_parallel.py; one rank: arena/backends/tensor_parallel.py).

Its limits: at least two ranks (CUDA GPUs, or gloo ranks on the CPU for tests), no max_memory
budgets (those split through device_map), and an architecture with a tensor-parallel plan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from arena.core.ending import Code, Why
from arena.core.env import Platform
from arena.techniques.base import Needs, Row, Site

if TYPE_CHECKING:
    from arena.models.placement import Placement

# Developer/CI switch: run tensor-parallel configurations on the CPU over this many gloo ranks
# (the product refuses them without CUDA GPUs).
TP_CPU_WORLD_ENV = "ARENA_TP_CPU_WORLD"


@dataclass(frozen=True)
class TensorParallel:
    """A row's parallel plan: the model's own tensor-parallel plan, one process per GPU (gpt-fast
    style plain tensors sliced by arena/backends/tp_shard.py), generate() on every rank."""

    kind: ClassVar[str] = "parallel"
    loop: ClassVar[str] = "tensor-parallel"

    def requirements(self) -> Needs:
        return Needs()


TENSOR_PARALLEL = TensorParallel()


def conflict(config: Row) -> str | None:
    """Why tensor parallelism cannot be combined with the rest of `config`, or None: each rank
    slices plain weights and runs generate(), nothing else."""
    if config.parallel is None:
        return None
    if config.quant is not None:
        return (f"tensor parallel slices plain (unquantized) weights over the ranks; {config.quant.library} "
                f"weights would be loaded unquantized")
    if config.compiled_decode:
        return ("tensor parallel runs generate() on every rank; the compiled decode step is one process's "
                "CUDA graph (use static-cache for a compiled forward on every rank)")
    if config.bettertransformer:
        return "tensor parallel builds every rank's model itself; to_bettertransformer() would not be applied"
    return None


def tensor_parallel_world(plat: Platform, placement: Placement | None) -> int | str:
    """How many ranks a tensor-parallel run has here (the GPUs in `gpus`, else every GPU), or why
    it cannot run. On a machine without CUDA only the developer switch ARENA_TP_CPU_WORLD (gloo
    ranks on the CPU, for tests) runs it."""
    gpus = placement.gpus if placement is not None else ()
    if not plat.has_cuda:
        cpu_world = os.environ.get(TP_CPU_WORLD_ENV, "")
        if cpu_world.isdigit() and int(cpu_world) >= 2 and not gpus:
            return int(cpu_world)
        return Why("needs at least 2 CUDA GPUs (one process per GPU through NCCL); this machine has none",
                   Code.NEEDS_CUDA)
    if gpus and len(gpus) < 2:
        return f"needs at least 2 GPUs in gpus (got {','.join(map(str, gpus))})"
    world = len(gpus) or plat.gpu_count
    if world < 2:
        return f"needs at least 2 CUDA GPUs (one process per GPU through NCCL); this machine has {world}"
    return world


def plan_blocker(model_config: Any) -> str | None:
    """Why this model has no tensor-parallel split, or None (Falcon and GPT-2 have no plan)."""
    if model_config is not None and not getattr(model_config, "base_model_tp_plan", None):
        kind = getattr(model_config, "model_type", "this model")
        return f"{kind} has no tensor-parallel plan (base_model_tp_plan) in this transformers version"
    return None


def blocker(config: Row, site: Site) -> str | None:
    """Why `config`'s tensor parallelism cannot run at `site`, or None."""
    if not config.tensor_parallel:
        return None
    world = tensor_parallel_world(site.plat, site.placement)
    if isinstance(world, str):
        return world
    if site.placement is not None and site.placement.max_memory:
        return ("tensor parallel shards every layer over the GPUs in gpus; max_memory budgets apply to "
                "device_map splits")
    return plan_blocker(site.model_config)
