"""One rank of a tensor-parallel model: transformers' tp_plan="auto" over the process group the
launcher (arena/execute/tensor_parallel.py) joined. Every rank runs the same generate(); the
all-reduces inside the model keep them in step.

Synthetic models need no checkpoint: built on meta, hooked by distribute_model, then each
parameter's full seeded value (arena/models/seeded.py, same name -> same values on every rank)
is made on this rank's device one at a time and cut to this rank's shard by
shard_and_distribute_module, the function from_pretrained itself uses. The weights equal the
unsharded synthetic model's; the extra memory is the largest single parameter.
"""

from __future__ import annotations

from typing import Any

import torch

from arena.backends.torch import TorchBackend
from arena.core.units import MiB
from arena.models import seeded
from arena.models.dtypes import torch_dtype
from arena.models.sources import load_config, pretrained_path
from arena.models.synthetic import SYNTHETIC_SEED


def _no_plan(model: Any) -> str:
    kind = getattr(model.config, "model_type", type(model).__name__)
    return f"{kind} has no tensor-parallel plan (tp_plan) in this transformers version"


@torch.no_grad()
def synthetic_sharded(config: Any, dtype: torch.dtype, device: torch.device, attn: str | None) -> Any:
    """Seeded random weights sharded over the default process group, without a checkpoint."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from transformers.integrations.tensor_parallel import (
        distribute_model,
        shard_and_distribute_module,
    )

    world, rank = dist.get_world_size(), dist.get_rank()
    mesh = init_device_mesh(device.type, (world,), mesh_dim_names=("tp",))
    model = seeded.build_meta(config, dtype, attn)
    if not model.tp_plan:  # supports_tp_plan is True for every model in 4.57: test the plan itself
        raise ValueError(_no_plan(model))
    distribute_model(model, None, mesh, world)
    std = seeded.init_std(config)
    gens = seeded.Generators()
    for name, empty in list(model.named_parameters()):  # a tied parameter comes once, under its first name
        full = torch.empty(empty.shape, dtype=dtype, device=device)
        seeded.fill(full, *seeded.owner(model, name), std, gens(device, seeded.param_seed(SYNTHETIC_SEED, name)))
        shard_and_distribute_module(model, full, empty, name, dtype, True, rank, mesh)
        del full
    seeded.recompute_buffers(model, lambda _name: device)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    left = [n for n, p in model.named_parameters() if p.is_meta]
    if left:
        raise RuntimeError(f"parameters still on meta: {', '.join(left[:3])}")
    return model


class TensorParallelBackend(TorchBackend):
    """This process's rank of a tensor-parallel model; `device` is its own device."""

    def load(self) -> None:
        from transformers import AutoModelForCausalLM

        dtype = torch_dtype(self.dtype)
        device = torch.device(self.device)
        if self.spec.synthetic:
            model = synthetic_sharded(load_config(self.spec), dtype, device, self.config.attn)
        else:
            # No device_mesh argument: transformers builds a 1-D mesh over our process group
            # itself (with one given on the CPU, 4.57.6 reads "cpu:1" as a CUDA index).
            model = AutoModelForCausalLM.from_pretrained(pretrained_path(self.spec), tp_plan="auto", dtype=dtype,
                                                         attn_implementation=self.config.attn)
            if not model.tp_plan:
                raise ValueError(_no_plan(model))
        self.model = model.eval()

    def weights_bytes(self) -> int:
        """The whole model (a sharded DTensor counts its global size; replicated tensors once)."""
        return int(self.model.get_memory_footprint())

    def placement_used(self) -> dict[str, Any]:
        """This rank's device: every decoder layer (a shard of each) and the bytes held here."""
        import torch.distributed as dist

        local = 0
        for tensor in [*self.model.parameters(), *self.model.buffers()]:
            part = tensor.to_local() if hasattr(tensor, "to_local") else tensor
            local += part.numel() * part.element_size()
        layers = int(getattr(self.model.config, "num_hidden_layers", 0) or 0)
        return {rank_device(self.device, dist.get_rank()): {"layers": layers, "weights_mb": round(local / MiB, 2)}}


def rank_device(device: str, rank: int) -> str:
    """A rank's key in placement and per-device peaks: its GPU, or "cpu/rank1" for gloo ranks."""
    return device if device.startswith("cuda") else f"cpu/rank{rank}"
