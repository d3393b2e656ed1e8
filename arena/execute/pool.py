"""Warm workers: a configuration's worker stays alive after its run, model loaded (and
compiled), and serves the next request with the same key; anything else gets a fresh worker.

Isolation stays: one process per configuration and key, one job at a time in the whole pool
(never two measuring at once on one device), a worker that crashed, timed out or reported an
error is killed and replaced. Warm workers live under a memory budget (host and GPU,
`ServerLimits.warm_memory_mb`, else a share of the device's memory): least recently used out
first, and out at once when a cold run needs their memory; idle ones expire after
`ServerLimits.warm_idle_s`.

A spare worker, torch and transformers already imported, waits for the next cold start. It is
made between runs, and during a job's untimed stages (warm-up, NLL scoring) when another
configuration follows: there it imports while the current configuration is not being timed,
and is SIGSTOPped during the stages that are (export, load, the timed repeats), so the next
configuration does not wait ~10 s of imports (2-core CPU) and no measured figure shares the CPU.

`WorkerLauncher` is the launcher interface over the pool (arena/execute/launcher.py).
"""

from __future__ import annotations

import os
import queue as _queue
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from arena.core.limits import WARM_SHARE, ServerLimits, warm_budget_mb
from arena.execute import memory_limit, processes
from arena.core.ending import Code
from arena.execute.launcher import Ending, Launcher, Limit, OnEvent, Outcome
from arena.execute.supervisor import supervise
from arena.execute.processes import ProcessSource
from arena.execute.worker_entry import serve
from arena.measure import probes

STOP_GRACE_S = 1.0  # a worker told to stop answers within a token; past this it is killed
# The stages of a job during which a spare worker may import beside it: nothing there is timed.
# Every other stage (exporting, loading, running) is, and pauses the spare.
UNTIMED_STAGES = frozenset({"warming up", "scoring"})


def warm_key(job: Any, compiled: bool) -> tuple:
    """What a loaded worker must match to serve `job`: the model, configuration, dtype, device,
    placement, memory cap and draft model; for compiled configurations also the shapes their graphs are
    captured at (batch, prompt length, new tokens)."""
    key = (job.model_kind, job.model_ref, job.config, job.dtype, job.device, tuple(job.gpus or ()),
           tuple(sorted((job.max_memory or {}).items())), job.memory_limit_mb, environment(),
           tuple(getattr(job, "draft", None) or ()))
    if compiled:
        key += (job.batch_size, len(job.prompt_ids), job.max_new_tokens)
    return key


def environment() -> int:
    """A fingerprint of the settings a worker inherits from this process's environment when it
    is spawned (ARENA_* with the fault injection of tests, CUDA_VISIBLE_DEVICES): a worker
    spawned before one changes is not reused. Libraries set other variables as they import."""
    return hash(tuple(sorted((k, v) for k, v in os.environ.items()
                             if k.startswith("ARENA_") or k == "CUDA_VISIBLE_DEVICES")))


@dataclass
class Worker:
    proc: Any
    jobs: Any
    events: Any
    stop: Any
    started: float = field(default_factory=time.monotonic)
    env: int = field(default_factory=environment)
    ready: bool = False
    imports_s: float | None = None
    foreign: list[str] = field(default_factory=list)
    key: tuple | None = None
    job: Any = None  # the last job it ran (model, configuration, device for the listing)
    idle_since: float = 0.0
    runs: int = 0
    host_mb: float = 0.0
    gpu_mb: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.is_alive()

    def mark_ready(self, event: dict[str, Any]) -> None:
        self.ready, self.imports_s, self.foreign = True, event["imports_s"], event["foreign"]

    def source(self) -> ProcessSource:
        """Its events for the launchers' loop; told to stop, it has STOP_GRACE_S to answer."""
        return ProcessSource(self.proc, self.events, self.stop, STOP_GRACE_S)


@dataclass
class PoolSettings:
    keep_warm: bool = True
    budget_mb: float | None = None  # None: from the device's size (warm_budget_mb)
    idle_s: float = 600.0
    spare: bool = True

    @classmethod
    def from_limits(cls, limits: ServerLimits) -> PoolSettings:
        return cls(keep_warm=limits.warm_workers, budget_mb=limits.warm_memory_mb,
                   idle_s=limits.warm_idle_s, spare=limits.warm_workers)


