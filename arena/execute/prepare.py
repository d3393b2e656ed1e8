"""A RunRequest validated against the server's limits, the registry and the model: every bad input
becomes one clear line (RequestError), and what validation derived (the model, the dtype, the
prompt's token ids, the placement) travels with the request as a PreparedRun."""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from arena.core.errors import one_line_text, short_repr
from arena.core.limits import (
    MAX_BATCH,
    MAX_NEW_TOKENS,
    MAX_PROMPT_CHARS,
    MAX_REPEATS,
    MAX_SEED,
    MAX_SYNTHETIC_PROMPT_TOKENS,
    MAX_TEMPERATURE,
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    ServerLimits,
)
from arena.core.request import RequestError, RunRequest, float_in, int_in, text_in
from arena.models import placement
from arena.models.dtypes import resolve_dtype
from arena.models.sources import context_length, load_config, pretrained_path
from arena.models.spec import ModelError, ModelSpec, parse_model
from arena.models.tokenizers import encode_prompt, load_tokenizer
from arena.techniques import registry, speculative


@functools.lru_cache(maxsize=8)
def _kept_tokenizer(spec: ModelSpec, stamp: float | None):
    return load_tokenizer(spec)


def request_tokenizer(spec: ModelSpec):
    """`spec`'s tokenizer for validation, kept for the next requests on the model (reading it from
    disk was 0.1 s of every run's way to its first text); read again when its folder changes."""
    path = None if spec.synthetic else pretrained_path(spec)
    stamp = os.path.getmtime(path) if path and os.path.isdir(path) else None
    return _kept_tokenizer(spec, stamp)


# One validation at a time (a kept tokenizer serves one request at a time), and none while
# preload() imports: transformers' lazy module fails an import made while another thread is still
# initialising it ("cannot import name").
_LOCK = threading.RLock()


def preload() -> None:
    """What the first validation would import (transformers: 2-3 s on a small machine), done by
    the server at start in a background thread instead of in the first visitor's request."""
    with _LOCK:
        from transformers import AutoConfig, AutoTokenizer  # noqa: F401


@dataclass
class PreparedRun:
    """A validated request with everything derived from it."""

    request: RunRequest
    spec: ModelSpec
    config_names: list[str]
    dtype: str
    prompt_ids: list[int]
    context: int
    limits: ServerLimits = field(default_factory=ServerLimits)  # the runner enforces the run's share
    placement: placement.Placement = field(default_factory=placement.Placement)
    model_config: Any = None  # the model's PretrainedConfig, as validation read it (model-specific availability)
    draft: ModelSpec | None = None  # the draft model, where an assisted configuration is asked


def _config_names(value: Any, limits: ServerLimits) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise RequestError("configs must be a list of configuration names (or one comma-separated text)")
    try:
        names = registry.parse_names(list(items))
    except registry.UnknownConfigError as exc:
        raise RequestError(one_line_text(str(exc))) from None
    if limits.max_configs is not None and len(names) > limits.max_configs:
        raise RequestError(f"{len(names)} configurations asked; the limit here is {limits.max_configs} per run")
    return names


def checked_model(value: Any, limits: ServerLimits, allow_local: bool) -> ModelSpec:
    text = text_in("model", value).strip() or "default"
    if len(text) > 4096:
        raise RequestError(f"the model id is {len(text)} characters long; that is no model id")
    # Where local paths are refused, checked on what was typed before anything looks at the
    # disk; always on the resolved id before anything loads ("/models/../etc" is not under
    # "/models"; a Hub id is fetched only when allowed).
    if not allow_local and not limits.model_allowed(text):
        raise RequestError(f"model {short_repr(text)} is not allowed here; allowed: {', '.join(limits.allowed_models)}")
    try:
        spec = parse_model(text, allow_local=allow_local)
    except ModelError as exc:
        raise RequestError(one_line_text(str(exc)), advice=exc.advice) from None
    if not limits.model_allowed(spec.id):
        raise RequestError(f"model {short_repr(spec.id)} is not allowed here; allowed: {', '.join(limits.allowed_models)}")
    return spec


def _placement(req: RunRequest, limits: ServerLimits) -> placement.Placement:
    """gpus and max_memory, checked against the devices here; the request keeps their
    normalized form (a list of indices, budgets in bytes) so that it validates again as is."""
    empty = (None, "")
    if req.gpus in empty and req.max_memory in empty:
        req.gpus = req.max_memory = None
        return placement.Placement()
    try:
        where = placement.parse(None if req.gpus == "" else req.gpus,
                                None if req.max_memory == "" else req.max_memory,
                                worker_memory_mb=limits.worker_memory_mb)
    except placement.PlacementError as exc:
        raise RequestError(one_line_text(str(exc))) from None
    req.gpus = list(where.gpus) or None
    req.max_memory = dict(where.max_memory) or None
    return where


