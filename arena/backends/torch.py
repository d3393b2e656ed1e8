"""transformers on PyTorch: attention implementations, SDPA kernel choice, bitsandbytes
quantization, static KV cache with torch.compile, and (on a legacy stack) BetterTransformer."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from arena import models
from arena.backends.common import Backend, torch_dtype

_SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "math": "MATH"}


def quantization_config(quant: str, compute_dtype: torch.dtype):
    from transformers import BitsAndBytesConfig

    if quant == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="fp4" if quant == "fp4" else "nf4",
        bnb_4bit_use_double_quant=quant == "nf4-dq",
        bnb_4bit_compute_dtype=compute_dtype,
    )


class TorchBackend(Backend):
    def load(self) -> None:
        from transformers import AutoModelForCausalLM

        cfg, spec = self.config, self.spec
        dtype = torch_dtype(self.dtype)
        attn = cfg.attn if not cfg.bettertransformer else "eager"
        if spec.synthetic and not cfg.quantized:
            model = models.build_synthetic(spec, dtype, self.device, attn)
        else:
            source = (
                str(models.synthetic_checkpoint(spec, self.dtype, self.device))
                if spec.synthetic else models.pretrained_path(spec)
            )
            kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attn, "trust_remote_code": False}
            if cfg.quantized:
                kwargs["quantization_config"] = quantization_config(cfg.quant, dtype)
                kwargs["device_map"] = {"": self.device if self.device != "cuda" else 0}
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
            if not cfg.quantized:
                model = model.to(self.device)
        if cfg.bettertransformer:
            model = model.to_bettertransformer()
        self.model = model.eval()

    def generation_context(self) -> contextlib.AbstractContextManager:
        if self.config.sdpa_kernel is None:
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(getattr(SDPBackend, _SDPA_BACKENDS[self.config.sdpa_kernel]))

    def extra_generate_kwargs(self, max_new_tokens: int) -> dict[str, Any]:
        if not self.config.static_cache:
            return {}
        from transformers import CompileConfig

        # generate() compiles the decode step itself when the cache is static; on CPU it only
        # does so when asked for every device. CUDA graphs ("reduce-overhead") are GPU-only.
        compile_config = CompileConfig(mode="reduce-overhead" if self.device.startswith("cuda") else "default")
        compile_config._compile_all_devices = True
        return {"cache_implementation": "static", "compile_config": compile_config}
