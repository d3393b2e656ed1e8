"""The result schema: the one definition of what a measured configuration records.

The store's columns, the CLI's JSON/CSV and table, and the page's tables all derive from
RESULT_FIELDS, so a field is added here and nowhere else.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Literal

Status = Literal["ok", "unavailable", "failed"]


@dataclass
class Result:
    run_id: str
    config: str
    status: Status
    reason: str = ""
    label: str = ""
    family: str = ""
    created_at: str = ""
    # what ran
    model_id: str = ""
    model_display: str = ""
    synthetic: bool = False
    hardware: str = ""
    device: str = ""
    dtype: str = ""
    batch_size: int = 1
    prompt_tokens: int = 0
    new_tokens: int = 0
    repeats: int = 0
    prompt: str = ""
    text: str = ""
    # speed
    load_s: float | None = None  # None with warm: the model was loaded by an earlier run of a warm worker
    warm: bool = False  # ran on a warm worker (arena/execute/pool.py): model and warm-up reused
    # wall time by stage, seconds: start (waiting for a worker), imports, load (the whole stage, load_s
    # within it), warmup, timed, after (NLL and metrics); a warm run has no imports, load or warmup
    stage_s: dict[str, float] = field(default_factory=dict)
    export_s: float | None = None  # ONNX export (its own cached step; 0 when the cache had it), never inside load_s
    ttft_ms: float | None = None
    decode_tokens_per_s: float | None = None
    e2e_tokens_per_s: float | None = None
    token_latency_p50_ms: float | None = None
    token_latency_p90_ms: float | None = None
    # the memory-bandwidth yardstick (arena/measure/bandwidth_limit.py): the device's measured bandwidth, the
    # decode tokens/s it allows for this configuration's weights + KV cache, and the share reached
    memory_bandwidth_gb_s: float | None = None
    bandwidth_limit_tokens_per_s: float | None = None
    percent_of_bandwidth_limit: float | None = None
    # trust (arena/measure/trust.py, docs/trust.md): decode tok/s's spread over the repeats (coefficient of
    # variation, %), other processes' share of the CPU during the timed phase, the verdicts, and why
    spread_pct: float | None = None
    load_during_timed: float | None = None
    unstable: bool = False  # spread or load past its bound: left out of speedups and headline medians
    over_limit: bool = False  # faster than its memory-bandwidth limit even after re-measuring it
    trust_note: str = ""
    # memory and energy
    # peak_memory_mb is the headline, one method per device for every backend (memory_method says which):
    # GPU: the process's device memory above its own idle CUDA context (NVML); CPU: resident memory
    # above the worker's idle baseline after imports. The rest are detail with their own method.
    peak_memory_mb: float | None = None
    memory_method: str = ""
    warmup_peak_memory_mb: float | None = None  # the headline method over the warm-up (compile, graph capture)
    process_peak_memory_mb: float | None = None  # CPU: whole-process resident peak (libraries included)
    torch_allocated_mb: float | None = None
    torch_reserved_mb: float | None = None
    nvml_process_mb: float | None = None
    weights_mb: float | None = None
    energy_j_per_token: float | None = None  # decode phase only, summed over the GPUs used
    energy_note: str = ""  # how energy was read, or why it is n/a
    # where the model ran (arena/models/placement.py): device -> {"layers", "weights_mb"} as loaded, and
    # device -> peak MB during generation by the headline method (per GPU: NVML above its idle context; cpu: RSS above idle)
    placement: dict[str, Any] = field(default_factory=dict)
    device_peak_memory_mb: dict[str, float] = field(default_factory=dict)
    # quality against the baseline configuration of the run
    baseline: str = ""
    token_agreement: float | None = None
    first_divergence: int | None = None
    # at the first divergence: the baseline's lead of its token over the next (logits), and the most
    # this configuration moved that lead where the two agree; a margin within the noise is a near-tie
    divergence_margin: float | None = None
    divergence_noise: float | None = None
    nll: float | None = None
    compared_tokens: int | None = None  # baseline tokens compared: up to and including its first end-of-text
    quality_note: str = ""  # why agreement is n/a (sampling, no baseline) or not a quality (random weights)
    nll_note: str = ""  # what was scored for NLL, or why there is none
    tokens_after_eos: int | None = None  # tokens generated after end-of-text (timing only; not shown or compared)
    # sweep points (arena/sweep/plan.py): one forward pass or one generate() at a (batch, seq, padding)
    mode: str = "arena"  # "arena" for a normal run; "sweep-forward" / "sweep-generate" / "sweep-generate-padded"
    padding: float | None = None  # requested share of padding tokens in the batch (sweep points)
    latency_ms: float | None = None  # median latency of the point's timed passes
    # speedup means one thing per kind of row (`mode`): a run ("arena") row's decode tok/s / its baseline's;
    # a sweep point's eager latency / this one's at the same point. Tables head it accordingly.
    speedup: float | None = None
    # detail kept as JSON
    token_ids: list[int] = field(default_factory=list)
    spread: dict[str, list[float]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _clean(value: Any) -> Any:
    """NaN/inf become None so that JSON stays valid."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Result))
