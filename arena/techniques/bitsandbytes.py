"""bitsandbytes: LLM.int8 (8-bit weights with outlier decomposition) and 4-bit fp4 / NF4 (with
double quantization), quantized by transformers while loading (`BitsAndBytesConfig`).

bitsandbytes quantizes only while loading: a synthetic model loads a saved copy of its weights.
Its weights keep their quantization constants beside the packed data (a 4-bit weight's
`quant_state`: absmax per block and the code table, nested once more with double quantization;
an 8-bit weight's `SCB`: one scale per row); `state_bytes` counts them for the weights footprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arena.techniques.base import Quantizer

if TYPE_CHECKING:
    import torch

SCHEMES = ("int8", "fp4", "nf4", "nf4-dq")


@dataclass(frozen=True)
class BitsAndBytes(Quantizer):
    library = "bitsandbytes"

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown bitsandbytes scheme {self.scheme!r}; valid: {', '.join(SCHEMES)}")

    def technique(self) -> str:
        return "bitsandbytes 8-bit" if self.scheme == "int8" else "bitsandbytes 4-bit"

    def hf_config(self, dtype: torch.dtype, cpu_offload: bool = False) -> Any:
        from transformers import BitsAndBytesConfig

        if self.scheme == "int8":
            return BitsAndBytesConfig(load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=cpu_offload)
        return BitsAndBytesConfig(
            load_in_4bit=True,
            llm_int8_enable_fp32_cpu_offload=cpu_offload,
            bnb_4bit_quant_type="fp4" if self.scheme == "fp4" else "nf4",
            bnb_4bit_use_double_quant=self.scheme == "nf4-dq",
            bnb_4bit_compute_dtype=dtype,
        )

    def state_bytes(self, tensor: torch.Tensor) -> int:
        total = _plain_bytes(getattr(tensor, "SCB", None))
        state = getattr(tensor, "quant_state", None)
        while state is not None:
            total += sum(_plain_bytes(getattr(state, name, None)) for name in ("absmax", "code", "offset"))
            state = getattr(state, "state2", None)
        return total


def _plain_bytes(value: object) -> int:
    import torch

    return value.numel() * value.element_size() if isinstance(value, torch.Tensor) else 0
