"""Backends turn a configuration into a loaded model that generates token ids."""

from __future__ import annotations

from arena.backends.base import Backend
from arena.models.placement import Placement
from arena.models.spec import ModelSpec
from arena.techniques.registry import Config


def make_backend(config: Config, spec: ModelSpec, dtype: str, device: str,
                 placement: Placement | None = None) -> Backend:
    if placement is not None and placement.mapped and config.backend != "torch":
        raise ValueError(f"{config.name} cannot be split over devices")  # availability refuses it first
    if config.backend == "onnxruntime":
        from arena.backends.onnxruntime import OrtBackend

        return OrtBackend(config, spec, dtype, device)
    if config.tensor_parallel:
        from arena.backends.tensor_parallel import TensorParallelBackend

        return TensorParallelBackend(config, spec, dtype, device)
    if config.compiled_decode:
        from arena.backends.compiled_decode import CompiledDecodeBackend

        return CompiledDecodeBackend(config, spec, dtype, device, placement)
    from arena.backends.torch import TorchBackend

    return TorchBackend(config, spec, dtype, device, placement)
