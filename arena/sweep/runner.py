"""Running a validated sweep: one worker per (implementation, quantization) group, one after
another; each point stored the moment it finishes, with its speedup against eager at the same
point (see arena/sweep/plan.py for what a sweep is)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Callable

from arena.techniques import registry
from arena.core.ending import CANCELLED, Code, Why, code_of
from arena.core.env import collect_env, platform
from arena.core.results import Result, measured
from arena.data.store import Store, now
from arena.execute.pool import existing_pool
from arena.execute.inline import ThreadLauncher
from arena.execute.launcher import Launcher, Limit
from arena.execute.processes import ProcessLauncher
from arena.measure.quality import latency_speedup
from arena.sweep.plan import (
    GENERATE_MODES,
    NO_QUANT,
    Group,
    Point,
    PreparedSweep,
    SweepRequest,
    validate_sweep,
)

OnPoint = Callable[[Result], None]


def _baseline_name(group: Group) -> str:
    return registry.BASELINE if group.quant == NO_QUANT else f"{group.quant}+{registry.BASELINE}"


def _point_key(group: Group, point: Point) -> tuple:
    return (group.quant, point.batch, point.seq, point.padding)


class _Collector:
    """Turns worker events into Results: stores each at once, computes speedups against the
    eager latency of the same point, and calls on_point."""

    def __init__(self, prepared: PreparedSweep, run_id: str, store: Store | None,
                 on_point: OnPoint | None) -> None:
        req = prepared.request
        env = collect_env()
        self.prepared, self.store, self.on_point = prepared, store, on_point
        self.results: list[Result] = []
        self.eager_ms: dict[tuple, float] = {}
        self.common = dict(
            run_id=run_id, model_id=prepared.spec.id, model_display=prepared.spec.display,
            synthetic=prepared.spec.synthetic, hardware=env["hardware"], device=env["device"],
            repeats=req.repeats, mode=f"sweep-{req.mode}",
            new_tokens=req.new_tokens if req.mode in GENERATE_MODES else 0, env=env,
        )
        unused = ("seq_lens", "padding") if req.mode == "generate-padded" else ("prompt_lens", "length_seed")
        self.settings = {k: v for k, v in req.to_dict().items() if k not in ("attn", "model", *unused)}

    def add(self, group: Group, point: Point, *, ending: Code = Code.OK, reason: str = "",
            metrics: dict[str, Any] | None = None, load: dict[str, Any] | None = None) -> Result:
        status = Code(ending).status
        cfg = group.config
        pads = point.pad_list()
        rows = {"row_lengths": [point.seq - n for n in pads]} if point.pads is not None else {}
        result = Result(
            config=cfg.name, status=status, reason=str(reason), ending=Code(ending), label=cfg.label, family=cfg.family,  # type: ignore[arg-type]
            created_at=now(), dtype=registry.run_dtype(cfg, self.prepared.dtype), batch_size=point.batch,
            prompt_tokens=point.seq, padding=point.padding, baseline=_baseline_name(group),
            settings={**self.settings, "quant": group.quant, "padding_achieved": round(
                sum(pads) / (point.batch * point.seq), 4), "pad_lengths": pads,
                "real_tokens": point.batch * point.seq - sum(pads), **rows},
            **self.common,
        )
        measured(result, {**(load or {}), **(metrics or {})})
        key = _point_key(group, point)
        if status == "ok" and result.latency_ms:
            if group.attn == registry.BASELINE:
                self.eager_ms[key] = result.latency_ms
            result.speedup = latency_speedup(self.eager_ms.get(key), result.latency_ms)
        self.results.append(result)
        if self.store is not None:
            self.store.add(result)
        if self.on_point is not None:
            self.on_point(result)
        return result


def run_sweep(req: SweepRequest | PreparedSweep, store: Store | None = None,
              on_point: OnPoint | None = None, cancel: threading.Event | None = None) -> list[Result]:
    """Validate (RequestError for bad input) and run a sweep; one Result per (group, point), in
    the order they finish. `on_point(result)` is called as each point finishes (from this
    thread); `cancel` (a threading.Event) stops the sweep: the running worker is ended and the
    points left are recorded as failed with the reason 'cancelled by the user'."""
    prepared = req if isinstance(req, PreparedSweep) else validate_sweep(req)
    run_id = uuid.uuid4().hex[:12]
    if store is not None:
        store.start_run(run_id, {"sweep": prepared.request.to_dict()})
    collector = _Collector(prepared, run_id, store, on_point)
    plat = platform()
    status = "complete"
    deadline = time.monotonic() + prepared.max_run_s if prepared.max_run_s else None
    run_limit = f"the sweep's time limit here ({prepared.max_run_s or 0:.0f} s) was reached"
    for group in prepared.groups:
        verdict = registry.availability(group.config, registry.run_dtype(group.config, prepared.dtype), plat)
        if not verdict.ok:
            for point in prepared.points:
                collector.add(group, point, ending=verdict.code, reason=verdict.reason)
            continue
        left = deadline - time.monotonic() if deadline is not None else float("inf")
        if (cancel is not None and cancel.is_set()) or left <= 0:
            status = "cancelled" if left > 0 else "time limit"
            for point in prepared.points:
                collector.add(group, point, ending=Code.CANCELLED if left > 0 else Code.NOT_RUN,
                              reason=CANCELLED if left > 0 else run_limit)
            continue
        timeout = Why(f"timed out after {prepared.request.timeout_s:.0f} s (time limit per implementation)",
                      Code.TIMEOUT)
        timeout_s = prepared.request.timeout_s
        if left < timeout_s:
            timeout_s, timeout = left, Why(run_limit, Code.RUN_TIME_LIMIT)
        _run_group(prepared, group, plat.device, collector, cancel, (timeout_s, timeout))
        if cancel is not None and cancel.is_set():
            status = "cancelled"
        elif deadline is not None and time.monotonic() >= deadline:
            status = "time limit"
    if store is not None:
        store.finish_run(run_id, status)
    return collector.results


def _run_group(prepared: PreparedSweep, group: Group, device: str, collector: _Collector,
               cancel: threading.Event | None, timeout: tuple[float, str]) -> None:
    from arena.sweep.worker import GroupJob, run_group, worker_main

    req = prepared.request
    job = GroupJob(
        config=group.config, model_kind=prepared.spec.kind, model_ref=prepared.spec.ref,
        dtype=prepared.dtype, device=device, mode=req.mode,
        points=[(p.batch, p.seq, p.pad_list()) for p in prepared.points],
        repeats=req.repeats, warmup=req.warmup, new_tokens=req.new_tokens,
    )
    pending = dict(enumerate(prepared.points))
    load: dict[str, Any] = {}

    def handle(event: dict[str, Any]) -> None:  # (an "error": the group could not start, is the ending's)
        if event["type"] == "loaded":
            load.update(load_s=event["load_s"], weights_mb=event["weights_mb"])
        elif event["type"] == "point" and event["index"] in pending:
            point = pending.pop(event["index"])
            if "error" in event:
                collector.add(group, point, ending=event.get("code", Code.ERROR), reason=event["error"], load=load)
            else:
                collector.add(group, point, metrics=event["metrics"], load=load)

    # One launcher interface and loop, as a run's configurations: this process (a thread) or a
    # spawned worker, with the time limit and cancel checked between points.
    if req.isolation == "inline":
        launcher: Launcher = ThreadLauncher(lambda job, emit, stopping: run_group(job, emit, should_stop=stopping))
    else:
        pool = existing_pool()
        if pool is not None:
            pool.free_all()  # warm workers give their memory to the sweep
        launcher = ProcessLauncher(worker_main, f"arena-sweep-{job.config.name}")
    ending = launcher.launch(job, handle, Limit(timeout[0], timeout[1], cancel)).ending  # an error ends it
    error = Why(ending.reason, ending.code) if ending.reason is not None else None
    if error is None and cancel is not None and cancel.is_set():
        error = CANCELLED
    for index in sorted(pending):
        collector.add(group, pending[index], load=load, ending=code_of(error, Code.NO_RESULT),
                      reason=error or "the worker ended without measuring this point")
    pending.clear()


# The columns a sweep's table shows (CLI and page), in order, with their headings.
SWEEP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("config", "implementation"),
    ("batch_size", "batch"),
    ("prompt_tokens", "seq"),
    ("padding", "pad"),
    ("status", "status"),
    ("latency_ms", "latency ms"),
    ("speedup", "speedup (eager latency ÷ this)"),
    ("e2e_tokens_per_s", "tok/s"),
    ("peak_memory_mb", "peak MB"),
    ("reason", "reason"),
)

# generate-padded points: the arena's generation figures; the batch's rows are 'longest' tokens
# once padded, 'pad' is the share of padding in it.
PADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("config", "implementation"),
    ("batch_size", "batch"),
    ("prompt_tokens", "longest"),
    ("padding", "pad"),
    ("status", "status"),
    ("ttft_ms", "TTFT ms"),
    ("decode_tokens_per_s", "decode tok/s"),
    ("latency_ms", "latency ms"),
    ("speedup", "speedup"),
    ("peak_memory_mb", "peak MB"),
    ("reason", "reason"),
)


def sweep_columns(mode: str) -> tuple[tuple[str, str], ...]:
    """The table's columns for a sweep of `mode` ('generate-padded' or the others)."""
    return PADDED_COLUMNS if mode == "generate-padded" else SWEEP_COLUMNS
