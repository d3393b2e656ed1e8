"""Speculative decoding through transformers' generate(): cheap guesses verified by the model in one
forward pass, so one step of the model may emit several tokens. Lossless under greedy decoding: a
guess is kept only where it equals the model's own choice.

- `prompt-lookup`: guesses copied from the prompt where its last n-gram occurred before
  (`prompt_lookup_num_tokens`); no second model. It shines where the output repeats the prompt
  (rewrite, edit, summarise a pasted passage).
- `assisted`: a smaller draft model proposes the guesses (`assistant_model`). A draft with another
  vocabulary goes through universal assisted decoding (`assistant_tokenizer` and `tokenizer`).

Its limits, as transformers 4.57 has them: one sequence at a time (batch 1), a dynamic KV cache
only (rejected guesses are cropped from the cache: no static cache, no compiled decode step, no
tensor-parallel ranks), one candidate generator per call (prompt lookup and a draft do not
combine: generate() would take prompt lookup and silently drop the draft). Synthetic weights
say nothing about acceptance, so their rows are refused.

What it measures (`DraftCounter`, wrapped around generate()'s candidate generator): draft tokens
proposed and accepted, and the model's forward passes (one per step), from which the acceptance
rate and the tokens per model step follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from arena.techniques.base import Needs, Row, Site

if TYPE_CHECKING:
    import torch

Guesses = Literal["prompt-lookup", "assisted", "assisted+prompt-lookup"]

LOOKUP_TOKENS = 10  # prompt_lookup_num_tokens: transformers' documented example value
LOOKUP_NGRAM = 2  # max_matching_ngram_size: transformers' default
DRAFT_TOKENS = 20  # num_assistant_tokens: transformers' default, held constant between calls
DRAFT_CONFIDENCE = 0.4  # assistant_confidence_threshold: transformers' default, reset before each call
SYNTHETIC = "synthetic weights say nothing about acceptance: speculative decoding needs a model with real weights"


@dataclass(frozen=True)
class Speculation:
    """Where a row's guesses come from (the registry's `Config.speculation`)."""

    guesses: Guesses
    lookup_tokens: int = LOOKUP_TOKENS
    ngram: int = LOOKUP_NGRAM

    kind: ClassVar[str] = "speculation"  # the row's choice it fills (arena/techniques/registry.py)

    @property
    def draft(self) -> bool:
        """A draft model is loaded beside the model (named by the request's draft_model)."""
        return self.guesses in ("assisted", "assisted+prompt-lookup")

    def requirements(self) -> Needs:
        """Nothing beyond transformers' generate(), which every PyTorch row has."""
        return Needs()


def blocker(config: Row, site: Site) -> str | None:
    """Why `config`'s speculative decoding cannot run at `site`, or None (what it cannot be combined
    with is `conflict`'s: refused when the row is built)."""
    spec = config.speculation
    if spec is None:
        return None
    if spec.guesses == "assisted+prompt-lookup":
        import transformers

        return (f"transformers {transformers.__version__} runs one candidate generator per generate() call: "
                f"given both, it takes prompt lookup and drops the draft model; run prompt-lookup and assisted "
                f"as two rows")
    if site.synthetic:
        return SYNTHETIC
    if site.batch > 1:
        return (f"speculative decoding in transformers runs one sequence at a time (batch 1); this run asks "
                f"batch {site.batch}")
    return None


def conflict(config: Row) -> str | None:
    """Why speculative decoding cannot be combined with the rest of `config` (refused when the row
    is built), or None."""
    if config.speculation is None:
        return None
    if config.compiled or config.tensor_parallel:
        return ("speculative decoding crops rejected guesses from the KV cache, which transformers supports "
                "with its dynamic cache only (no static cache, compiled decode step or tensor-parallel ranks)")
    if config.backend != "torch":
        return "speculative decoding runs through transformers' generate() on PyTorch"
    return None


def generate_kwargs(spec: Speculation, draft: Draft | None) -> dict[str, Any]:
    """What generate() needs for `spec`'s guesses."""
    if spec.guesses == "prompt-lookup":
        return {"prompt_lookup_num_tokens": spec.lookup_tokens, "max_matching_ngram_size": spec.ngram}
    if draft is None:
        raise RuntimeError("assisted decoding needs its draft model loaded first")
    draft.reset()
    kwargs: dict[str, Any] = {"assistant_model": draft.model}
    if draft.tokenizers is not None:  # another vocabulary: universal assisted decoding
        kwargs["tokenizer"], kwargs["assistant_tokenizer"] = draft.tokenizers
    return kwargs


@dataclass
class Draft:
    """A loaded draft model, and the two tokenizers where its vocabulary is not the model's."""

    model: Any
    tokenizers: tuple[Any, Any] | None = None  # (the model's, the draft's)

    def resident(self) -> None:
        """Read every weight once: a checkpoint mapped lazily from its file (safetensors on the CPU)
        is then in memory, so the memory read after the load holds the draft's weights."""
        import torch

        with torch.inference_mode():
            for tensor in (*self.model.parameters(), *self.model.buffers()):
                tensor.sum()

    def reset(self) -> None:
        """Every call starts from the same drafting settings: transformers writes its adapted
        confidence threshold (and a heuristic schedule's length) back into the draft's generation
        config, so the warm-up would otherwise change what the timed repeats do."""
        config = self.model.generation_config
        config.num_assistant_tokens = DRAFT_TOKENS
        config.num_assistant_tokens_schedule = "constant"
        config.assistant_confidence_threshold = DRAFT_CONFIDENCE


def same_vocabulary(model_tokenizer: Any, draft_tokenizer: Any) -> bool:
    return model_tokenizer.get_vocab() == draft_tokenizer.get_vocab()


def vocabulary_blocker(model_config: Any, draft_config: Any, model_tokenizer: Any, draft_tokenizer: Any) -> str | None:
    """Why this draft cannot propose tokens for this model, or None. transformers decides by the
    configs' vocabulary sizes alone: equal sizes take the draft's ids as the model's own, other
    sizes translate through both tokenizers. Equal sizes with other tokens would pass unseen."""
    size = model_config.get_text_config().vocab_size
    draft_size = draft_config.get_text_config().vocab_size
    if size == draft_size and not same_vocabulary(model_tokenizer, draft_tokenizer):
        return (f"the draft's vocabulary has the model's size ({size:,}) but other tokens: transformers would "
                f"read its token ids as the model's; pick a draft with the model's tokenizer, or one whose "
                f"vocabulary size differs (translated through both tokenizers)")
    return None


class DraftCounter:
    """Counts what generate()'s candidate generator proposes and what the model accepts, by
    wrapping the generator transformers builds for each call (`install`). One model step (one
    forward pass of the model) per `update_candidate_strategy` call."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.proposed = self.accepted = self.steps = 0

    def install(self, model: Any) -> None:
        build = model._get_candidate_generator

        def counted(*args: Any, **kwargs: Any) -> _Counted:
            generator = build(*args, **kwargs)
            _generate_past_eos(generator, model.device)
            return _Counted(generator, self)

        model._get_candidate_generator = counted  # this instance only

    def fields(self, tokens: int) -> dict[str, float | None]:
        """acceptance_rate and tokens_per_step over what was counted, `tokens` the new tokens of
        one row over the same calls."""
        return {
            "acceptance_rate": self.accepted / self.proposed if self.proposed else None,
            "tokens_per_step": tokens / self.steps if self.steps else None,
        }


class _Counted:
    """A candidate generator, passed through, its proposals and acceptances counted."""

    def __init__(self, inner: Any, counter: DraftCounter) -> None:
        self.inner, self.counter = inner, counter

    def get_candidates(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        candidates, logits = self.inner.get_candidates(input_ids)
        self.counter.proposed += candidates.shape[1] - input_ids.shape[1]
        return candidates, logits

    def update_candidate_strategy(self, input_ids: torch.Tensor, scores: torch.Tensor, num_matches: Any) -> None:
        self.counter.steps += 1
        self.counter.accepted += int(num_matches)
        self.inner.update_candidate_strategy(input_ids, scores, num_matches)

    def __getattr__(self, name: str) -> Any:  # assistant_model, num_assistant_tokens... read by generate()
        return getattr(self.inner, name)


def _generate_past_eos(generator: Any, device: Any) -> None:
    """The arena generates past end-of-text (eos_token_id=None, every row the same length);
    transformers 4.57's prompt lookup cuts its guesses at an end-of-text id it then assumes is set
    (torch.isin against None fails). No id: no guess is cut."""
    from transformers.generation.candidate_generator import PromptLookupCandidateGenerator

    if isinstance(generator, PromptLookupCandidateGenerator) and generator.eos_token_id is None:
        import torch

        generator.eos_token_id = torch.empty(0, dtype=torch.long, device=device)
