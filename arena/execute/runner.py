"""Runs a validated request: availability first, then each available configuration in its
own spawned worker, one after another (never two at once on one device), baseline first.
Every finished configuration is stored at once; events go to `on_event` as they come."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Callable

from arena.techniques import registry
from arena.core.env import collect_env, platform
from arena.core.request import RunRequest
from arena.execute.prepare import PreparedRun, validate
from arena.core.results import Result
from arena.data.store import Store, now
from arena.execute import inline, memory_limit, tensor_parallel
from arena.execute.pool import Pool, PoolSettings, shared_pool
from arena.execute.worker import Job
from arena.measure.quality import compare, decode_speedup
from arena.models.sources import load_config

OnEvent = Callable[[dict[str, Any]], None]


def pick_baseline(names: list[str], available: set[str]) -> str | None:
    """eager when it can run, else the first configuration that can."""
    if registry.BASELINE in available:
        return registry.BASELINE
    return next((n for n in names if n in available), None)


def _run_process(job: Job, on_event: OnEvent, pool: Pool, *, compiled: bool, timeout_s: float,
                 cancel: threading.Event | None, limit_note: str = "time limit per configuration",
                 watch_rss: bool = False) -> tuple[dict | None, str | None, dict[str, Any]]:
    """(metrics, error, what the pool adds: warm and the start / imports stages)."""
    metrics: dict | None = None
    watch: memory_limit.RssWatch | None = None

    def handle(event: dict[str, Any]) -> None:
        nonlocal metrics
        if event["type"] == "metrics":
            metrics = event["metrics"]
        elif event["type"] == "nll":  # its own step, after the timings (which it never loses)
            if metrics is not None:
                metrics.update(event["fields"])
        else:
            on_event({**event, "config": job.config})

    def start_watch(pid: int) -> None:
        nonlocal watch
        if watch_rss and job.memory_limit_mb:
            watch = memory_limit.RssWatch(pid, job.memory_limit_mb).start()

    def over_limit() -> str | None:
        if watch is not None and watch.exceeded_mb is not None:
            return memory_limit.exceeded(job.memory_limit_mb, watch.exceeded_mb)
        return None

    try:
        out = pool.run(job, handle, compiled=compiled, timeout_s=timeout_s,
                       timeout_reason=f"timed out after {timeout_s:.0f} s ({limit_note})", cancel=cancel,
                       on_start=start_watch, death_reason=over_limit)
    finally:
        if watch is not None:
            watch.stop()
    stages = {"start": out.start_s, **({"imports": out.imports_s} if out.imports_s is not None else {})}
    extra = {"warm": out.warm, "stage_s": stages}
    end = out.ending
    if end.kind in ("cancelled", "timeout") or over_limit():
        return None, end.reason, extra
    if end.kind == "died" and metrics is not None:
        return metrics, None, extra  # it measured everything, then died on the way out
    return metrics, end.reason, extra


def execute(prepared: PreparedRun, *, store: Store | None = None, on_event: OnEvent | None = None,
            cancel: threading.Event | None = None, pool: Pool | None = None) -> list[Result]:
    """`pool`: the warm workers to run on (default: this process's shared pool)."""
    req = prepared.request
    limits = prepared.limits
    on_event = on_event or (lambda event: None)
    run_id = uuid.uuid4().hex[:12]
    # The run's wall time (ServerLimits.max_run_s): each configuration gets the smaller of its
    # own time limit and what is left; one that no longer fits is stored as failed, not dropped.
    run_deadline = time.monotonic() + limits.max_run_s if limits.max_run_s else None
    env = collect_env()
    plat = platform()
    if store is not None:
        store.start_run(run_id, req.to_dict())
    common = dict(
        run_id=run_id, model_id=prepared.spec.id, model_display=prepared.spec.display,
        synthetic=prepared.spec.synthetic, hardware=env["hardware"], device=env["device"],
        batch_size=req.batch_size, prompt_tokens=len(prepared.prompt_ids), new_tokens=req.max_new_tokens,
        repeats=req.repeats, prompt=req.prompt if not prepared.spec.synthetic else "",
        settings={k: v for k, v in req.to_dict().items() if k not in ("prompt", "configs")}, env=env,
    )
    device = prepared.placement.device(plat.device)  # "cuda:1" for a GPU choice, cpu for a cpu budget
    verdicts = {}
    try:
        model_config = load_config(prepared.spec)  # validated already; here for model-specific availability
    except Exception:
        model_config = None
    for name in prepared.config_names:
        cfg = registry.get(name)
        verdicts[name] = registry.availability(cfg, registry.run_dtype(cfg, prepared.dtype), plat,
                                              placement=prepared.placement, model_config=model_config,
                                              positions=len(prepared.prompt_ids) + req.max_new_tokens)
    available = {n for n, v in verdicts.items() if v.ok}
    baseline = pick_baseline(prepared.config_names, available)
    order = ([baseline] if baseline else []) + [n for n in prepared.config_names if n != baseline]
    on_event({"type": "run", "run_id": run_id, "order": order, "baseline": baseline or ""})

    results: list[Result] = []
    baseline_ids: list[int] | None = None
    baseline_speed: float | None = None
    status = "complete"

    def finish(result: Result) -> None:
        results.append(result)
        if store is not None:
            store.add(result)
        on_event({"type": "result", "config": result.config, "result": result.to_dict()})

    for name in order:
        cfg = registry.get(name)
        base = Result(config=name, status="ok", label=cfg.label, family=cfg.family, created_at=now(),
                      dtype=registry.run_dtype(cfg, prepared.dtype), baseline=baseline or "", **common)
        if not verdicts[name].ok:
            base.status, base.reason = "unavailable", verdicts[name].reason
            finish(base)
            continue
        if cancel is not None and cancel.is_set():
            status = "cancelled"
            break
        timeout_s, limit_note = req.timeout_s, "time limit per configuration"
        if run_deadline is not None:
            left = run_deadline - time.monotonic()
            if left < 1.0:
                status = "time limit"  # the run did not run everything it was asked to
                base.status = "failed"
                base.reason = f"not run: the run reached its time limit of {limits.max_run_s:g} s"
                finish(base)
                continue
            if left < timeout_s:
                timeout_s, limit_note = left, f"the run's time limit of {limits.max_run_s:g} s"
        on_event({"type": "status", "config": name, "stage": "starting"})
        job = Job(
            config=name, model_kind=prepared.spec.kind, model_ref=prepared.spec.ref,
            dtype=prepared.dtype, device=device, prompt_ids=prepared.prompt_ids,
            batch_size=req.batch_size, max_new_tokens=req.max_new_tokens, repeats=req.repeats,
            sampling=dict(do_sample=req.do_sample, temperature=req.temperature, top_p=req.top_p, seed=req.seed),
            reference_ids=baseline_ids if name != baseline else None,
            baseline_failed=name != baseline and baseline_ids is None,
            memory_limit_mb=limits.worker_memory_mb,
            gpus=list(prepared.placement.gpus) or None, max_memory=dict(prepared.placement.max_memory) or None,
        )
        if cfg.tensor_parallel:  # one process per rank, whatever the isolation asked; never kept warm
            (pool or shared_pool(limits)).free_all()  # every GPU's memory for the ranks
            world = registry.tensor_parallel_world(plat, prepared.placement)
            metrics, error = tensor_parallel.run_ranks(
                job, int(world), lambda event, name=name: on_event({**event, "config": name}), timeout_s=timeout_s,
                timeout_reason=f"timed out after {timeout_s:.0f} s ({limit_note})", cancel=cancel)
            extra = {"warm": False}
        elif req.isolation == "inline":
            metrics, error, warm = inline.run_inline(
                job, on_event, compiled=cfg.compiled, timeout_s=timeout_s,
                timeout_reason=f"timed out after {timeout_s:.0f} s ({limit_note})", cancel=cancel,
                settings=PoolSettings.from_limits(limits))
            extra = {"warm": warm}
        else:
            # Resident memory is watched from here where the worker computes on the CPU; on
            # CUDA the worker caps its own allocator (arena/execute/memory_limit.py).
            on_cpu = device == "cpu" or cfg.backend == "onnxruntime" and not cfg.needs_cuda
            metrics, error, extra = _run_process(job, on_event, pool or shared_pool(limits), compiled=cfg.compiled,
                                                 timeout_s=timeout_s, cancel=cancel, limit_note=limit_note,
                                                 watch_rss=on_cpu)
        base.created_at = now()
        base.warm = bool(metrics.get("warm") if metrics is not None and "warm" in metrics else extra.get("warm"))
        stages = dict(extra.get("stage_s") or {})
        if metrics is not None:
            stages.update(metrics.pop("stage_s", None) or {})
        base.stage_s = {k: round(v, 4) for k, v in stages.items()}
        if metrics is None and limit_note != "time limit per configuration" and (error or "").startswith("timed out"):
            status = "time limit"  # cut by the run's wall time: the run is not complete
        if metrics is None:
            base.status, base.reason = "failed", error or "no result"
            if name == baseline:
                base.reason += " (baseline: agreement not computed for the others)"
            finish(base)
            if cancel is not None and cancel.is_set():
                status = "cancelled"
                break
            continue
        metrics.pop("eos_at", None)
        metrics.pop("warm", None)
        eos = set(metrics.pop("eos_ids", []))
        for key, value in metrics.items():
            setattr(base, key, value)
        if name == baseline:
            baseline_ids = list(base.token_ids)
        quality = compare(baseline_ids, base.token_ids, eos, sampled=req.do_sample, synthetic=prepared.spec.synthetic)
        base.token_agreement, base.first_divergence = quality.token_agreement, quality.first_divergence
        base.compared_tokens, base.quality_note = quality.compared_tokens, quality.quality_note
        if name == baseline:
            baseline_speed = base.decode_tokens_per_s
        base.speedup = decode_speedup(base.decode_tokens_per_s, baseline_speed)
        finish(base)
    if store is not None:
        store.finish_run(run_id, status)
    if req.isolation != "inline":
        (pool or shared_pool(limits)).prestart()  # for the next run's first cold configuration
    return results


def run(request: RunRequest, **kwargs: Any) -> list[Result]:
    """Validate and execute; RequestError for bad input."""
    return execute(validate(request), **kwargs)