def validate(req: RunRequest, *, allow_local_models: bool | None = None,
             limits: ServerLimits | None = None) -> PreparedRun:
    """Check a request against the server's limits and prepare its prompt; RequestError (one
    line) for anything wrong. `limits` defaults to the generous `ServerLimits()`;
    `allow_local_models`, when given, overrides `limits.allow_local_models`."""
    with _LOCK:
        return _validate(req, allow_local_models, limits or ServerLimits())


def _validate(req: RunRequest, allow_local_models: bool | None, limits: ServerLimits) -> PreparedRun:
    allow_local = limits.allow_local_models if allow_local_models is None else bool(allow_local_models)
    names = _config_names(req.configs, limits)
    req.max_new_tokens = int_in("max_new_tokens", req.max_new_tokens, 1, min(MAX_NEW_TOKENS, limits.max_new_tokens))
    req.batch_size = int_in("batch_size", req.batch_size, 1, min(MAX_BATCH, limits.max_batch))
    req.repeats = int_in("repeats", req.repeats, 1, min(MAX_REPEATS, limits.max_repeats))
    req.seed = int_in("seed", req.seed, 0, MAX_SEED)
    # synthetic models only; limits.max_prompt_tokens applies below, to every model's prompt
    req.prompt_tokens = int_in("prompt_tokens", req.prompt_tokens, 1, MAX_SYNTHETIC_PROMPT_TOKENS)
    req.temperature = float_in("temperature", req.temperature, 0.0, MAX_TEMPERATURE, lo_open=True)
    req.top_p = float_in("top_p", req.top_p, 0.0, 1.0, lo_open=True)
    req.timeout_s = float_in("timeout_s", req.timeout_s, MIN_TIMEOUT_S, MAX_TIMEOUT_S)
    if not isinstance(req.do_sample, bool):
        raise RequestError(f"do_sample must be true or false (got {short_repr(req.do_sample)})")
    if not isinstance(req.isolation, str) or req.isolation not in ("process", "inline"):
        raise RequestError("isolation must be 'process' or 'inline'")
    try:
        dtype = resolve_dtype(text_in("dtype", req.dtype))
    except ValueError as exc:
        raise RequestError(one_line_text(str(exc))) from None
    where = _placement(req, limits)
    spec = checked_model(req.model, limits, allow_local)

    prompt = text_in("prompt", req.prompt)
    if not spec.synthetic and not prompt.strip():
        raise RequestError("the prompt is empty")
    max_chars = min(MAX_PROMPT_CHARS, limits.max_prompt_chars)
    if len(prompt) > max_chars:
        raise RequestError(f"the prompt is {len(prompt)} characters; the limit here is {max_chars}")
    try:
        model_config = load_config(spec)
        context = context_length(spec)
        tokenizer = request_tokenizer(spec)
    except ModelError as exc:
        raise RequestError(one_line_text(str(exc)), advice=exc.advice) from None
    prompt_ids = encode_prompt(spec, tokenizer, prompt, prompt_tokens=req.prompt_tokens)
    if len(prompt_ids) >= context:
        raise RequestError(
            f"the prompt is {len(prompt_ids)} tokens, longer than the model's context of {context}"
        )
    if limits.max_prompt_tokens is not None and len(prompt_ids) > limits.max_prompt_tokens:
        raise RequestError(f"the prompt is {len(prompt_ids)} tokens; the limit here is {limits.max_prompt_tokens}")
    if len(prompt_ids) + req.max_new_tokens > context:
        raise RequestError(
            f"prompt ({len(prompt_ids)} tokens) + max_new_tokens ({req.max_new_tokens}) exceeds "
            f"the model's context of {context} tokens"
        )
    draft = _draft(req, names, spec, model_config, tokenizer, limits, allow_local)
    return PreparedRun(req, spec, names, dtype, prompt_ids, context, limits, where, model_config, draft)


def _draft(req: RunRequest, names: list[str], spec: ModelSpec, model_config: Any, tokenizer: Any,
           limits: ServerLimits, allow_local: bool) -> ModelSpec | None:
    """The draft model of the assisted configurations asked, checked as `model` is, and against
    the model's vocabulary; None where none is asked. On synthetic weights the rows themselves are
    refused (speculative.blocker), so only the name is checked there."""
    speculations = [registry.get(n).speculation for n in names]
    if not any(s is not None and s.draft for s in speculations):
        return None
    try:
        draft = checked_model(req.draft_model, limits, allow_local)
    except RequestError as exc:
        raise RequestError(f"draft model: {exc}") from None
    req.draft_model = draft.id
    if draft.synthetic:
        raise RequestError(f"draft model: {speculative.SYNTHETIC}")
    if spec.synthetic:
        return draft
    try:
        draft_config, draft_tokenizer = load_config(draft), request_tokenizer(draft)
    except ModelError as exc:
        raise RequestError(f"draft model: {one_line_text(str(exc))}") from None
    reason = speculative.vocabulary_blocker(model_config, draft_config, tokenizer, draft_tokenizer)
    if reason:
        raise RequestError(f"draft model {short_repr(draft.id)}: {reason}")
    return draft
