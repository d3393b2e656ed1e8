"""One rank of a tensor-parallel model over the process group the launcher
(arena/execute/tensor_parallel.py) joined. Every rank runs the same generate(); the all-reduces
inside the model keep them in step.

The weights are sliced as plain tensors by arena/backends/tp_shard.py (the model's own
tensor-parallel plan, one functional all-reduce after each row-wise layer), not wrapped in
DTensors: transformers' `tp_plan="auto"` dispatches every sharded matmul through DTensor in
Python, which measured 1.7 decode tokens/s on the Llama-2-7B shape over two H100s (528 ms a
token) against 29 on one GPU.

Synthetic models need no checkpoint: built on meta, then each parameter's full seeded value
(arena/models/seeded.py: same name -> same values on every rank) is made on this rank's device
one at a time and cut to this rank's slice at once, so the weights equal the unsharded
synthetic model's and the extra memory is one parameter. A real model's checkpoint is read on
the CPU and sliced the same way.
"""

from __future__ import annotations

from typing import Any

import torch

from arena.backends import tp_shard
from arena.backends.torch import TorchBackend
from arena.core.units import MiB
from arena.models import seeded
from arena.models.dtypes import torch_dtype
from arena.models.sources import load_config, pretrained_path
from arena.models.synthetic import SYNTHETIC_SEED


@torch.no_grad()
def sharded_model(spec: Any, dtype: torch.dtype, device: torch.device, attn: str | None) -> Any:
    """This rank's slice of the model of `spec` on `device`, over the default process group."""
    import torch.distributed as dist

    world, rank = dist.get_world_size(), dist.get_rank()
    config = load_config(spec)
    reason = tp_shard.blocker(config, world)
    if reason:
        raise ValueError(reason)
    model = seeded.build_meta(config, dtype, attn)
    if spec.synthetic:
        std, gens = seeded.init_std(config), seeded.Generators()

        def fill(name: str, _param: Any) -> torch.Tensor:
            full = torch.empty(_param.shape, dtype=dtype, device=device)
            seeded.fill(full, *seeded.owner(model, name), std, gens(device, seeded.param_seed(SYNTHETIC_SEED, name)))
            return full
    else:
        from transformers import AutoModelForCausalLM

        state = AutoModelForCausalLM.from_pretrained(pretrained_path(spec), dtype=dtype).state_dict()

        def fill(name: str, _param: Any) -> torch.Tensor:
            return state[name]
    tp_shard.shard(model, fill, rank, world, device)
    seeded.recompute_buffers(model, lambda _name: device)
    left = [n for n, p in model.named_parameters() if p.is_meta]
    if left:
        raise RuntimeError(f"parameters still on meta: {', '.join(left[:3])}")
    tp_shard.join_partial_sums(model)
    return model.eval()


class TensorParallelBackend(TorchBackend):
    """This process's rank of a tensor-parallel model; `device` is its own device."""

    applies = frozenset({"attention", "compile", "parallel"})  # each rank's weights sliced plain: no quantization

    def load(self) -> None:
        self.model = sharded_model(self.spec, torch_dtype(self.dtype), torch.device(self.device), self.config.attn)

    def weights_bytes(self) -> int:
        """The whole model: each sliced parameter counts all ranks' slices, a replicated one once."""
        import torch.distributed as dist

        plan = tp_shard.layer_styles(self.model.config)
        world, total, seen = dist.get_world_size(), 0, set()
        for name, tensor in [*self.model.named_parameters(), *self.model.named_buffers()]:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            split = tp_shard.style_of(name.rpartition(".")[0], plan) is not None
            total += tensor.numel() * tensor.element_size() * (world if split else 1)
        return total

    def placement_used(self) -> dict[str, Any]:
        """This rank's device: every decoder layer (a shard of each) and the bytes held here."""
        import torch.distributed as dist

        local = 0
        for tensor in [*self.model.parameters(), *self.model.buffers()]:
            local += tensor.numel() * tensor.element_size()
        layers = int(getattr(self.model.config, "num_hidden_layers", 0) or 0)
        return {rank_device(self.device, dist.get_rank()): {"layers": layers, "weights_mb": round(local / MiB, 2)}}


def rank_device(device: str, rank: int) -> str:
    """A rank's key in placement and per-device peaks: its GPU, or "cpu/rank1" for gloo ranks."""
    return device if device.startswith("cuda") else f"cpu/rank{rank}"
