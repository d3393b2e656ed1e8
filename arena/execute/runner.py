"""Runs a validated request: availability first, then each available configuration through
its launcher (arena/execute/launcher.py: a pool worker, this process, or one process per
rank), one after another (never two at once on one device), baseline first. Every finished
configuration is stored at once; events go to `on_event` as they come."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from arena.techniques import registry
from arena.core.ending import Code
from arena.core.env import collect_env, platform
from arena.core.request import RunRequest
from arena.backends import inductor
from arena.execute.prepare import PreparedRun, validate
from arena.core.results import Result, measured
from arena.data.store import Store, now
from arena.execute.inline import InlineLauncher
from arena.execute.launcher import Launcher, Limit, Outcome
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


def _order(names: list[str], verdicts: dict[str, Any]) -> tuple[set[str], str | None, list[str]]:
    """The configurations that can run, the baseline, and the order they run in (baseline first)."""
    available = {n for n, v in verdicts.items() if v.ok}
    baseline = pick_baseline(names, available)
    return available, baseline, ([baseline] if baseline else []) + [n for n in names if n != baseline]


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


@dataclass
class _Reference:
    """What the baseline left for the configurations after it: its tokens (agreement and NLL),
    its logit leads (near-ties) and its decode speed (speedup)."""

    ids: list[int] | None = None
    leads: list[float] | None = None
    speed: float | None = None


def _resolve(prepared: PreparedRun, plat: Any) -> tuple[dict, dict, dict]:
    """Each configuration resolved once: its row, the dtype it runs in, whether it can run here."""
    configs = {name: registry.get(name) for name in prepared.config_names}
    dtypes = {name: registry.run_dtype(cfg, prepared.dtype) for name, cfg in configs.items()}
    positions = len(prepared.prompt_ids) + prepared.request.max_new_tokens
    verdicts = {name: registry.availability(cfg, dtypes[name], plat, placement=prepared.placement,
                                            model_config=prepared.model_config, positions=positions,
                                            batch=prepared.request.batch_size, synthetic=prepared.spec.synthetic)
                for name, cfg in configs.items()}
    return configs, dtypes, verdicts


def _common(prepared: PreparedRun, run_id: str, env: dict[str, Any]) -> dict[str, Any]:
    """The fields every result of the run shares."""
    req = prepared.request
    return dict(
        run_id=run_id, model_id=prepared.spec.id, model_display=prepared.spec.display,
        synthetic=prepared.spec.synthetic, hardware=env["hardware"], device=env["device"],
        batch_size=req.batch_size, prompt_tokens=len(prepared.prompt_ids), new_tokens=req.max_new_tokens,
        repeats=req.repeats, prompt=req.prompt if not prepared.spec.synthetic else "",
        settings={k: v for k, v in req.to_dict().items() if k not in ("prompt", "configs")}, env=env,
    )


def _limit(prepared: PreparedRun, run_deadline: float | None, cancel: threading.Event | None) -> Limit | None:
    """The configuration's time limit: the smaller of its own and what is left of the run's wall
    time (ServerLimits.max_run_s); None when the run has no time left to start it."""
    timeout_s, note, code = prepared.request.timeout_s, "time limit per configuration", Code.TIMEOUT
    if run_deadline is not None:
        left = run_deadline - time.monotonic()
        if left < 1.0:
            return None
        if left < timeout_s:
            timeout_s, note = left, f"the run's time limit of {prepared.limits.max_run_s:g} s"
            code = Code.RUN_TIME_LIMIT
    return Limit(timeout_s, f"timed out after {timeout_s:.0f} s ({note})", cancel, code)


def _record(base: Result, out: Outcome, ref: _Reference, *, is_baseline: bool, others: bool,
            prepared: PreparedRun) -> None:
    """A launched configuration's outcome onto its Result: its ending, stages and, measured,
    its fields, its agreement with the baseline and its speedup (the baseline's set `ref`)."""
    metrics = out.metrics if out.failure() is None else None
    base.created_at, base.ending = now(), out.code
    base.warm = bool(metrics.get("warm") if metrics is not None and "warm" in metrics else out.warm)
    stages = {**out.stage_s, **((metrics.pop("stage_s", None) or {}) if metrics is not None else {})}
    base.stage_s = {k: round(v, 4) for k, v in stages.items()}
    if metrics is None:
        base.status, base.reason = "failed", str(out.failure() or "no result")
        if is_baseline and others:
            base.reason += " (baseline: agreement not computed for the others)"
        return
    req = prepared.request
    own_leads = metrics.get("leads")
    eos = _fill(base, metrics)
    if is_baseline:
        ref.ids, ref.leads = list(base.token_ids), own_leads
    quality = compare(ref.ids, base.token_ids, eos, sampled=req.do_sample, synthetic=prepared.spec.synthetic)
    base.token_agreement, base.first_divergence = quality.token_agreement, quality.first_divergence
    base.compared_tokens, base.quality_note = quality.compared_tokens, quality.quality_note
    tie = near_tie(ref.leads, own_leads, base.first_divergence) if not req.do_sample else None
    if tie is not None:
        base.divergence_margin, base.divergence_noise = round(tie.margin, 4), round(tie.noise, 4)
        base.quality_note = "; ".join(n for n in (base.quality_note, tie.note()) if n)
    if is_baseline:
        ref.speed = base.decode_tokens_per_s
    base.speedup = decode_speedup(base.decode_tokens_per_s, ref.speed)


def execute(prepared: PreparedRun, *, store: Store | None = None, on_event: OnEvent | None = None,
            cancel: threading.Event | None = None, pool: Pool | None = None) -> list[Result]:
    """`pool`: the warm workers to run on (default: this process's shared pool)."""
    req, limits = prepared.request, prepared.limits
    on_event = on_event or (lambda event: None)
    run_id = uuid.uuid4().hex[:12]
    run_deadline = time.monotonic() + limits.max_run_s if limits.max_run_s else None
    plat = platform()
    env = {**collect_env(), **inductor.environment(plat.capability if plat.has_cuda else None)}
    if store is not None:
        store.start_run(run_id, req.to_dict())
    common = _common(prepared, run_id, env)
    device = prepared.placement.device(plat.device)  # "cuda:1" for a GPU choice, cpu for a cpu budget
    configs, dtypes, verdicts = _resolve(prepared, plat)
    available, baseline, order = _order(prepared.config_names, verdicts)
    on_event({"type": "run", "run_id": run_id, "order": order, "baseline": baseline or ""})
    results: list[Result] = []
    ref, status = _Reference(), "complete"

    def finish(result: Result) -> None:
        results.append(result)
        if store is not None:
            store.add(result)
        on_event({"type": "result", "config": result.config, "result": result.to_dict()})

    for position, name in enumerate(order):
        cfg, verdict = configs[name], verdicts[name]
        base = Result(config=name, status="ok", label=cfg.label, family=cfg.family, created_at=now(),
                      dtype=dtypes[name], baseline=baseline or "", **common)
        if not verdict.ok:
            base.status, base.reason, base.ending = "unavailable", verdict.reason, verdict.code
            finish(base)
            continue
        if cancel is not None and cancel.is_set():
            status = "cancelled"
            break
        limit = _limit(prepared, run_deadline, cancel)
        if limit is None:  # one that no longer fits the run's wall time is stored as failed, not dropped
            status = "time limit"  # the run did not run everything it was asked to
            base.status, base.ending = "failed", Code.NOT_RUN
            base.reason = f"not run: the run reached its time limit of {limits.max_run_s:g} s"
            finish(base)
            continue
        on_event({"type": "status", "config": name, "stage": "starting"})
        job = make_job(prepared, name, device, reference_ids=ref.ids, is_baseline=name == baseline)
        launcher = choose_launcher(cfg, prepared, device, plat, pool,
                                   more_follow=any(n in available for n in order[position + 1:]))
        out = launcher.launch(job, lambda event, name=name: on_event({**event, "config": name}), limit)
        _record(base, out, ref, is_baseline=name == baseline, others=len(order) > 1, prepared=prepared)
        if base.ending is Code.RUN_TIME_LIMIT:
            status = "time limit"  # cut by the run's wall time: the run is not complete
        finish(base)
        if base.status == "failed" and cancel is not None and cancel.is_set():
            status = "cancelled"
            break
    if store is not None:
        store.finish_run(run_id, status)
    if req.isolation != "inline":
        (pool or shared_pool(limits)).prestart()  # for the next run's first cold configuration
    return results


def run(request: RunRequest, **kwargs: Any) -> list[Result]:
    """Validate and execute; RequestError for bad input."""
    return execute(validate(request), **kwargs)
