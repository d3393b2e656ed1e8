"""torchao weight quantization (int8 / int4 / float8 / gemlite uint4): one `TorchAo` per scheme.

Two ways in, both quantizing the decoder's nn.Linear weights and leaving lm_head and the
embeddings in the model dtype (as transformers' TorchAoConfig does):
- a checkpoint: `from_pretrained(..., quantization_config=TorchAo(scheme).hf_config(dtype))`;
- a model already built (synthetic weights): `TorchAo(scheme).quantize(model)`, no checkpoint.

A torchao weight is a tensor subclass: the weights footprint counts its inner tensors (packed data,
scales, zero points) generically (arena/measure/footprint.py), so `state_bytes` adds nothing.

Every config is built with `set_inductor_config=False`: torchao would otherwise set process-global
inductor flags on each quantize_ call, and bf16 compiled configurations would then run with other
flags than their quantized neighbours. The compiled backends set one set of flags for all
(arena/backends/inductor.py).

int4 uses torchao's `tile_packed_to_4d` format: tinygemm (`aten._weight_int4pack_mm`, in torch
itself, bf16, CUDA sm80+), the fastest batch-1 int4 kernel that needs no extra package. The
`preshuffled` format (MSLK's bf16i4bf16_shuffled) needs the mslk-cuda package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arena.techniques.base import Quantizer

if TYPE_CHECKING:
    import torch


def _int4(group_size: int, packing: str = "tile_packed_to_4d") -> Callable[[], Any]:
    def build() -> Any:
        from torchao.quantization import Int4WeightOnlyConfig

        return Int4WeightOnlyConfig(group_size=group_size, int4_packing_format=packing,
                                    set_inductor_config=False)
    return build


def _int8wo() -> Any:
    from torchao.quantization import Int8WeightOnlyConfig

    return Int8WeightOnlyConfig(set_inductor_config=False)  # per-row symmetric int8


def _float8wo() -> Any:
    from torchao.quantization import Float8WeightOnlyConfig

    return Float8WeightOnlyConfig(set_inductor_config=False)  # e4m3, per-row scales


def _gemlite4(group_size: int) -> Callable[[], Any]:
    def build() -> Any:
        # torchao's prototype entry to gemlite (mobiusml/dropbox): bit-packed uint4 weights with a
        # scale and zero point per group, Triton GEMV kernels tuned for one-row (decode) matmuls
        from torchao.prototype.quantization.quant_api import UIntxWeightOnlyConfig

        return UIntxWeightOnlyConfig(group_size=group_size, bit_width=4, set_inductor_config=False)
    return build


def _float8dq() -> Any:
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow

    # row-wise scales: torch._scaled_mm (or MSLK's f8f8bf16_rowwise when installed)
    return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), set_inductor_config=False)


# scheme -> torchao config factory
CONFIGS: dict[str, Callable[[], Any]] = {
    "int8wo": _int8wo,
    "int4wo-g128": _int4(128),
    "int4wo-g64": _int4(64),
    "int4wo-g128-preshuffled": _int4(128, "preshuffled"),
    "uint4wo-g128-gemlite": _gemlite4(128),
    "float8wo": _float8wo,
    "float8dq": _float8dq,
}


def torchao_config(name: str) -> Any:
    """The torchao config object for a scheme."""
    try:
        return CONFIGS[name]()
    except KeyError:
        raise ValueError(f"unknown torchao quantization {name!r}; valid: {', '.join(CONFIGS)}") from None


@dataclass(frozen=True)
class TorchAo(Quantizer):
    library = "torchao"
    in_place = True

    def __post_init__(self) -> None:
        if self.scheme not in CONFIGS:
            raise ValueError(f"unknown torchao quantization {self.scheme!r}; valid: {', '.join(CONFIGS)}")

    def hf_config(self, dtype: torch.dtype, cpu_offload: bool = False) -> Any:
        """transformers' TorchAoConfig for from_pretrained (quantize while loading)."""
        from transformers import TorchAoConfig

        return TorchAoConfig(quant_type=torchao_config(self.scheme))

    def quantize(self, model: torch.nn.Module) -> torch.nn.Module:
        """Quantize every nn.Linear of `model` but its output embeddings (lm_head), as TorchAoConfig
        does at load time."""
        import torch
        from torchao.quantization import quantize_

        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None

        def is_target(module: torch.nn.Module, fqn: str) -> bool:
            return isinstance(module, torch.nn.Linear) and module is not head

        quantize_(model, torchao_config(self.scheme), filter_fn=is_target)
        return model
