"""Inline runs (ZeroGPU, where the GPU belongs to the decorated call's own process, and
`--inline`): the configuration runs in this process (in a thread, supervised by the launchers'
loop, arena/execute/launcher.py), with the same stop checks between tokens
and the same warm rule as the pool's: the last loaded model stays cached, with its key, when
it fits the warm budget, and serves the next identical job. Only one is kept, so a model
measured here never shares the process's memory with another one; every other is freed
(model deleted, caches emptied) before the next configuration loads."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from arena.core.errors import one_line
from arena.core.limits import warm_budget_mb
from arena.execute import hooks
from arena.execute.launcher import Launcher, Limit, OnEvent, Outcome, Source
from arena.execute.pool import PoolSettings, warm_key
from arena.execute.stopping import deadline_check
from arena.execute.supervisor import supervise
from arena.execute.worker import Job, Loaded, load_phase, measure_phase, report_error

_lock = threading.Lock()
_cached: tuple[tuple, Loaded] | None = None


def _fits(loaded: Loaded, settings: PoolSettings) -> bool:
    from arena.core.units import MiB
    from arena.measure import probes

    if loaded.device.startswith("cuda"):  # this process's own numbering of the GPUs
        import torch

        index = torch.device(loaded.device).index or 0
        total = torch.cuda.get_device_properties(index).total_memory / MiB
    else:
        total = probes.total_mb("cpu")
    return loaded.weights_mb <= warm_budget_mb(settings.budget_mb, total)


def free() -> int:
    """Drop the cached model; returns how many were freed (0 or 1)."""
    global _cached
    with _lock:
        held, _cached = _cached, None
    if held is not None:
        held[1].close()
        return 1
    return 0


def cached() -> list[dict[str, Any]]:
    with _lock:
        held = _cached
    if held is None:
        return []
    job = held[1].job
    return [{"model": job.model_ref, "config": job.config, "dtype": job.dtype, "device": job.device,
             "weights_mb": round(held[1].weights_mb, 1), "inline": True}]


class _ThreadSource(Source):
    """A job run in a thread of this process, its events through a queue. Asked to stop, it
    ends between tokens; it cannot be killed, so the loop waits for it (stop_grace_s None): the
    next configuration never loads beside it."""

    stop_grace_s = None

    def __init__(self, body: Callable[[Callable[[dict[str, Any]], None], Callable[[], bool]], None]) -> None:
        self.events: queue.Queue = queue.Queue()
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(body,), name="arena-inline", daemon=True)
        self.thread.start()

    def _run(self, body) -> None:
        try:
            body(self.events.put, self.stop_flag.is_set)
        except BaseException as exc:  # body reports its own errors; this is a last resort
            self.events.put({"type": "error", "reason": one_line(exc), "code": "crash"})
        finally:
            self.events.put({"type": "done"})

    def death(self) -> str | None:
        return None if self.thread.is_alive() or not self.events.empty() else "the inline job ended without a word"

    def request_stop(self) -> None:
        self.stop_flag.set()


class InlineLauncher(Launcher):
    """Runs a job in this process (a thread of it, so the launchers' one loop supervises it),
    keeping the last model loaded when it fits the warm budget."""

    def __init__(self, settings: PoolSettings, *, compiled: bool) -> None:
        self.settings, self.compiled = settings, compiled

    def launch(self, job: Job, on_event: OnEvent, limit: Limit) -> Outcome:
        global _cached
        hooks.install_from_env()  # the tests' fault hooks, when the test entry point names them
        key = warm_key(job, self.compiled)
        with _lock:
            held, _cached = _cached, None
        warm = held is not None and held[0] == key and self.settings.keep_warm
        if held is not None and not warm:
            held[1].close()  # freed before the next configuration loads
        loaded = held[1] if warm else None
        kept = False

        def body(emit, stopping) -> None:
            nonlocal loaded, kept
            stop = deadline_check(limit.deadline, limit.reason, stopping)
            failed = False
            try:
                if loaded is None:
                    loaded = load_phase(job, emit)
                measure_phase(loaded, job, emit, warm=warm, stop=stop)
            except Exception as exc:
                failed = True
                report_error(exc, job, emit)
            kept = loaded is not None and not failed and self.settings.keep_warm and _fits(loaded, self.settings)
            if loaded is not None and not kept:
                loaded.close()

        out = supervise(_ThreadSource(body), on_event, limit)
        if kept:
            with _lock:
                _cached = (key, loaded)
        if out.metrics is not None:
            out.metrics.setdefault("stage_s", {})["start"] = 0.0
        out.warm = warm
        return out


class ThreadLauncher(Launcher):
    """Any job body in a thread of this process under the one loop: `body(job, emit, stopping)`
    emits the job's events and checks `stopping()` where it can end early (a sweep's group
    between its points). Nothing is kept: the body frees what it loaded."""

    def __init__(self, body: Callable[[Any, Callable[[dict[str, Any]], None], Callable[[], bool]], None]) -> None:
        self.body = body

    def launch(self, job: Any, on_event: OnEvent, limit: Limit) -> Outcome:
        return supervise(_ThreadSource(lambda emit, stopping: self.body(job, emit, stopping)), on_event, limit)
