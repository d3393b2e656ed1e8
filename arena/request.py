"""RunRequest and its validation: every bad input becomes one clear line (RequestError)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from arena import configs, models

MAX_NEW_TOKENS = 4096
MAX_BATCH = 256
MAX_REPEATS = 20
MAX_PROMPT_CHARS = 200_000  # refuse before tokenizing something absurd
MAX_SYNTHETIC_PROMPT_TOKENS = 32_768


class RequestError(ValueError):
    """Bad input, with a message fit to show a user as it is."""


@dataclass
class RunRequest:
    model: str = "default"
    prompt: str = "What is the capital of France?"
    configs: list[str] = field(default_factory=lambda: ["eager", "sdpa"])
    max_new_tokens: int = 32
    batch_size: int = 1
    dtype: str = "auto"
    repeats: int = 3
    do_sample: bool = False
    seed: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    prompt_tokens: int = 128  # synthetic models only: length of the random prompt
    isolation: Literal["process", "inline"] = "process"
    timeout_s: float = 1800.0  # per configuration: load, export, warm-up and repeats

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PreparedRun:
    """A validated request with everything derived from it."""

    request: RunRequest
    spec: models.ModelSpec
    config_names: list[str]
    dtype: str
    prompt_ids: list[int]
    context: int


def _int_in(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise RequestError(f"{name} must be a whole number between {lo} and {hi} (got {value!r})")
    if not lo <= int(value) <= hi:
        raise RequestError(f"{name} must be between {lo} and {hi} (got {int(value)})")
    return int(value)


def _float_in(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be a number (got {value!r})") from None
    if number != number or number > hi or number < lo or (lo_open and number == lo):
        raise RequestError(f"{name} must be {'>' if lo_open else '>='} {lo} and <= {hi} (got {value!r})")
    return number


def validate(req: RunRequest, *, allow_local_models: bool = True) -> PreparedRun:
    """Check a request and prepare its prompt; RequestError (one line) for anything wrong."""
    try:
        names = configs.parse_names(req.configs)
    except configs.UnknownConfigError as exc:
        raise RequestError(str(exc)) from None
    req.max_new_tokens = _int_in("max_new_tokens", req.max_new_tokens, 1, MAX_NEW_TOKENS)
    req.batch_size = _int_in("batch_size", req.batch_size, 1, MAX_BATCH)
    req.repeats = _int_in("repeats", req.repeats, 1, MAX_REPEATS)
    req.seed = _int_in("seed", req.seed, 0, 2**31 - 1)
    req.prompt_tokens = _int_in("prompt_tokens", req.prompt_tokens, 1, MAX_SYNTHETIC_PROMPT_TOKENS)
    req.temperature = _float_in("temperature", req.temperature, 0.0, 10.0, lo_open=True)
    req.top_p = _float_in("top_p", req.top_p, 0.0, 1.0, lo_open=True)
    req.timeout_s = _float_in("timeout_s", req.timeout_s, 1.0, 24 * 3600.0)
    if req.isolation not in ("process", "inline"):
        raise RequestError("isolation must be 'process' or 'inline'")
    try:
        dtype = configs.resolve_dtype(req.dtype)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    try:
        spec = models.parse_model(req.model, allow_local=allow_local_models)
    except models.ModelError as exc:
        raise RequestError(str(exc)) from None

    prompt = req.prompt if isinstance(req.prompt, str) else ""
    if not spec.synthetic and not prompt.strip():
        raise RequestError("the prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise RequestError(f"the prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
    try:
        context = models.context_length(spec)
        tokenizer = models.load_tokenizer(spec)
    except models.ModelError as exc:
        raise RequestError(str(exc)) from None
    prompt_ids = models.encode_prompt(spec, tokenizer, prompt, prompt_tokens=req.prompt_tokens)
    if len(prompt_ids) >= context:
        raise RequestError(
            f"the prompt is {len(prompt_ids)} tokens, longer than the model's context of {context}"
        )
    if len(prompt_ids) + req.max_new_tokens > context:
        raise RequestError(
            f"prompt ({len(prompt_ids)} tokens) + max_new_tokens ({req.max_new_tokens}) exceeds "
            f"the model's context of {context} tokens"
        )
    return PreparedRun(req, spec, names, dtype, prompt_ids, context)
