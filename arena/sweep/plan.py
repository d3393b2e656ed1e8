"""Attention sweeps: the guide's speedup and memory charts, measured here.

A sweep runs a grid of points — (batch size, sequence length, padding share) — through several
attention implementations (optionally under bitsandbytes quantization) and records, for each
point, the median latency of one forward pass (or one generate()), tokens/s, peak memory and
the speedup against eager at the same point. Every point becomes a row of the one result
schema (mode "sweep-forward" / "sweep-generate"), so the store and the leaderboard show it.

Isolation: one spawned worker per (implementation, quantization) loads the model once and
runs its points (arena/sweep/worker.py); an out-of-memory or kernel error fails that point
only, and a worker that dies or runs out of time fails its remaining points with the reason.
Groups that cannot run here (no CUDA, flash-attn not installed, ...) get every point marked
unavailable with the registry's reason. Nothing is silently dropped.

Padding (left padding, attention mask set): for a requested share p of a batch of B rows of
S positions, P = round(p * B * S) positions are padding. With B = 1 the single row carries
them; with B > 1 the first row stays unpadded (it sets the batch's length, as the longest
prompt of a real padded batch does) and the other B - 1 rows share P as evenly as whole
tokens allow. Every row keeps at least one real token, so with B = 2 and p > 0.5 the real
share of padding is lower than asked; the achieved share is recorded with each point.

Generation on a padded batch (mode "generate-padded"): each batch size is one point; its rows are
prompts of mixed lengths between LO and HI tokens (`prompt_lens` "LO..HI"), left padded to the
longest with the attention mask set, and each row generates `new_tokens` tokens (greedy, end of
sequence disabled). The length mix (`row_lengths`): row 0 is HI tokens long, so every batch has
the same padded length; every other row draws its length uniformly from LO..HI with
random.Random(length_seed), in row order, so a larger batch keeps the rows of a smaller one and
adds rows. Each point records TTFT, decode tokens/s (the arena's TokenClock), peak memory, the
longest row as prompt_tokens and the lengths of all rows in its settings.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from arena.core.errors import short_repr
from arena.core.limits import (
    DEFAULT_TIMEOUT_S,
    MAX_BATCH,
    MAX_REPEATS,
    SWEEP_MAX_NEW_TOKENS,
    SWEEP_MAX_PADDING,
    SWEEP_MAX_POINTS,
    SWEEP_MAX_SEQ,
    ServerLimits,
)
from arena.core.request import RequestError, int_in
from arena.execute.prepare import checked_model
from arena.models.dtypes import resolve_dtype
from arena.models.sources import context_length
from arena.models.spec import ModelError, ModelSpec
from arena.techniques import registry

NO_QUANT = "none"


@dataclass
class SweepRequest:
    """What to sweep. List fields also accept comma-separated text ("1,2,4,8")."""

    model: str = "synthetic:llama-2-7b"
    attn: list[str] = field(default_factory=lambda: ["eager", "sdpa"])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    seq_lens: list[int] = field(default_factory=lambda: [512, 1024, 2048, 4096])
    padding: list[float] = field(default_factory=lambda: [0.0, 0.3])
    mode: Literal["forward", "generate", "generate-padded"] = "forward"
    quant: list[str] = field(default_factory=lambda: [NO_QUANT])
    dtype: str = "auto"
    repeats: int = 3  # timed passes per point; the median is reported
    warmup: int = 1  # untimed passes per point before timing (each shape warms its kernels)
    new_tokens: int = 32  # generate modes only
    prompt_lens: str = "64..1024"  # generate-padded only: row lengths drawn from LO..HI
    length_seed: int = 0  # generate-padded only: the seed of the length mix
    isolation: Literal["process", "inline"] = "process"
    timeout_s: float = DEFAULT_TIMEOUT_S  # per (implementation, quantization) worker: load and all its points

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MODES = ("forward", "generate", "generate-padded")
GENERATE_MODES = ("generate", "generate-padded")


@dataclass(frozen=True)
class Point:
    batch: int
    seq: int
    padding: float
    pads: tuple[int, ...] | None = None  # left padding of each row, where not from pad_lengths (generate-padded)

    def pad_list(self) -> list[int]:
        return list(self.pads) if self.pads is not None else pad_lengths(self.batch, self.seq, self.padding)


@dataclass(frozen=True)
class Group:
    """One (implementation, quantization) pair: one worker, one model load."""

    attn: str
    quant: str  # NO_QUANT or a quantization configuration's name
    config: registry.Config

    @property
    def name(self) -> str:
        return self.config.name


@dataclass
class PreparedSweep:
    request: SweepRequest
    spec: ModelSpec
    dtype: str
    groups: list[Group]
    points: list[Point]
    max_run_s: float | None = None  # the server's bound on the whole sweep's wall time

    @property
    def size(self) -> int:
        return len(self.groups) * len(self.points)


# ---------------------------------------------------------------- choices


def attention_names() -> list[str]:
    """The configurations a sweep compares: the registry's attention family."""
    return [c.name for c in registry.REGISTRY.values() if c.family == "attention"]


