"""What every backend offers the worker: load, generate, teacher-forced NLL, weights size."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from arena.core.registry import Config
from arena.measure import footprint
from arena.models.placement import Placement
from arena.models.spec import ModelSpec


@dataclass
class Sampling:
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def generate_kwargs(self) -> dict[str, Any]:
        if not self.do_sample:
            return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": None}


class Backend:
    """Base: subclasses set self.model in load() and may override the hooks below."""

    def __init__(self, config: Config, spec: ModelSpec, dtype: str, device: str,
                 placement: Placement | None = None) -> None:
        self.config, self.spec, self.dtype, self.device = config, spec, dtype, device
        self.placement = placement or Placement()  # a split over devices (PyTorch backends only)
        self.model: Any = None

    def load(self) -> None:
        raise NotImplementedError

    def generation_context(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def extra_generate_kwargs(self, max_new_tokens: int) -> dict[str, Any]:
        return {}

    def weights_bytes(self) -> int:
        """Bytes the weights really hold: quantized data, scales and zero points counted as
        stored (get_memory_footprint() counts a torchao weight at its outer dtype's size)."""
        return footprint.weights_bytes(self.model)

    def placement_used(self) -> dict[str, Any]:
        """Device -> {"layers", "weights_mb"} of the loaded model; {} where not known."""
        return {}

    def input_device(self) -> torch.device:
        return torch.device(self.device)

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, sampling: Sampling,
                 streamer: Any = None) -> torch.Tensor:
        """Exactly max_new_tokens new tokens per row: end-of-sequence does not stop generation
        (eos_token_id is unset), so every configuration produces the same number of tokens."""
        input_ids = input_ids.to(self.input_device())
        mask = torch.ones_like(input_ids)
        if sampling.do_sample:
            torch.manual_seed(sampling.seed)
        with torch.inference_mode(), self.generation_context():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                min_new_tokens=None,
                eos_token_id=None,
                pad_token_id=0,
                use_cache=True,
                streamer=streamer,
                **sampling.generate_kwargs(),
                **self.extra_generate_kwargs(max_new_tokens),
            )
        return out[:, input_ids.shape[1]:]

    def nll(self, prompt_ids: list[int], continuation: list[int]) -> float:
        """Mean negative log-likelihood of `continuation` after `prompt_ids`, teacher-forced in one
        forward pass."""
        ids = torch.tensor([prompt_ids + continuation], device=self.input_device())
        with torch.inference_mode(), self.generation_context():
            logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits
        logits = logits[0, len(prompt_ids) - 1: -1].float()
        target = torch.tensor(continuation, device=logits.device)
        return float(torch.nn.functional.cross_entropy(logits, target))
