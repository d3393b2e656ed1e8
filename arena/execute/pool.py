"""Warm workers: a configuration's worker stays alive after its run, model loaded (and
compiled), and serves the next request with the same key; anything else gets a fresh worker.

Isolation stays: one process per configuration and key, one job at a time in the whole pool
(never two measuring at once on one device), a worker that crashed, timed out or reported an
error is killed and replaced. Warm workers live under a memory budget (host and GPU,
`ServerLimits.warm_memory_mb`, else a share of the device's memory): least recently used out
first, and out at once when a cold run needs their memory; idle ones expire after
`ServerLimits.warm_idle_s`. A spare worker, torch and transformers already imported, waits for
the next cold start.
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

from arena.core.errors import process_death
from arena.core.limits import WARM_SHARE, ServerLimits, warm_budget_mb
from arena.core.units import MiB
from arena.execute import launcher
from arena.execute.supervisor import Ending
from arena.execute.worker_entry import serve

STOP_GRACE_S = 1.0  # a worker told to stop answers within a token; past this it is killed
READ_EVERY_S = 0.05


def warm_key(job: Any, compiled: bool) -> tuple:
    """What a loaded worker must match to serve `job`: the model, configuration, dtype, device,
    placement and memory cap; for compiled configurations also the shapes their graphs are
    captured at (batch, prompt length, new tokens)."""
    key = (job.model_kind, job.model_ref, job.config, job.dtype, job.device, tuple(job.gpus or ()),
           tuple(sorted((job.max_memory or {}).items())), job.memory_limit_mb, environment())
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


@dataclass
class Outcome:
    """How a pooled run ended, and what the pool knows of it."""

    ending: Ending
    warm: bool
    start_s: float  # waiting for a worker to take the job (spawn and interpreter start)
    imports_s: float | None  # imports that happened while waiting (None: a ready worker)
    stopped: str | None = None  # the worker's own stop reason (cancel or time limit seen between tokens)


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
    except (ProcessLookupError, PermissionError):
        pass


def _host_mb(pid: int) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        return (proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))) / MiB
    except psutil.Error:
        return 0.0


def _gpu_index(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    return int(device.split(":")[1]) if ":" in device else 0


def _gpu_mb(pid: int, device: str) -> float:
    index = _gpu_index(device)
    if index is None:
        return 0.0
    from arena.measure.nvml import Nvml

    used = Nvml(index).process_used_bytes(pid)
    return used / MiB if used else 0.0


def _free_mb(device: str) -> float | None:
    index = _gpu_index(device)
    if index is None:
        import psutil

        return psutil.virtual_memory().available / MiB
    from arena.measure.nvml import Nvml

    nvml = Nvml(index)
    if not nvml.ok:
        return None
    try:
        return nvml.pynvml.nvmlDeviceGetMemoryInfo(nvml.handle).free / MiB
    except Exception:
        return None


def _total_mb(device: str) -> float | None:
    index = _gpu_index(device)
    if index is None:
        import psutil

        return psutil.virtual_memory().total / MiB
    from arena.measure.nvml import Nvml

    nvml = Nvml(index)
    try:
        return nvml.pynvml.nvmlDeviceGetMemoryInfo(nvml.handle).total / MiB if nvml.ok else None
    except Exception:
        return None


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
        ctx = launcher.CONTEXT
        jobs, events, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        proc = launcher.spawn(serve, (os.getpid(), jobs, events, stop), "arena-worker")
        return Worker(proc, jobs, events, stop)

    def prestart(self) -> None:
        """Have a spare worker importing (or ready) for the next cold start. Called between runs,
        never during one: its imports would take CPU time from a measured configuration."""
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
        launcher.kill(worker.proc)
        if worker.job is not None:
            launcher.wait_gpu_released(worker.pid, worker.job.device)
        for q in (worker.jobs, worker.events):
            q.close()
            q.cancel_join_thread()

    # ---- budget
    def budget_mb(self, device: str) -> float:
        total = _total_mb(device)
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
            total = _total_mb(job.device)
            need = max(same) if same else WARM_SHARE * total if total else None
        while any(w.job.device == job.device for w in self._snapshot()):
            free = _free_mb(job.device)
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

    # ---- running
    def run(self, job: Any, handle: Callable[[dict[str, Any]], None], *, compiled: bool, timeout_s: float,
            timeout_reason: str, cancel: threading.Event | None = None,
            on_start: Callable[[int], None] | None = None,
            death_reason: Callable[[], str | None] | None = None) -> Outcome:
        """Run `job` on a warm worker with its key, else a fresh one; pass its events but "error",
        "done" and "stopped" to `handle`. Cancel and the deadline are checked at every event."""
        with self._running:
            spare = self._spare
            if spare is not None:
                _signal(spare, signal.SIGSTOP)  # still importing: not beside a measured job
            try:
                t0 = time.monotonic()
                out = self._run(job, handle, compiled, t0, timeout_s, timeout_reason, cancel, on_start, death_reason)
                if out is None:  # the warm worker had died before it took the job: a fresh one
                    out = self._run(job, handle, compiled, t0, timeout_s, timeout_reason, cancel, on_start,
                                    death_reason, cold=True)
                return out
            finally:
                if spare is not None:
                    _signal(spare, signal.SIGCONT)

    def _run(self, job, handle, compiled, t0, timeout_s, timeout_reason, cancel, on_start, death_reason,
             cold: bool = False) -> Outcome | None:
        deadline = t0 + timeout_s
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
        waited_imports = None
        was_ready = worker.ready
        error: str | None = None
        stopped: str | None = None
        start_s = 0.0

        def outcome(ending: Ending) -> Outcome:
            return Outcome(ending, warm, start_s, waited_imports, stopped)

        try:
            while not worker.ready:  # a fresh worker: wait until its imports are done
                ending = self._check(worker, cancel, deadline, timeout_reason, death_reason, None)
                if ending is not None:
                    start_s = time.monotonic() - t0
                    self._discard(worker)
                    return outcome(ending)
                try:
                    event = worker.events.get(timeout=READ_EVERY_S)
                except _queue.Empty:
                    continue
                if event["type"] == "ready":
                    worker.ready, worker.imports_s, worker.foreign = True, event["imports_s"], event["foreign"]
                    if not was_ready:  # (part of) its imports happened while this job waited
                        waited_imports = min(event["imports_s"], time.monotonic() - t0)
            start_s = time.monotonic() - t0 - (waited_imports or 0.0)
            if on_start is not None:
                on_start(worker.pid)
            worker.stop.clear()
            worker.jobs.put((job, key, max(0.0, deadline - time.monotonic()), timeout_reason))
            died_at = None
            answered = False  # any event of this job yet
            while True:
                ending = self._check(worker, cancel, deadline, timeout_reason, death_reason, error)
                if ending is not None and ending.kind in ("cancelled", "timeout"):
                    worker.stop.set()  # it ends between tokens and answers "stopped", then "done"
                    stopped = self._drain(worker, handle, ending.kind == "cancelled")
                    if stopped is None or ending.kind == "timeout":
                        self._discard(worker)  # a time limit always kills; so does no answer
                    else:
                        self._keep(worker, key, job)
                    return outcome(ending)
                try:
                    event = worker.events.get(timeout=READ_EVERY_S)
                except _queue.Empty:
                    if worker.alive():
                        continue
                    died_at = died_at or time.monotonic()  # read what it sent before dying
                    if time.monotonic() - died_at < 0.5:
                        continue
                    self._discard(worker)
                    if warm and not answered:
                        return None  # it died while idle (killed, or a crash after its last run)
                    return outcome(self._death(worker, death_reason, error))
                answered = True
                kind = event["type"]
                if kind == "error":
                    error = event["reason"]
                elif kind == "stopped":
                    stopped = event["reason"]
                elif kind == "done":
                    if event.get("reusable") and error is None and (stopped is None or stopped.startswith("cancelled")):
                        self._keep(worker, key, job, event.get("gpu_mb") or 0.0)
                    else:
                        self._discard(worker)
                    if stopped is not None:
                        kind = "cancelled" if stopped.startswith("cancelled") else "timeout"
                        return outcome(Ending(kind, stopped))
                    return outcome(Ending("done", error))
                else:
                    handle(event)
        except BaseException:
            self._discard(worker)
            raise

    def _check(self, worker: Worker, cancel, deadline: float, timeout_reason: str, death_reason,
               error: str | None) -> Ending | None:
        if cancel is not None and cancel.is_set():
            return Ending("cancelled", "cancelled by the user")
        if time.monotonic() > deadline:
            return Ending("timeout", timeout_reason)
        return None

    def _drain(self, worker: Worker, handle, keep_events: bool) -> str | None:
        """After a stop request: the worker's events until "done" (its stop reason), or None if
        it does not answer within STOP_GRACE_S."""
        end = time.monotonic() + STOP_GRACE_S
        reason = None
        while time.monotonic() < end:
            try:
                event = worker.events.get(timeout=READ_EVERY_S)
            except _queue.Empty:
                if not worker.alive():
                    return None
                continue
            if event["type"] == "stopped":
                reason = event["reason"]
            elif event["type"] == "done":
                return reason if event.get("reusable") else None
            elif event["type"] not in ("error", "metrics") and keep_events:
                handle(event)
        return None

    def _death(self, worker: Worker, death_reason, error: str | None) -> Ending:
        explained = death_reason() if death_reason is not None else None
        return Ending("died", explained or error or f"worker process died: {process_death(worker.proc.exitcode)}")

    def _keep(self, worker: Worker, key: tuple, job: Any, reported_gpu_mb: float = 0.0) -> None:
        if not self.settings.keep_warm or self._closed:
            self._discard(worker)
            return
        worker.key, worker.job, worker.runs = key, job, worker.runs + 1
        worker.idle_since = time.monotonic()
        worker.host_mb = _host_mb(worker.pid)
        worker.gpu_mb = max(_gpu_mb(worker.pid, job.device), reported_gpu_mb)
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
                    spare.ready, spare.imports_s, spare.foreign = True, event["imports_s"], event["foreign"]
            return {"pid": spare.pid, "ready": spare.ready, "imports_s": spare.imports_s,
                    "host_mb": round(_host_mb(spare.pid), 1), "foreign_modules": list(spare.foreign)}

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