def quant_names() -> list[str]:
    """'none' and the registry's quantization configurations."""
    return [NO_QUANT] + [c.name for c in registry.REGISTRY.values() if c.family == "quantization"]


def group_config(attn: str, quant: str) -> registry.Config:
    """The configuration a group runs: the attention entry, with the quantization entry's
    quantizer when one is given (named like the registry's combinations: 'bnb-4bit+sdpa').
    Everything a quantization needs travels in its quantizer (arena/techniques/base.py)."""
    acfg = registry.get(attn)
    if quant == NO_QUANT:
        return acfg
    qcfg = registry.get(quant)
    return dataclasses.replace(
        acfg, name=f"{quant}+{attn}", label=f"{qcfg.label} + {acfg.label}", family="combination",
        quant=qcfg.quant, description=f"{acfg.description} Weights: {qcfg.description}",
    )


def pad_lengths(batch: int, seq: int, fraction: float) -> list[int]:
    """Left-padding length of each row (see the module's docstring for the rule)."""
    total = round(fraction * batch * seq)
    if total <= 0:
        return [0] * batch
    if batch == 1:
        return [min(total, seq - 1)]
    share, extra = divmod(total, batch - 1)
    return [0] + [min(share + (1 if i < extra else 0), seq - 1) for i in range(batch - 1)]


def row_lengths(batch: int, shortest: int, longest: int, seed: int = 0) -> list[int]:
    """The prompt length of each row of a generate-padded batch (see the module's docstring)."""
    rng = random.Random(seed)
    return [longest] + [rng.randint(shortest, longest) for _ in range(batch - 1)]


def padded_point(batch: int, shortest: int, longest: int, seed: int = 0) -> Point:
    pads = tuple(longest - n for n in row_lengths(batch, shortest, longest, seed))
    return Point(batch, longest, round(sum(pads) / (batch * longest), 4), pads)


def parse_prompt_lens(value: Any, hi: int) -> tuple[int, int]:
    """'64..1024' (or '64,1024', or one length for every row) -> (64, 1024), each within 1..hi."""
    text = str(value).strip()
    parts = re.split(r"\s*(?:\.\.|,)\s*", text) if text else []
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise RequestError.about("prompt_lens", f" must be LO..HI, e.g. 64..1024 (got {short_repr(text)})")
    lo, top = (_ints("prompt_lens", part, 1, hi)[0] for part in (parts[0], parts[-1]))
    if top < lo:
        raise RequestError.about("prompt_lens", f": {lo}..{top} is empty (LO must not exceed HI)")
    return lo, top


# ---------------------------------------------------------------- validation


