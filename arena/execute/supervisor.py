"""Runs one spawned worker process and supervises it: events, cancel, time limit, death.

The arena's runner and the sweep both measure in workers spawned one at a time; this is the
one place that decides how such a worker ends and why."""

from __future__ import annotations

import os
import queue as _queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

from arena.core.errors import process_death


@dataclass
class Ending:
    """How a worker ended: "done" (reason: its own error event, if any), "cancelled",
    "timeout" or "died" (reason says how)."""

    kind: Literal["done", "cancelled", "timeout", "died"]
    reason: str | None = None


def run_worker(target: Callable, job: Any, name: str, handle: Callable[[dict[str, Any]], None], *,
               timeout_s: float, timeout_reason: str, cancel: threading.Event | None = None,
               on_start: Callable[[int], None] | None = None,
               death_reason: Callable[[], str | None] | None = None) -> Ending:
    """Spawn `target(job, queue)` and pass every event but "error" and "done" to `handle`;
    `on_start(pid)` once it runs; `death_reason()` may explain a death first (e.g. a memory
    limit). The worker is always gone when this returns; cancel and the deadline are checked at
    every event, not only when the worker is quiet."""
    from arena.execute import launcher
    from arena.execute.worker_entry import run_target

    events = launcher.CONTEXT.Queue()
    proc = launcher.spawn(run_target, (os.getpid(), target, job, events), name)
    if on_start is not None:
        on_start(proc.pid)
    deadline = time.monotonic() + timeout_s
    error: str | None = None
    died_at: float | None = None
    done = False
    try:
        while not done:
            if cancel is not None and cancel.is_set():
                return Ending("cancelled", "cancelled by the user")
            if time.monotonic() > deadline:
                return Ending("timeout", timeout_reason)
            try:
                event = events.get(timeout=0.2)
            except _queue.Empty:
                if proc.is_alive():
                    continue
                died_at = died_at or time.monotonic()  # read what it sent before dying
                if time.monotonic() - died_at < 0.5:
                    continue
                explained = death_reason() if death_reason is not None else None
                return Ending("died", explained or error or f"worker process died: {process_death(proc.exitcode)}")
            if event["type"] == "error":
                error = event["reason"]
            elif event["type"] == "done":
                done = True
            else:
                handle(event)
        return Ending("done", error)
    finally:
        if proc.is_alive():
            proc.join(timeout=5 if done else 0)
        if proc.is_alive():
            launcher.kill(proc)
            device = getattr(job, "device", "")
            if isinstance(device, str):
                launcher.wait_gpu_released(proc.pid, device)
