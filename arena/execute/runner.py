"""Runs a validated request: availability first, then each available configuration through
its launcher (arena/execute/launcher.py: a pool worker, this process, or one process per
rank), one after another (never two at once on one device), baseline first. Every finished
configuration is stored at once; events go to `on_event` as they come."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Callable

from arena.techniques import registry
from arena.core.env import collect_env, platform
from arena.core.request import RunRequest
from arena.backends import inductor
from arena.execute.prepare import PreparedRun, validate
from arena.core.results import Result, measured
from arena.data.store import Store, now
from arena.execute.inline import InlineLauncher
from arena.execute.launcher import Launcher, Limit
from arena.execute.pool import Pool, PoolSettings, WorkerLauncher, shared_pool
from arena.execute.tensor_parallel import RanksLauncher
from arena.execute.worker import Job
from arena.measure.quality import compare, decode_speedup, near_tie

OnEvent = Callable[[dict[str, Any]], None]


def pick_baseline(names: list[str], available: set[str]) -> str | None:
    """eager when it can run, else the first configuration that can."""
    if registry.BASELINE in available:
        return registry.BASELINE
    return next((n for n in names if n in available), None)


def make_job(prepared: PreparedRun, name: str, device: str, *, reference_ids: list[int] | None,
             is_baseline: bool) -> Job:
    """The job of configuration `name`: the request's settings, and the baseline's tokens to
    score NLL against (the baseline scores its own)."""
    req = prepared.request
    speculation = registry.get(name).speculation
    return Job(
        config=name, model_kind=prepared.spec.kind, model_ref=prepared.spec.ref,
        dtype=prepared.dtype, device=device, prompt_ids=prepared.prompt_ids,
        batch_size=req.batch_size, max_new_tokens=req.max_new_tokens, repeats=req.repeats,
        sampling=dict(do_sample=req.do_sample, temperature=req.temperature, top_p=req.top_p, seed=req.seed),
        reference_ids=None if is_baseline else reference_ids,
        baseline_failed=not is_baseline and reference_ids is None,
        memory_limit_mb=prepared.limits.worker_memory_mb,
        gpus=list(prepared.placement.gpus) or None, max_memory=dict(prepared.placement.max_memory) or None,
        draft=(prepared.draft.kind, prepared.draft.ref) if speculation and speculation.draft and prepared.draft
        else None,
    )


def _fill(result: Result, metrics: dict[str, Any]) -> set[int]:
    """Copy a measurement's declared fields into its Result (`warm` is the runner's to set);
    returns the model's end-of-text ids."""
    measured(result, {k: v for k, v in metrics.items() if k != "warm"})
    return set(metrics.get("eos_ids", []))


def choose_launcher(cfg: registry.Config, prepared: PreparedRun, device: str, plat: Any, pool: Pool | None,
                    *, more_follow: bool) -> Launcher:
    """The launcher of configuration `cfg` in this run: one process per rank for tensor
    parallel (whatever the isolation asked; never kept warm), this process for inline runs,
    else a worker of the warm pool. `more_follow`: another configuration runs after this one
    (the pool prepares its worker meanwhile)."""
    limits = prepared.limits
    if cfg.tensor_parallel:
        (pool or shared_pool(limits)).free_all()  # every GPU's memory for the ranks
        return RanksLauncher(int(registry.tensor_parallel_world(plat, prepared.placement)))
    if prepared.request.isolation == "inline":
        return InlineLauncher(PoolSettings.from_limits(limits), compiled=cfg.compiled)
    # Resident memory is watched from here where the worker computes on the CPU; on CUDA the
    # worker caps its own allocator (arena/execute/memory_limit.py).
    on_cpu = device == "cpu" or cfg.backend == "onnxruntime" and not cfg.needs_cuda
    return WorkerLauncher(pool or shared_pool(limits), compiled=cfg.compiled, watch_rss=on_cpu,
                          prepare_next=more_follow)


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
    plat = platform()
    env = {**collect_env(), **inductor.environment(plat.capability if plat.has_cuda else None)}
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
    # Each configuration resolved once: its row, the dtype it runs in, and whether it can run here.
    configs = {name: registry.get(name) for name in prepared.config_names}
    dtypes = {name: registry.run_dtype(cfg, prepared.dtype) for name, cfg in configs.items()}
    verdicts = {name: registry.availability(cfg, dtypes[name], plat, placement=prepared.placement,
                                            model_config=prepared.model_config,
                                            positions=len(prepared.prompt_ids) + req.max_new_tokens,
                                            batch=req.batch_size, synthetic=prepared.spec.synthetic)
                for name, cfg in configs.items()}
    available = {n for n, v in verdicts.items() if v.ok}
    baseline = pick_baseline(prepared.config_names, available)
    order = ([baseline] if baseline else []) + [n for n in prepared.config_names if n != baseline]
    on_event({"type": "run", "run_id": run_id, "order": order, "baseline": baseline or ""})

    results: list[Result] = []
    baseline_ids: list[int] | None = None
    baseline_leads: list[float] | None = None
    baseline_speed: float | None = None
    status = "complete"

    def finish(result: Result) -> None:
        results.append(result)
        if store is not None:
            store.add(result)
        on_event({"type": "result", "config": result.config, "result": result.to_dict()})

    for position, name in enumerate(order):
        cfg = configs[name]
        base = Result(config=name, status="ok", label=cfg.label, family=cfg.family, created_at=now(),
                      dtype=dtypes[name], baseline=baseline or "", **common)
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
        job = make_job(prepared, name, device, reference_ids=baseline_ids, is_baseline=name == baseline)
        launcher = choose_launcher(cfg, prepared, device, plat, pool,
                                   more_follow=any(n in available for n in order[position + 1:]))
        out = launcher.launch(job, lambda event, name=name: on_event({**event, "config": name}),
                              Limit(timeout_s, f"timed out after {timeout_s:.0f} s ({limit_note})", cancel))
        metrics, error = out.metrics, out.failure()
        if error is not None:
            metrics = None
        base.created_at = now()
        base.warm = bool(metrics.get("warm") if metrics is not None and "warm" in metrics else out.warm)
        stages = dict(out.stage_s)
        if metrics is not None:
            stages.update(metrics.pop("stage_s", None) or {})
        base.stage_s = {k: round(v, 4) for k, v in stages.items()}
        if metrics is None and limit_note != "time limit per configuration" and (error or "").startswith("timed out"):
            status = "time limit"  # cut by the run's wall time: the run is not complete
        if metrics is None:
            base.status, base.reason = "failed", error or "no result"
            if name == baseline and len(order) > 1:
                base.reason += " (baseline: agreement not computed for the others)"
            finish(base)
            if cancel is not None and cancel.is_set():
                status = "cancelled"
                break
            continue
        own_leads = metrics.get("leads")
        eos = _fill(base, metrics)
        if name == baseline:
            baseline_ids, baseline_leads = list(base.token_ids), own_leads
        quality = compare(baseline_ids, base.token_ids, eos, sampled=req.do_sample, synthetic=prepared.spec.synthetic)
        base.token_agreement, base.first_divergence = quality.token_agreement, quality.first_divergence
        base.compared_tokens, base.quality_note = quality.compared_tokens, quality.quality_note
        tie = near_tie(baseline_leads, own_leads, base.first_divergence) if not req.do_sample else None
        if tie is not None:
            base.divergence_margin, base.divergence_noise = round(tie.margin, 4), round(tie.noise, 4)
            base.quality_note = "; ".join(n for n in (base.quality_note, tie.note()) if n)
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
