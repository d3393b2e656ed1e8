"""The result schema: the one definition of what a measured configuration records.

Every field of `Result` declares its own rules with `metric(...)` (or `column(...)` for what is
not measured): its unit, its heading, how it combines over the timed repeats and over the
ranks of a tensor-parallel run, and whether the run table shows it; its type is its annotation.
The store's column types, the run table (CLI and page), the CSV, the leaderboard's headings and
the rank aggregation all read these declarations when they run (`schema()`), so a field is
added here and nowhere else.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Literal

Status = Literal["ok", "unavailable", "failed"]
# How a value combines over the timed repeats: the median of the per-repeat values (their spread
# kept), the highest (a peak over all of them), one figure over all repeats together (energy
# per token), or measured once (load, weights, quality).
Repeats = Literal["median", "peak", "pooled", "once"]
# How a tensor-parallel run's ranks combine: rank 0's value (the ranks step in lockstep, rank 0
# speaks for the group), the sum (memory and energy: every rank holds and spends its own), the
# lowest or the highest.
Ranks = Literal["rank0", "sum", "min", "max"]
SqlType = Literal["REAL", "INTEGER", "TEXT", "JSON"]

_KEY = "arena.metric"


@dataclass(frozen=True)
class Metric:
    """A field's declared rules (see `metric`); `name`, `sql` and `kind` come from the field."""
    unit: str = ""
    heading: str = ""
    repeats: Repeats = "once"
    ranks: Ranks = "rank0"
    table: bool = False
    name: str = ""
    sql: SqlType = "TEXT"
    kind: type = str  # the annotation without None: float, int, bool, str, dict or list


def metric(*, unit: str = "", heading: str = "", repeats: Repeats = "once", ranks: Ranks = "rank0",
           table: bool = False, default: Any = None, default_factory: Any = MISSING) -> Any:
    """A measured field: `dataclasses.field` carrying its rules (default None: not measured)."""
    rules = Metric(unit=unit, heading=heading, repeats=repeats, ranks=ranks, table=table)
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={_KEY: rules})
    return field(default=default, metadata={_KEY: rules})


def column(*, heading: str = "", table: bool = False, default: Any = MISSING, default_factory: Any = MISSING) -> Any:
    """A field that is not a measurement (what ran, how it ended), with its heading."""
    rules = Metric(heading=heading, table=table)
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={_KEY: rules})
    return field(default=default, metadata={_KEY: rules})


