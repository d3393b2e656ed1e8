"""Backends turn a configuration into a loaded model that generates token ids: one backend per
generation loop, the loop the configuration's choices name (`Config.loop`, validated when the row is
built), never chosen by which flag wins."""

from __future__ import annotations

import importlib

from arena.backends.base import Backend
from arena.models.placement import Placement
from arena.models.spec import ModelSpec
from arena.techniques.registry import Config

# loop -> (module, class); each backend applies every choice a row may combine with its loop
LOOPS: dict[str, tuple[str, str]] = {
    "torch": ("arena.backends.torch", "TorchBackend"),
    "compiled-decode": ("arena.backends.compiled_decode", "CompiledDecodeBackend"),
    "tensor-parallel": ("arena.backends.tensor_parallel", "TensorParallelBackend"),
    "onnxruntime": ("arena.backends.onnxruntime", "OrtBackend"),
}
# the loops that place a model with device_map; tensor parallel places its ranks itself, ONNX Runtime
# runs on its provider's device
PLACED = ("torch", "compiled-decode")


def backend_class(config: Config) -> type[Backend]:
    module, name = LOOPS[config.loop]
    return getattr(importlib.import_module(module), name)


def make_backend(config: Config, spec: ModelSpec, dtype: str, device: str,
                 placement: Placement | None = None) -> Backend:
    if placement is not None and placement.mapped and config.backend != "torch":
        raise ValueError(f"{config.name} cannot be split over devices")  # availability refuses it first
    return backend_class(config)(config, spec, dtype, device, placement if config.loop in PLACED else None)
