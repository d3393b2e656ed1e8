"""Tokenizers: prompt ids in (the chat template for chat models, seeded random ids for
synthetic ones), text out, and which ids end a turn."""

from __future__ import annotations

from arena.models.sources import hub_error, load_config, pretrained_path
from arena.models.spec import ModelSpec
from arena.models.synthetic import SYNTHETIC_SEED


def load_tokenizer(spec: ModelSpec):
    """The tokenizer, or None for synthetic models (they are fed random token ids)."""
    if spec.synthetic:
        return None
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(pretrained_path(spec), trust_remote_code=False)
    except Exception as exc:
        raise hub_error(spec, exc) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def encode_prompt(spec: ModelSpec, tokenizer, prompt: str, *, prompt_tokens: int = 128) -> list[int]:
    """Token ids of one prompt row: the chat template for chat models, the raw text otherwise,
    seeded random ids for synthetic models."""
    if spec.synthetic:
        import torch

        vocab = load_config(spec).vocab_size
        gen = torch.Generator().manual_seed(SYNTHETIC_SEED)
        return torch.randint(4, vocab, (prompt_tokens,), generator=gen).tolist()
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
        )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)
    return tokenizer(prompt, add_special_tokens=True)["input_ids"]


def decode(spec: ModelSpec, tokenizer, ids: list[int]) -> str:
    if spec.synthetic or tokenizer is None:
        return "[synthetic weights: meaningless token ids] " + " ".join(map(str, ids))
    return tokenizer.decode(ids, skip_special_tokens=True)


def eos_ids(spec: ModelSpec, tokenizer) -> set[int]:
    if spec.synthetic or tokenizer is None:
        return set()
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen_eos = getattr(load_config(spec), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif isinstance(gen_eos, list):
        ids.update(gen_eos)
    return ids