@dataclass
class Result:
    run_id: str = column(heading="run")
    config: str = column(heading="configuration", table=True)
    status: Status = column(heading="status", table=True)
    label: str = ""
    family: str = column(heading="family", default="")
    created_at: str = column(heading="time", default="")
    # what ran
    model_id: str = column(heading="model id", default="")
    model_display: str = column(heading="model", default="")
    synthetic: bool = False
    hardware: str = column(heading="hardware", default="")
    device: str = ""
    dtype: str = column(heading="dtype", table=True, default="")
    batch_size: int = column(heading="batch", default=1)
    prompt_tokens: int = metric(unit="tokens", heading="prompt tok", default=0)
    # the request's max_new_tokens (every timed configuration generates exactly this many)
    new_tokens: int = metric(unit="tokens", heading="new tok", default=0)
    repeats: int = column(heading="repeats", default=0)
    prompt: str = ""
    text: str = ""
    # wall time by stage, seconds: start (waiting for a worker), imports, load (the whole stage, load_s
    # within it), warmup, timed, after (NLL and metrics); a warm run has no imports, load or warmup
    stage_s: dict[str, float] = field(default_factory=dict)
    # ONNX export (its own cached step; 0 when the cache had it), never inside load_s; the CLI's
    # table shows it after load s when a row has one
    export_s: float | None = metric(unit="s", heading="export s")
    # speed (medians over the timed repeats, their per-repeat values in `spread`)
    ttft_ms: float | None = metric(unit="ms", heading="TTFT ms", repeats="median", table=True)
    decode_tokens_per_s: float | None = metric(unit="tok/s", heading="decode tok/s", repeats="median", table=True)
    # the memory-bandwidth yardstick (arena/measure/bandwidth_limit.py): the device's measured bandwidth, the
    # decode tokens/s it allows for this configuration's weights + KV cache, and the share reached
    percent_of_bandwidth_limit: float | None = metric(unit="%", heading="% of BW limit", table=True)
    # trust (arena/measure/trust.py, docs/trust.md): decode tok/s's spread over the repeats (coefficient of
    # variation, %), other processes' share of the CPU during the timed phase, the verdicts, and why; the
    # page and the leaderboard head `unstable` 'stable' (yes/unstable), the CLI 'unstable'
    unstable: bool = column(heading="unstable", table=True, default=False)  # spread or load past its bound: left out of speedups and headline medians
    spread_pct: float | None = metric(unit="%", heading="spread %", table=True)
    load_during_timed: float | None = metric(unit="share", heading="load while timed")
    over_limit: bool = column(heading="over limit", default=False)  # faster than its memory-bandwidth limit even after re-measuring it
    trust_note: str = column(heading="trust", default="")
    e2e_tokens_per_s: float | None = metric(unit="tok/s", heading="e2e tok/s", repeats="median", table=True)
    token_latency_p50_ms: float | None = metric(unit="ms", heading="p50 ms", repeats="median", table=True)
    token_latency_p90_ms: float | None = metric(unit="ms", heading="p90 ms", repeats="median", table=True)
    # speculative decoding (arena/techniques/speculative.py), over every timed repeat together: draft tokens
    # accepted / proposed, new tokens / forward passes of the model (1 without guesses); the draft model's
    # own load time and the memory it adds (read before and after its load, after the model's)
    acceptance_rate: float | None = metric(unit="share", heading="accepted", repeats="pooled", table=True)
    tokens_per_step: float | None = metric(unit="tok/step", heading="tok/step", repeats="pooled", table=True)
    draft_load_s: float | None = metric(unit="s", heading="draft load s", table=True)
    draft_memory_mb: float | None = metric(unit="MB", heading="draft MB", table=True)
    memory_bandwidth_gb_s: float | None = metric(unit="GB/s", heading="bandwidth GB/s")
    bandwidth_limit_tokens_per_s: float | None = metric(unit="tok/s", heading="BW limit tok/s")
    # memory and energy
    # peak_memory_mb is the headline, one method per device for every backend (memory_method says which):
    # GPU: the process's device memory above its own idle CUDA context (NVML); CPU: resident memory
    # above the worker's idle baseline after imports. The rest are detail with their own method.
    peak_memory_mb: float | None = metric(unit="MB", heading="peak MB", repeats="peak", ranks="sum", table=True)
    memory_method: str = column(heading="memory method", default="")
    # the headline method over the warm-up (compile, graph capture)
    warmup_peak_memory_mb: float | None = metric(unit="MB", heading="warm-up peak MB", repeats="peak")
    # CPU: whole-process resident peak (libraries included)
    process_peak_memory_mb: float | None = metric(unit="MB", heading="process peak MB", repeats="peak")
    torch_allocated_mb: float | None = metric(unit="MB", heading="torch allocated MB", repeats="peak", ranks="sum")
    torch_reserved_mb: float | None = metric(unit="MB", heading="torch reserved MB", repeats="peak", ranks="sum")
    nvml_process_mb: float | None = metric(unit="MB", heading="NVML process MB", repeats="peak", ranks="sum")
    weights_mb: float | None = metric(unit="MB", heading="weights MB", table=True)
    # None with warm: the model was loaded by an earlier run of a warm worker
    load_s: float | None = metric(unit="s", heading="load s", table=True)
    # ran on a warm worker (arena/execute/pool.py): model and warm-up reused
    warm: bool = column(heading="warm", table=True, default=False)
    # decode phase only, over every timed repeat together, summed over the GPUs used
    energy_j_per_token: float | None = metric(unit="J/token", heading="J/token", repeats="pooled", ranks="sum",
                                              table=True)
    energy_note: str = ""  # how energy was read, or why it is n/a
    # where the model ran (arena/models/placement.py): device -> {"layers", "weights_mb"} as loaded, and
    # device -> peak MB during generation by the headline method (per GPU: NVML above its idle context; cpu: RSS above idle)
    placement: dict[str, Any] = field(default_factory=dict)
    device_peak_memory_mb: dict[str, float] = field(default_factory=dict)
    # quality against the baseline configuration of the run
    baseline: str = ""
    token_agreement: float | None = metric(unit="share", heading="agree", table=True)
    # baseline tokens compared: up to and including its first end-of-text
    compared_tokens: int | None = metric(unit="tokens", heading="compared", table=True)
    first_divergence: int | None = metric(unit="token", heading="diverge@", table=True)
    # at the first divergence: the baseline's lead of its token over the next (logits), and the most
    # this configuration moved that lead where the two agree; a margin within the noise is a near-tie
    divergence_margin: float | None = metric(unit="logit", heading="margin@", table=True)
    divergence_noise: float | None = metric(unit="logit", heading="noise@", table=True)
    nll: float | None = metric(unit="nats/token", heading="NLL", table=True)
    reason: str = column(heading="reason", table=True, default="")  # why a configuration did not run or failed
    # how it ended, for the program: a Code value of arena/core/ending.py ("ok", "oom", "cancelled",
    # ...); `reason` is its words for people. Rows stored before it have "".
    ending: str = column(heading="ending", default="")
    quality_note: str = ""  # why agreement is n/a (sampling, no baseline) or not a quality (random weights)
    nll_note: str = ""  # what was scored for NLL, or why there is none
    tokens_after_eos: int | None = metric(unit="tokens")  # generated after end-of-text (timing only; not shown)
    # sweep points (arena/sweep/plan.py): one forward pass or one generate() at a (batch, seq, padding)
    mode: str = column(heading="kind", default="arena")  # "arena" / "sweep-forward" / "sweep-generate[-padded]"
    padding: float | None = metric(unit="share", heading="padding")  # requested share of padding tokens
    latency_ms: float | None = metric(unit="ms", heading="latency ms", repeats="median")  # a sweep point's
    # speedup means one thing per kind of row (`mode`): a run ("arena") row's decode tok/s / its baseline's;
    # a sweep point's eager latency / this one's at the same point. Tables head it accordingly.
    speedup: float | None = metric(unit="x", heading="speedup")
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


