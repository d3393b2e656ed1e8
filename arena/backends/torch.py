"""transformers on PyTorch: a configuration's techniques (arena/techniques/) applied to a model —
its attention implementation and SDPA kernel choice, its weight quantization (while loading, or in
place on synthetic weights), a static KV cache with torch.compile, speculative decoding (prompt
lookup, a draft model), and (on a legacy stack) BetterTransformer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from arena.backends import inductor
from arena.backends.base import NLL_CHUNK, Backend
from arena.models import placement
from arena.models.dtypes import torch_dtype
from arena.models.sources import pretrained_path
from arena.models.synthetic import build_split, build_synthetic, synthetic_checkpoint
from arena.models.spec import ModelSpec
from arena.techniques import attention, compilation, speculative


@contextlib.contextmanager
def _entered_together(contexts: list[contextlib.AbstractContextManager]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for context in contexts:
            stack.enter_context(context)
        yield


class TorchBackend(Backend):
    # compile: static cache (compiled decode: its subclass); speculation: through generate()
    applies = frozenset({"attention", "quantization", "compile", "speculation"})

    def load(self) -> None:
        from transformers import AutoModelForCausalLM

        cfg, spec, quant = self.config, self.spec, self.config.quant
        dtype = torch_dtype(self.dtype)
        attn = cfg.attn  # BetterTransformer loads eager attention, then converts it
        # A synthetic model is built on the meta device and each weight made where it runs, split
        # or not (no checkpoint); a quantizer that quantizes a built model does so in place, the
        # others load a saved copy (bitsandbytes quantizes while loading).
        mapped = self.placement.mapped
        if spec.synthetic and quant is None and mapped:
            model, _ = build_split(spec, dtype, self.placement.accelerate_max_memory(), attn)
        elif spec.synthetic and (quant is None or quant.in_place) and not mapped:
            model = build_synthetic(spec, dtype, self.device, attn)
            if quant is not None:  # quantize the built weights in place: no checkpoint needed
                model = quant.quantize(model)
        else:
            source = (
                str(synthetic_checkpoint(spec, self.dtype, self.device))
                if spec.synthetic else pretrained_path(spec)
            )
            if spec.synthetic and self.device.startswith("cuda"):
                torch.cuda.empty_cache()  # the copy may have just been built here: free its memory
            kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attn, "trust_remote_code": False}
            hf_quant = None
            if quant is not None:
                offload = mapped and bool(self.placement.gpus) and "cpu" in self.placement.max_memory
                hf_quant = quant.hf_config(dtype, cpu_offload=offload)
                kwargs["device_map"] = {"": self.device if self.device != "cuda" else 0}
                if hf_quant is not None:
                    kwargs["quantization_config"] = hf_quant
            if mapped:
                kwargs["device_map"] = "auto"
                kwargs["max_memory"] = self.placement.accelerate_max_memory()
            try:
                model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
            except Exception as exc:
                if mapped:
                    self._explain_split_failure(exc)
                raise
            if quant is None and not mapped:
                model = model.to(self.device)
            if quant is not None and hf_quant is None:  # a library that quantizes loaded weights
                model = quant.quantize(model)
        if cfg.bettertransformer:
            model = model.to_bettertransformer()
        self.model = model.eval()
        if cfg.speculation is not None:
            self.drafts = speculative.DraftCounter()
            self.drafts.install(self.model)

    def load_draft(self, spec: ModelSpec, tokenizer: Any) -> None:
        """The draft model, whole on the device the model takes its input on, in the run dtype.
        A draft with another vocabulary size gets both tokenizers (universal assisted decoding);
        prepare.py has refused one of the same size with other tokens."""
        from transformers import AutoModelForCausalLM

        from arena.models.tokenizers import load_tokenizer

        model = AutoModelForCausalLM.from_pretrained(pretrained_path(spec), dtype=torch_dtype(self.dtype),
                                                     attn_implementation="sdpa", trust_remote_code=False)
        model = model.to(self.input_device()).eval()
        size = self.model.config.get_text_config().vocab_size
        same = model.config.get_text_config().vocab_size == size
        self.draft = speculative.Draft(model, None if same else (tokenizer, load_tokenizer(spec)))

    def generation_context(self) -> contextlib.AbstractContextManager:
        contexts: list[contextlib.AbstractContextManager] = []
        if self.config.compiled:  # every compiled configuration compiles under the same inductor flags
            contexts.append(inductor.flags())
        if self.config.sdpa_kernel is not None:
            contexts.append(attention.kernel_context(self.config.sdpa_kernel))
        if len(contexts) < 2:
            return contexts[0] if contexts else contextlib.nullcontext()
        return _entered_together(contexts)

    def extra_generate_kwargs(self, max_new_tokens: int) -> dict[str, Any]:
        kwargs = compilation.generate_kwargs(self.device) if self.config.static_cache else {}
        if self.config.speculation is not None:
            kwargs.update(speculative.generate_kwargs(self.config.speculation, self.draft))
        return kwargs

    def placement_used(self) -> dict[str, Any]:
        return placement.summarize(self.model, self.device)

    def scores(self, prompt_ids: list[int], continuation: list[int],
               chunk: int = NLL_CHUNK) -> tuple[float, list[float]]:
        """One forward pass to the last hidden states (sequence x hidden), then the output projection,
        cross-entropy and each position's lead `chunk` positions at a time: never the whole
        sequence x vocabulary logits. One pass without a cache keeps the attention exactly as
        configured (a kernel choice such as flash refuses the explicit masks a cached, chunked pass
        would need)."""
        from arena.measure.quality import leads

        ids = torch.tensor([list(prompt_ids) + list(continuation)], device=self.input_device())
        start = len(prompt_ids) - 1
        head = self.model.get_output_embeddings()
        total, lead = 0.0, []
        with torch.inference_mode(), self.generation_context():
            hidden = self.model.base_model(input_ids=ids, attention_mask=torch.ones_like(ids),
                                              use_cache=False).last_hidden_state[0]
            for a in range(start, ids.shape[1] - 1, chunk):
                b = min(a + chunk, ids.shape[1] - 1)
                logits = head(hidden[a:b].to(head.weight.device)).float()
                target = ids[0, a + 1:b + 1].to(logits.device)
                total += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
                lead += leads(logits, target)
        return total / len(continuation), lead

    def nll_note(self) -> str:
        if self.config.static_cache:
            return "scored uncompiled in one pass (generate() compiled only its decode step; same weights and attention)"
        return ""

    def _explain_split_failure(self, exc: Exception) -> None:
        """A budget too small for the model makes accelerate put the rest on "disk", which fails
        deep inside loading with an unhelpful message ("device disk is invalid"): say what happened."""
        text = str(exc).lower()
        if "disk" in text or "offload" in text:
            raise RuntimeError(placement.disk_refusal(self.placement.max_memory)) from exc
