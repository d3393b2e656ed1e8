"""What every backend offers the worker: load, generate, teacher-forced NLL, weights size."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from arena.measure import footprint
from arena.models.placement import Placement
from arena.models.spec import ModelSpec
from arena.techniques.registry import Config
from arena.techniques.speculative import Draft, DraftCounter

NLL_CHUNK = 128  # positions scored per forward pass in nll()


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

    # the kinds of technique choice this backend applies (a row's other kinds are refused when it is
    # built: arena/techniques/registry.py); tests/test_composition.py holds the two together
    applies: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Config, spec: ModelSpec, dtype: str, device: str,
                 placement: Placement | None = None) -> None:
        self.config, self.spec, self.dtype, self.device = config, spec, dtype, device
        self.placement = placement or Placement()  # a split over devices (PyTorch backends only)
        self.model: Any = None
        self.draft: Draft | None = None  # an assisted configuration's draft model (load_draft)
        self.drafts: DraftCounter | None = None  # speculative configurations: guesses proposed and accepted

    def load(self) -> None:
        raise NotImplementedError

    def load_draft(self, spec: ModelSpec, tokenizer: Any) -> None:
        """Load an assisted configuration's draft model beside the model (after load())."""
        raise NotImplementedError(f"{self.config.name}: this backend runs no draft model")

    def generation_context(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def extra_generate_kwargs(self, max_new_tokens: int) -> dict[str, Any]:
        return {}

    def weights_bytes(self) -> int:
        """Bytes the weights really hold: quantized data, scales and zero points counted as
        stored (get_memory_footprint() counts a torchao weight at its outer dtype's size), and what
        the quantization library keeps beside them (its quantizer's state_bytes)."""
        quant = self.config.quant
        return footprint.weights_bytes(self.model, quant.state_bytes if quant else None)

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

    def prepare(self) -> float | None:
        """A step before load that has its own time (the ONNX export): seconds, or None when the
        backend has none."""
        return None

    def nll_note(self) -> str:
        """What nll() scores, where it is not the very model that generated."""
        return ""

    def nll(self, prompt_ids: list[int], continuation: list[int], chunk: int = NLL_CHUNK) -> float:
        return self.scores(prompt_ids, continuation, chunk)[0]

    def scores(self, prompt_ids: list[int], continuation: list[int],
               chunk: int = NLL_CHUNK) -> tuple[float, list[float]]:
        """Mean negative log-likelihood of `continuation` after `prompt_ids`, and each position's
        lead of the continuation's token over the best other (arena/measure/quality.py's near-tie
        rule reads them), teacher-forced through the KV cache `chunk` positions at a time: the
        logits held at once are chunk x vocabulary, never the whole sequence's."""
        from arena.measure.quality import leads
        ids = list(prompt_ids) + list(continuation)
        start = len(prompt_ids) - 1  # the logits at position p score token p + 1
        device = self.input_device()
        total, past, seen, lead = 0.0, self.nll_cache(), 0, []
        with torch.inference_mode(), self.generation_context():
            spans = ([(0, start)] if start > 0 else []) + [
                (a, min(a + chunk, len(ids) - 1)) for a in range(start, len(ids) - 1, chunk)]
            for a, b in spans:
                piece = torch.tensor([ids[a:b]], device=device)
                mask = torch.ones((1, b), dtype=torch.long, device=device)
                keep = self.nll_prompt_kwargs() if a < start else {}
                out = self.model(input_ids=piece, attention_mask=mask, past_key_values=past, use_cache=True, **keep)
                past, seen = out.past_key_values, b
                if a < start:
                    continue  # the prompt: only its cache is needed
                target = torch.tensor(ids[a + 1:b + 1], device=out.logits.device)
                logits = out.logits[0].float()
                total += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
                lead += leads(logits, target)
                del out, logits
        assert seen == len(ids) - 1
        return total / len(continuation), lead

    def nll_prompt_kwargs(self) -> dict[str, Any]:
        """Forward kwargs for the prompt step of nll(): its logits are not needed."""
        return {"logits_to_keep": 1}

    def nll_cache(self) -> Any:
        """The empty KV cache nll() starts from (None: the model makes its own)."""
        from transformers import DynamicCache

        return DynamicCache()