_SQL: dict[type, SqlType] = {float: "REAL", int: "INTEGER", bool: "INTEGER", str: "TEXT", dict: "JSON",
                             list: "JSON"}


def _kind(annotation: Any) -> type:
    """float for `float | None`, str for a Literal of strings, dict for `dict[str, Any]`..."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _kind(args[0])
    if origin is Literal:
        return type(args[0])
    return origin or annotation


@functools.cache
def _schema_of(cls: type) -> tuple[Metric, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        rules = f.metadata.get(_KEY) or Metric()
        kind = _kind(hints[f.name])
        out.append(Metric(**{**rules.__dict__, "name": f.name, "kind": kind, "sql": _SQL.get(kind, "TEXT")}))
    return tuple(out)


def schema() -> tuple[Metric, ...]:
    """Every field's rules, in declaration order, read from `Result` as it is when called (so a
    field declared on it, or on a subclass put in its place, reaches every reader)."""
    return _schema_of(Result)


def rules(name: str) -> Metric:
    return next(m for m in schema() if m.name == name)


def result_fields() -> tuple[str, ...]:
    return tuple(m.name for m in schema())


def json_fields() -> tuple[str, ...]:
    return tuple(m.name for m in schema() if m.sql == "JSON")


def bool_fields() -> tuple[str, ...]:
    return tuple(m.name for m in schema() if m.kind is bool)


def column_types() -> dict[str, str]:
    """The SQLite type of each column (JSON is stored as TEXT)."""
    return {m.name: "TEXT" if m.sql == "JSON" else m.sql for m in schema()}


def table_columns() -> tuple[tuple[str, str], ...]:
    """The run table's (field, heading) columns, in declaration order: the CLI's table and CSV
    order, the page's run table and the leaderboard's middle columns."""
    return tuple((m.name, m.heading) for m in schema() if m.table)


def headings() -> dict[str, str]:
    """field -> heading, for every field that declares one."""
    return {m.name: m.heading for m in schema() if m.heading}


def over_repeats(name: str, values: list[Any]) -> Any:
    """One figure from a field's per-repeat values, by its `repeats` rule (median by default)."""
    rule = next((m.repeats for m in schema() if m.name == name), "median")
    if rule == "peak":
        return max(values)
    return statistics.median(values) if rule in ("median", "once") else values[-1]


