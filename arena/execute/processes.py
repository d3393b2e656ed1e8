"""Starting and ending worker processes (what every launcher that spawns uses).

- `spawn` starts a process with multiprocessing's spawn method, from one long-lived thread
  (PR_SET_PDEATHSIG fires when the *thread* that started a child ends, and runs start workers
  from short-lived threads), and without re-running the parent's main module in the child:
  spawn would otherwise import app.py, and with it gradio, pandas and plotly, in every worker.
- `kill` ends a worker's whole process group (workers lead their own) and reaps it.
- `wait_gpu_released` waits until a killed worker's pid is gone from the GPU's process list, so
  the next configuration does not start beside memory that is still being freed.
- `ProcessSource` reads one spawned process's events for the launchers' loop, and
  `ProcessLauncher` runs one job in one spawned process (a sweep's group), never kept warm.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from arena.core.errors import process_death
from arena.execute.launcher import Launcher, Limit, OnEvent, Outcome, Source
from arena.execute.supervisor import supervise

CONTEXT = mp.get_context("spawn")
_requests: queue.Queue = queue.Queue()
_thread: threading.Thread | None = None
_thread_lock = threading.Lock()


@contextmanager
def _main_not_rerun() -> Iterator[None]:
    """While a child is spawned, hide where the main module came from: the child then imports
    only what unpickling its target needs (arena.execute.worker_entry)."""
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _start(target: Callable, args: tuple, name: str) -> Any:
    proc = CONTEXT.Process(target=target, args=args, daemon=True, name=name)
    with _main_not_rerun():
        proc.start()
    return proc


def _serve() -> None:
    while True:
        target, args, name, future = _requests.get()
        try:
            future.set_result(_start(target, args, name))
        except BaseException as exc:  # handed to the caller
            future.set_exception(exc)


def spawn(target: Callable, args: tuple, name: str) -> Any:
    """Start `target(*args)` in a spawned process (from the launcher's own thread); returns the
    multiprocessing Process."""
    global _thread
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_serve, name="arena-launcher", daemon=True)
            _thread.start()
    future: Future = Future()
    _requests.put((target, args, name, future))
    return future.result()


def kill(proc: Any, timeout_s: float = 5.0) -> None:
    """SIGKILL the worker's process group (the worker alone if it had not made its group yet)
    and reap it."""
    if proc.pid is None:
        return
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    proc.join(timeout=timeout_s)


def wait_gpu_released(pid: int, device: str, timeout_s: float = 10.0) -> bool:
    """Wait until `pid` no longer holds memory on `device` (NVML's process list); True at once
    off CUDA or where NVML cannot tell."""
    if not device.startswith("cuda"):
        return True
    from arena.measure.nvml import Nvml

    index = int(device.split(":")[1]) if ":" in device else 0
    nvml = Nvml(index)
    if not nvml.ok:
        return True
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if nvml.process_used_bytes(pid) is None:
            return True
        time.sleep(0.05)
    return False


class ProcessSource(Source):
    """One spawned process's events, from its multiprocessing queue. `stop_flag` (an Event the
    worker checks between tokens) makes it stoppable: then it has `stop_grace_s` to answer."""

    def __init__(self, proc: Any, events: Any, stop_flag: Any = None, stop_grace_s: float = 0.0) -> None:
        self.proc, self.events, self.stop_flag = proc, events, stop_flag
        self.stop_grace_s = stop_grace_s if stop_flag is not None else 0.0

    def death(self) -> str | None:
        if self.proc.is_alive():
            return None
        return f"worker process died: {process_death(self.proc.exitcode)}"

    def request_stop(self) -> None:
        if self.stop_flag is not None:
            self.stop_flag.set()


class ProcessLauncher(Launcher):
    """`target(job, queue)` in a fresh spawned process (parent-death signal, its own process
    group), supervised by the one loop; the process is always gone when `launch` returns.
    `death_reason()` may explain a death first (a memory limit the caller watched)."""

    def __init__(self, target: Callable[[Any, Any], None], name: str,
                 death_reason: Callable[[], str | None] | None = None) -> None:
        self.target, self.name, self.death_reason = target, name, death_reason

    def launch(self, job: Any, on_event: OnEvent, limit: Limit) -> Outcome:
        from arena.execute.worker_entry import run_target

        events = CONTEXT.Queue()
        proc = spawn(run_target, (os.getpid(), self.target, job, events), self.name)
        out = None
        try:
            out = supervise(ProcessSource(proc, events), on_event, limit, explain=self.death_reason)
            return out
        finally:
            if proc.is_alive():
                proc.join(timeout=5 if out is not None and out.ending.kind == "done" else 0)
            if proc.is_alive():
                kill(proc)
                device = getattr(job, "device", "")
                if isinstance(device, str):
                    wait_gpu_released(proc.pid, device)
