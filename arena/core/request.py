"""A run's request: its settings with their defaults (RunRequest), the error a bad one raises
(RequestError: one line fit to show a user), and the checks of one value each. Validating a
whole request against the registry and the model is arena/execute/prepare.py's."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from arena.core.errors import short_repr
from arena.core.limits import DEFAULT_TIMEOUT_S


class RequestError(ValueError):
    """Bad input, with a message fit to show a user as it is. Where it is about one setting,
    `about(field, detail, high)` says which (`field`), what is wrong with it (`detail`, the
    message's rest) and the upper bound it broke (`high`), for a page to word in its own labels;
    `advice` is for whoever runs the server (how to change what it allows), shown by the CLI only."""

    field: str | None = None
    detail: str = ""
    high: float | None = None

    def __init__(self, message: str, advice: str = "") -> None:
        super().__init__(message)
        self.advice = advice

    @classmethod
    def about(cls, field: str, detail: str, high: float | None = None) -> RequestError:
        exc = cls(f"{field}{detail}")
        exc.field, exc.detail, exc.high = field, detail, high
        return exc


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
    timeout_s: float = DEFAULT_TIMEOUT_S  # per configuration: load, export, warm-up and repeats
    # Where PyTorch configurations run (arena/models/placement.py): GPU indices ("0,1") and a memory
    # budget per device ("0=20GiB,1=20GiB,cpu=30GiB"); several GPUs or any budget split the model
    # with device_map="auto". Validated into [0, 1] and {"0": bytes, ...}.
    gpus: str | list[int] | None = None
    max_memory: str | dict[str, Any] | None = None
    # The draft model of assisted (speculative) configurations, named as `model` is: "default" (the
    # embedded model, a sanity draft), a Hub id or a local directory. Read only when one is asked.
    draft_model: str = "default"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRequest:
        """A request from untyped input (an API call): unknown keys are refused by name, so
        nothing a request carries can switch on anything that is not a field here
        (trust_remote_code, for one, is never a request's to set)."""
        if not isinstance(data, Mapping):
            raise RequestError(f"a request must be a mapping of settings (got {type(data).__name__})")
        known = {f.name for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            raise RequestError(f"unknown setting {short_repr(unknown[0])}; valid: {', '.join(sorted(known))}")
        return cls(**data)


def int_in(name: str, value: Any, lo: int, hi: int) -> int:
    whole = isinstance(value, int) or isinstance(value, float) and math.isfinite(value) and value.is_integer()
    if isinstance(value, bool) or not whole:
        raise RequestError.about(name, f" must be a whole number between {lo} and {hi} (got {short_repr(value)})", hi)
    if not lo <= int(value) <= hi:
        raise RequestError.about(name, f" must be between {lo} and {hi} (got {short_repr(int(value))})", hi)
    return int(value)


def float_in(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{name} must be a number (got {short_repr(value)})")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf
    if math.isnan(number) or number > hi or number < lo or (lo_open and number == lo):
        raise RequestError(
            f"{name} must be {'>' if lo_open else '>='} {lo} and <= {hi} (got {short_repr(value)})"
        )
    return number


def text_in(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{name} must be text (got {type(value).__name__})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not text any tokenizer or file can hold
        raise RequestError(f"{name} is not valid unicode text (it holds a lone surrogate)") from None
    return value