def over_ranks(per_rank: list[dict[str, Any]]) -> dict[str, Any]:
    """The fields whose `ranks` rule is not rank 0's, combined over the ranks' measurements
    (sum: None unless every rank has a value; min/max: over the ranks that have one)."""
    out: dict[str, Any] = {}
    for m in schema():
        values = [r.get(m.name) for r in per_rank]
        present = [v for v in values if v is not None]
        if m.ranks == "sum":
            out[m.name] = sum(present) if len(present) == len(values) else None
        elif m.ranks in ("min", "max"):
            out[m.name] = (min if m.ranks == "min" else max)(present) if present else None
    return out


def measured(result: Result, metrics: dict[str, Any]) -> None:
    """Copy a worker's measurement onto `result`: the declared fields it has, nothing else (the
    worker's private keys stay in the dict)."""
    for name in result_fields():
        if name in metrics:
            setattr(result, name, metrics[name])


def __getattr__(name: str) -> Any:
    """RESULT_FIELDS, JSON_FIELDS, BOOL_FIELDS, FLOAT_FIELDS, TABLE_COLUMNS: the declarations'
    views as tuples, for code that reads them once (readers that must follow a field added at
    run time call the functions above)."""
    views = {"RESULT_FIELDS": result_fields, "JSON_FIELDS": json_fields, "BOOL_FIELDS": bool_fields,
             "TABLE_COLUMNS": table_columns,
             "FLOAT_FIELDS": lambda: tuple(m.name for m in schema() if m.kind is float)}
    if name in views:
        return views[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# What a visitor typed and what the model wrote: private to the session that ran it on a public
# server (the leaderboard, its CSV and the API leave them out; ServerLimits.share_outputs).
PRIVATE_FIELDS: tuple[str, ...] = ("prompt", "text", "token_ids")


def flat_row(result: Result | dict[str, Any]) -> dict[str, Any]:
    """A result as one flat row (JSON fields serialized), for SQLite and CSV."""
    data = result.to_dict() if isinstance(result, Result) else dict(result)
    for key in json_fields():
        data[key] = json.dumps(data.get(key) or ({} if rules(key).kind is dict else []), sort_keys=True)
    for key in bool_fields():
        data[key] = int(bool(data.get(key)))
    return data


def from_flat_row(row: dict[str, Any]) -> Result:
    data = dict(row)
    for key in json_fields():
        if isinstance(data.get(key), str):
            data[key] = json.loads(data[key])
    for key in bool_fields():
        data[key] = bool(data.get(key))
    for f in fields(Result):  # a column added after a row was stored reads as its default
        if data.get(f.name) is None and f.default is not MISSING and f.default is not None:
            data[f.name] = f.default
        elif data.get(f.name) is None and f.default_factory is not MISSING:
            data[f.name] = f.default_factory()
    return Result.from_dict(data)