def _signal(worker: Worker, sig: int) -> None:
    """SIGSTOP / SIGCONT a pooled worker's process group (a no-op once it is gone)."""
    try:
        os.killpg(worker.pid, sig)
    except ProcessLookupError:  # just spawned, not leading its own group yet: the process alone
        try:
            os.kill(worker.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    except PermissionError:
        pass


class Pool:
    def __init__(self, settings: PoolSettings | None = None) -> None:
        self.settings = settings or PoolSettings()
        self._warm: OrderedDict[tuple, Worker] = OrderedDict()  # least recently used first
        self._spare: Worker | None = None
        self._lock = threading.Lock()  # the dict and the spare
        self._running = threading.Lock()  # one job at a time in the whole pool
        self._needs: dict[tuple, float] = {}  # (model, config, device) -> MB its worker held
        self._closed = False
        self._reaper = threading.Thread(target=self._reap, name="arena-pool-reaper", daemon=True)
        self._reaper.start()

    # ---- workers
    def _spawn(self) -> Worker:
        ctx = processes.CONTEXT
        jobs, events, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        proc = processes.spawn(serve, (os.getpid(), jobs, events, stop), "arena-worker")
        return Worker(proc, jobs, events, stop)

    def prestart(self) -> None:
        """Have a spare worker importing (or ready) for the next cold start. Called between runs
        and in a job's untimed stages, never in a timed one: its imports would take CPU time
        from a measured configuration."""
        if not self.settings.spare or self._closed:
            return
        with self._lock:
            if self._spare is not None and self._spare.alive():
                return
            self._spare = self._spawn()

    def _take_fresh(self) -> Worker:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None and spare.alive() and spare.env == environment():
            _signal(spare, signal.SIGCONT)
            return spare
        if spare is not None:
            self._discard(spare)
        return self._spawn()

    def _discard(self, worker: Worker) -> None:
        try:
            worker.jobs.put(None)
        except (OSError, ValueError):
            pass
        processes.kill(worker.proc)
        if worker.job is not None:
            processes.wait_gpu_released(worker.pid, worker.job.device)
        for q in (worker.jobs, worker.events):
            q.close()
            q.cancel_join_thread()

    # ---- budget
    def budget_mb(self, device: str) -> float:
        total = probes.total_mb(device)
        return warm_budget_mb(self.settings.budget_mb, total)

    def _snapshot(self) -> list[Worker]:
        with self._lock:
            return list(self._warm.values())

    def _held(self, device: str) -> float:
        gpu = device.startswith("cuda")
        return sum(w.gpu_mb if gpu else w.host_mb for w in self._snapshot() if w.job.device == device)

    def _evict_lru(self, device: str | None = None) -> bool:
        with self._lock:
            key = next((k for k, w in self._warm.items() if device is None or w.job.device == device), None)
            worker = self._warm.pop(key) if key is not None else None
        if worker is None:
            return False
        self._discard(worker)
        return True

    def _fit_budget(self) -> None:
        for device in {w.job.device for w in self._snapshot()}:
            while self._held(device) > self.budget_mb(device) and self._evict_lru(device):
                pass

    def make_room(self, job: Any) -> None:
        """Before a cold start on `job.device`: evict warm workers there (oldest first) until the
        device has room for what this model and configuration held last time; all of them when
        it is not known yet."""
        need = self._needs.get((job.model_kind, job.model_ref, job.config, job.device))
        if need is None:  # not seen yet: what another configuration of the model held, else a guess
            same = [mb for (kind, ref, _, dev), mb in self._needs.items()
                    if (kind, ref, dev) == (job.model_kind, job.model_ref, job.device)]
            total = probes.total_mb(job.device)
            need = max(same) if same else WARM_SHARE * total if total else None
        while any(w.job.device == job.device for w in self._snapshot()):
            free = probes.free_mb(job.device)
            if need is not None and free is not None and free >= 1.5 * need + 512:
                return
            self._evict_lru(job.device)

    def expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            old = [k for k, w in self._warm.items() if now - w.idle_since > self.settings.idle_s or not w.alive()]
            gone = [self._warm.pop(k) for k in old]
        for worker in gone:
            self._discard(worker)

    def _reap(self) -> None:
        while not self._closed:
            time.sleep(min(5.0, max(0.2, self.settings.idle_s / 4)))
            try:
                self.expire()
            except Exception:  # never let the reaper die on one bad worker
                pass

    # ---- the spare, paused while a job is timed
    def _spare_signal(self, sig: int) -> None:
        with self._lock:
            spare = self._spare
        if spare is not None:
            _signal(spare, sig)

    def _stage_watch(self, handle: OnEvent, prepare_next: bool) -> OnEvent:
        """`handle` that first pauses the spare as a timed stage begins and lets it run (made
        first, when `prepare_next`) as an untimed one does."""
        def on_event(event: dict[str, Any]) -> None:
            if event["type"] == "status":
                if event["stage"] in UNTIMED_STAGES:
                    if prepare_next:
                        self.prestart()
                    self._spare_signal(signal.SIGCONT)
                else:
                    self._spare_signal(signal.SIGSTOP)
            handle(event)
        return on_event

    # ---- running
    def run(self, job: Any, handle: OnEvent, *, compiled: bool, limit: Limit,
            on_start: Callable[[int], None] | None = None, death_reason: Callable[[], str | None] | None = None,
            prepare_next: bool = False) -> Outcome:
        """Run `job` on a warm worker with its key, else a fresh one (the spare when there is
        one); pass its events but "error", "done", "stopped", "metrics" and "nll" to `handle`.
        `prepare_next`: another configuration follows, so a spare is made in this job's untimed
        stages for it."""
        with self._running:
            self._spare_signal(signal.SIGSTOP)  # still importing: not beside a measured job
            try:
                t0 = time.monotonic()
                handle = self._stage_watch(handle, prepare_next)
                out = self._run(job, handle, compiled, t0, limit, on_start, death_reason)
                if out is None:  # the warm worker had died before it took the job: a fresh one
                    out = self._run(job, handle, compiled, t0, limit, on_start, death_reason, cold=True)
                return out
            finally:
                self._spare_signal(signal.SIGCONT)

    def _run(self, job: Any, handle: OnEvent, compiled: bool, t0: float, limit: Limit, on_start, death_reason,
             cold: bool = False) -> Outcome | None:
        self.expire()
        key = warm_key(job, compiled)
        with self._lock:
            worker = None if cold else self._warm.pop(key, None)
        if worker is not None:
            _signal(worker, signal.SIGCONT)
        if worker is not None and not worker.alive():
            self._discard(worker)
            worker = None
        warm = worker is not None
        if worker is None:
            self.make_room(job)
            worker = self._take_fresh()
        try:
            waited_imports = None
            if not worker.ready:  # a fresh worker: wait until its imports are done
                ready = supervise(worker.source(), handle, limit, until="ready", explain=death_reason, stop_grace_s=0)
                if ready.last is None:  # cancelled, timed out or died while importing
                    self._discard(worker)
                    return Outcome(ready.ending, warm=warm, stage_s={"start": time.monotonic() - t0})
                worker.mark_ready(ready.last)
                waited_imports = min(worker.imports_s, time.monotonic() - t0)  # (part of) them while this job waited
            stage_s = {"start": time.monotonic() - t0 - (waited_imports or 0.0)}
            if waited_imports is not None:
                stage_s["imports"] = waited_imports
            if on_start is not None:
                on_start(worker.pid)
            worker.stop.clear()
            worker.jobs.put((job, key, limit.left_s(), limit.reason))
            out = supervise(worker.source(), handle, limit, explain=death_reason)
            out.warm, out.stage_s = warm, stage_s
            done = out.last
            if out.ending.kind == "died":
                self._discard(worker)
                return None if warm and not out.answered else out  # None: it died while idle
            if done is None:  # the loop stopped it: a cancelled worker that stopped cleanly stays
                if out.clean_stop and out.ending.kind == "cancelled":
                    self._keep(worker, key, job)
                else:
                    self._discard(worker)  # a time limit always kills; so does no answer
            elif done.get("reusable") and (out.ending.kind == "cancelled"
                                           or out.ending.kind == "done" and out.ending.reason is None):
                self._keep(worker, key, job, done.get("gpu_mb") or 0.0)
            else:
                self._discard(worker)
            return out
        except BaseException:
            self._discard(worker)
            raise

    def _keep(self, worker: Worker, key: tuple, job: Any, reported_gpu_mb: float = 0.0) -> None:
        if not self.settings.keep_warm or self._closed:
            self._discard(worker)
            return
        worker.key, worker.job, worker.runs = key, job, worker.runs + 1
        worker.idle_since = time.monotonic()
        worker.host_mb = probes.host_mb(worker.pid)
        worker.gpu_mb = max(probes.gpu_mb(worker.pid, job.device), reported_gpu_mb)
        self._needs[(job.model_kind, job.model_ref, job.config, job.device)] = (
            worker.gpu_mb if job.device.startswith("cuda") else worker.host_mb)
        with self._lock:
            self._warm[key] = worker
        # Idle, it waits stopped: its threads (the memory sampler) take no CPU from a measured job.
        _signal(worker, signal.SIGSTOP)
        self._fit_budget()

    # ---- listing and freeing
    def describe(self) -> list[dict[str, Any]]:
        """The warm workers, most recently used first: model, configuration, memory held, idle time."""
        now = time.monotonic()
        with self._lock:
            workers = list(self._warm.values())[::-1]
        return [asdict(WarmInfo(
            model=f"{w.job.model_kind}:{w.job.model_ref}" if w.job.model_kind != "default" else "default",
            config=w.job.config, dtype=w.job.dtype, device=w.job.device, host_mb=round(w.host_mb, 1),
            gpu_mb=round(w.gpu_mb, 1), idle_s=round(now - w.idle_since, 1), runs=w.runs, pid=w.pid,
            foreign_modules=list(w.foreign))) for w in workers]

    def spare(self) -> dict[str, Any] | None:
        """The spare worker: its pid and whether its imports are done (None: there is none)."""
        with self._lock:
            spare = self._spare
            if spare is None or not spare.alive():
                return None
            if not spare.ready:
                try:
                    event = spare.events.get_nowait()
                except _queue.Empty:
                    event = None
                if event is not None and event["type"] == "ready":
                    spare.mark_ready(event)
            return {"pid": spare.pid, "ready": spare.ready, "imports_s": spare.imports_s,
                    "host_mb": round(probes.host_mb(spare.pid), 1), "foreign_modules": list(spare.foreign)}

    def free_all(self) -> int:
        """End every warm worker (not a running one); returns how many."""
        with self._lock:
            workers = list(self._warm.values())
            self._warm.clear()
        for worker in workers:
            self._discard(worker)
        return len(workers)

    def close(self) -> None:
        self._closed = True
        self.free_all()
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            self._discard(spare)


@dataclass
class WarmInfo:
    model: str
    config: str
    dtype: str
    device: str
    host_mb: float
    gpu_mb: float
    idle_s: float
    runs: int
    pid: int
    foreign_modules: list[str]


_shared: Pool | None = None
_shared_lock = threading.Lock()


def shared_pool(limits: ServerLimits | None = None) -> Pool:
    """The process's pool (made on first use, with `limits`' warm settings)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = Pool(PoolSettings.from_limits(limits or ServerLimits.from_env()))
            atexit.register(_shared.close)
        return _shared


def existing_pool() -> Pool | None:
    return _shared


class WorkerLauncher(Launcher):
    """A configuration's job on a worker of `pool` (warm when one has its key). Where the
    worker computes on the CPU its resident memory is watched from here against the job's
    memory limit; on CUDA the worker caps its own allocator (arena/execute/memory_limit.py)."""

    def __init__(self, pool: Pool, *, compiled: bool, watch_rss: bool, prepare_next: bool = False) -> None:
        self.pool, self.compiled, self.watch_rss, self.prepare_next = pool, compiled, watch_rss, prepare_next

    def launch(self, job: Any, on_event: OnEvent, limit: Limit) -> Outcome:
        watch: memory_limit.RssWatch | None = None

        def start_watch(pid: int) -> None:
            nonlocal watch
            if self.watch_rss and job.memory_limit_mb:
                watch = memory_limit.RssWatch(pid, job.memory_limit_mb).start()

        def over_limit() -> str | None:
            if watch is not None and watch.exceeded_mb is not None:
                return memory_limit.exceeded(job.memory_limit_mb, watch.exceeded_mb)
            return None

        try:
            out = self.pool.run(job, on_event, compiled=self.compiled, limit=limit, on_start=start_watch,
                                death_reason=over_limit, prepare_next=self.prepare_next)
        finally:
            if watch is not None:
                watch.stop()
        if over_limit() and out.ending.kind not in ("cancelled", "timeout"):
            out.ending, out.metrics = Ending("died", over_limit(), Code.OOM), None
        return out