def _items(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        items = [str(value)]
    else:
        raise RequestError.about(name, f" must be a comma-separated list (got {value!r})")
    items = [v for v in items if v]
    if not items:
        raise RequestError.about(name, " is empty")
    return list(dict.fromkeys(items))


def _ints(name: str, value: Any, lo: int, hi: int) -> list[int]:
    out = []
    for item in _items(name, value):
        try:
            number = float(item)
        except ValueError:
            raise RequestError.about(name, f": {item!r} is not a whole number") from None
        if not math.isfinite(number) or number != int(number):
            raise RequestError.about(name, f": {item!r} is not a whole number")
        if not lo <= int(number) <= hi:
            raise RequestError.about(name, f": {int(number)} is outside {lo}..{hi}", hi)
        out.append(int(number))
    return sorted(set(out))


def _floats(name: str, value: Any, lo: float, hi: float) -> list[float]:
    out = []
    for item in _items(name, value):
        try:
            number = float(item)
        except ValueError:
            raise RequestError.about(name, f": {item!r} is not a number") from None
        if not lo <= number <= hi:  # also refuses NaN
            raise RequestError.about(name, f": {item} is outside {lo:g}..{hi:g}", hi)
        out.append(number)
    return sorted(set(out))


def validate_sweep(req: SweepRequest, *, allow_local_models: bool | None = None,
                   limits: ServerLimits | None = None) -> PreparedSweep:
    """Check a sweep against the server's limits and expand its grid; RequestError (one line)
    for anything wrong. `limits` (default: the generous ServerLimits()) bounds the model, batch
    sizes, lengths (max_prompt_tokens), repeats, new tokens, implementations per sweep
    (max_configs) and the sweep's wall time (max_run_s)."""
    limits = limits or ServerLimits()
    allow_local = limits.allow_local_models if allow_local_models is None else bool(allow_local_models)
    attn = _items("attn", req.attn)
    allowed = attention_names()
    for name in attn:
        if name not in allowed:
            hint = " (a quantization: give it with --quant)" if name in quant_names() else ""
            raise RequestError(f"unknown attention implementation {name!r}{hint}; valid: {', '.join(allowed)}")
    quant = _items("quant", req.quant)
    for name in quant:
        if name not in quant_names():
            raise RequestError(f"unknown quantization {name!r}; valid: {', '.join(quant_names())}")
    batches = _ints("batch_sizes", req.batch_sizes, 1, min(MAX_BATCH, limits.max_batch))
    if req.mode not in MODES:
        raise RequestError(f"mode must be one of {', '.join(MODES)} (got {req.mode!r})")
    padded = req.mode == "generate-padded"
    max_seq = min(SWEEP_MAX_SEQ, limits.max_prompt_tokens or SWEEP_MAX_SEQ)
    if padded:
        shortest, longest_row = parse_prompt_lens(req.prompt_lens, max_seq)
        req.prompt_lens = f"{shortest}..{longest_row}"
        req.length_seed = int_in("length_seed", req.length_seed, 0, 2**31 - 1)
        seqs, paddings = [longest_row], []
    else:
        seqs = _ints("seq_lens", req.seq_lens, 1, max_seq)
        paddings = _floats("padding", req.padding, 0.0, SWEEP_MAX_PADDING)
    req.repeats = int_in("repeats", req.repeats, 1, min(MAX_REPEATS, limits.max_repeats))
    req.warmup = int_in("warmup", req.warmup, 0, min(MAX_REPEATS, limits.max_repeats))
    req.new_tokens = int_in("new_tokens", req.new_tokens, 1, min(SWEEP_MAX_NEW_TOKENS, limits.max_new_tokens))
    try:
        req.timeout_s = float(req.timeout_s)
    except (TypeError, ValueError):
        raise RequestError(f"timeout_s must be a number (got {req.timeout_s!r})") from None
    if not 1.0 <= req.timeout_s <= 24 * 3600:
        raise RequestError(f"timeout_s must be between 1 and 86400 (got {req.timeout_s})")
    if req.isolation not in ("process", "inline"):
        raise RequestError("isolation must be 'process' or 'inline'")
    try:
        dtype = resolve_dtype(req.dtype)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    spec = checked_model(req.model, limits, allow_local)
    try:
        context = context_length(spec)
    except ModelError as exc:
        raise RequestError(str(exc)) from None
    # Synthetic weights carry no meaning to lose past the trained context (the guide runs the
    # 2048-context Falcon-7B at 4096); a real model is held to its context.
    longest = max(seqs) + (req.new_tokens if req.mode in GENERATE_MODES else 0)
    if not spec.synthetic and longest > context:
        raise RequestError(f"sequence length {longest} exceeds the model's context of {context} tokens")
    if padded:
        points = [padded_point(b, shortest, longest_row, req.length_seed) for b in batches]
    else:
        points = [Point(b, s, p) for s in seqs for p in paddings for b in batches]
    groups = [Group(a, q, group_config(a, q)) for q in quant for a in _eager_first(attn)]
    if limits.max_configs is not None and len(groups) > limits.max_configs:
        raise RequestError(f"{len(groups)} implementation and quantization pairs asked; the limit here is "
                           f"{limits.max_configs} per sweep")
    if len(points) * len(groups) > SWEEP_MAX_POINTS:
        raise RequestError(f"the grid has {len(points) * len(groups)} points; the limit is {SWEEP_MAX_POINTS}")
    req.attn, req.quant, req.batch_sizes, req.seq_lens, req.padding = attn, quant, batches, seqs, paddings
    return PreparedSweep(req, spec, dtype, groups, points, limits.max_run_s)


def _eager_first(names: list[str]) -> list[str]:
    """Eager runs first so that every later point's speedup is known when it finishes."""
    return sorted(names, key=lambda n: n != registry.BASELINE)
