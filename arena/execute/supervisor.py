"""A one-job spawned worker (the sweep's): spawn `target(job, queue)`, supervise it with the
launchers' loop (arena/execute/launcher.py), and leave no process behind."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from arena.execute.launcher import Ending, Limit, supervise


def run_worker(target: Callable, job: Any, name: str, handle: Callable[[dict[str, Any]], None], *,
               timeout_s: float, timeout_reason: str, cancel: threading.Event | None = None,
               on_start: Callable[[int], None] | None = None,
               death_reason: Callable[[], str | None] | None = None) -> Ending:
    """Spawn `target(job, queue)` and pass every event but "error" and "done" to `handle`;
    `on_start(pid)` once it runs; `death_reason()` may explain a death first (e.g. a memory
    limit). The worker is always gone when this returns."""
    from arena.execute import processes
    from arena.execute.worker_entry import run_target

    limit = Limit(timeout_s, timeout_reason, cancel)
    events = processes.CONTEXT.Queue()
    proc = processes.spawn(run_target, (os.getpid(), target, job, events), name)
    if on_start is not None:
        on_start(proc.pid)
    out = None
    try:
        out = supervise(processes.ProcessSource(proc, events), handle, limit, explain=death_reason)
        return out.ending
    finally:
        if proc.is_alive():
            proc.join(timeout=5 if out is not None and out.ending.kind == "done" else 0)
        if proc.is_alive():
            processes.kill(proc)
            device = getattr(job, "device", "")
            if isinstance(device, str):
                processes.wait_gpu_released(proc.pid, device)