JSON_FIELDS: tuple[str, ...] = ("token_ids", "spread", "settings", "env", "placement", "device_peak_memory_mb",
                                "stage_s")
BOOL_FIELDS: tuple[str, ...] = ("synthetic", "warm", "unstable", "over_limit")
FLOAT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(Result) if "float" in str(f.type)
)
# What a visitor typed and what the model wrote: private to the session that ran it on a public
# server (the leaderboard, its CSV and the API leave them out; ServerLimits.share_outputs).
PRIVATE_FIELDS: tuple[str, ...] = ("prompt", "text", "token_ids")
# The columns a results table shows, in order, with their headings.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("config", "configuration"),
    ("status", "status"),
    ("dtype", "dtype"),
    ("ttft_ms", "TTFT ms"),
    ("decode_tokens_per_s", "decode tok/s"),
    ("percent_of_bandwidth_limit", "% of BW limit"),
    ("unstable", "unstable"),
    ("spread_pct", "spread %"),
    ("e2e_tokens_per_s", "e2e tok/s"),
    ("token_latency_p50_ms", "p50 ms"),
    ("token_latency_p90_ms", "p90 ms"),
    ("peak_memory_mb", "peak MB"),
    ("weights_mb", "weights MB"),
    ("load_s", "load s"),
    ("warm", "warm"),
    ("energy_j_per_token", "J/token"),
    ("token_agreement", "agree"),
    ("compared_tokens", "compared"),
    ("first_divergence", "diverge@"),
    ("divergence_margin", "margin@"),
    ("divergence_noise", "noise@"),
    ("nll", "NLL"),
    ("reason", "reason"),
)


def flat_row(result: Result | dict[str, Any]) -> dict[str, Any]:
    """A result as one flat row (JSON fields serialized), for SQLite and CSV."""
    data = result.to_dict() if isinstance(result, Result) else dict(result)
    for key in JSON_FIELDS:
        data[key] = json.dumps(data.get(key) or ({} if key != "token_ids" else []), sort_keys=True)
    for key in BOOL_FIELDS:
        data[key] = int(bool(data.get(key)))
    return data


def from_flat_row(row: dict[str, Any]) -> Result:
    data = dict(row)
    for key in JSON_FIELDS:
        if isinstance(data.get(key), str):
            data[key] = json.loads(data[key])
    for key in BOOL_FIELDS:
        data[key] = bool(data.get(key))
    for f in fields(Result):  # a column added after a row was stored reads as its default
        if data.get(f.name) is None and f.default is not MISSING and f.default is not None:
            data[f.name] = f.default
        elif data.get(f.name) is None and f.default_factory is not MISSING:
            data[f.name] = f.default_factory()
    return Result.from_dict(data)
