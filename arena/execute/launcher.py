"""One interface for every way a configuration runs.

A `Launcher` runs one job, streams its events to `on_event` and honours a `Limit` (the time
limit and the user's cancel); it returns an `Outcome` whose `Ending` carries a code
(arena/core/ending.py). Shaped after optimum-benchmark's launchers (inline, process, torchrun):
- `inline.InlineLauncher`: this process (ZeroGPU, `--inline`), the job in a thread;
  `inline.ThreadLauncher` the same for any job body (a sweep's group);
- `pool.WorkerLauncher`: a spawned worker of the warm pool;
- `processes.ProcessLauncher`: a one-job spawned worker (a sweep's group);
- `tensor_parallel.RanksLauncher`: one spawned process per rank.
Each turns its worker(s) into a `Source` of events, and all run the one loop that supervises
them, arena/execute/supervisor.py's `supervise`.
"""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from arena.core.ending import CANCELLED, Code, Why, code_of

OnEvent = Callable[[dict[str, Any]], None]


_KIND_CODE = {"cancelled": Code.CANCELLED, "timeout": Code.TIMEOUT, "died": Code.CRASH, "done": Code.ERROR}


@dataclass
class Ending:
    """How a job ended: "done" (reason: its own error, if any), "cancelled", "timeout" or "died"
    (reason says how), and `code` (arena/core/ending.py) that decisions read: given, else the
    reason's own, else the kind's (OK for "done" without an error)."""

    kind: Literal["done", "cancelled", "timeout", "died"]
    reason: str | None = None
    code: Code | None = None

    def __post_init__(self) -> None:
        if self.code is None:
            plain = Code.OK if self.kind == "done" and self.reason is None else _KIND_CODE[self.kind]
            self.code = code_of(self.reason, plain)
        self.code = Code(self.code)


class Limit:
    """What ends a job early: its deadline (`timeout_s` from now, ended with `reason` and `code`:
    TIMEOUT for the job's own limit, RUN_TIME_LIMIT for its run's) and the user's cancel."""

    def __init__(self, timeout_s: float, reason: str, cancel: threading.Event | None = None,
                 code: Code = Code.TIMEOUT) -> None:
        self.timeout_s, self.cancel = timeout_s, cancel
        self.reason = Why(reason, code_of(reason, code))  # travels to the worker with its code
        self.deadline = time.monotonic() + timeout_s

    def left_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def check(self) -> Ending | None:
        if self.cancel is not None and self.cancel.is_set():
            return Ending("cancelled", CANCELLED)
        if time.monotonic() > self.deadline:
            return Ending("timeout", self.reason)
        return None


@dataclass
class Outcome:
    """A launched job's end, its measurement ("metrics" with "nll" merged in) and what the
    launcher adds: warm (a loaded model reused), stage_s (start / imports)."""

    ending: Ending
    metrics: dict[str, Any] | None = None
    warm: bool = False
    stage_s: dict[str, float] = field(default_factory=dict)
    answered: bool = False  # any event came from the worker
    clean_stop: bool = False  # asked to stop, it ended between tokens and said it is reusable
    last: dict[str, Any] | None = None  # the event that ended the loop ("done", "ready")

    @property
    def code(self) -> Code:
        """How it ended for the result: OK with a measurement, else the ending's code."""
        if self.failure() is None:
            return Code.OK
        if self.metrics is None and self.ending.kind == "done" and self.ending.reason is None:
            return Code.NO_RESULT
        return self.ending.code or Code.ERROR

    def failure(self) -> str | None:
        """Why the job has no result; None when it has one (a worker that died on its way out
        after sending its metrics keeps them, and so does one cancelled after them)."""
        if self.ending.kind == "cancelled" and self.metrics is not None:
            return None  # cancelled while scoring NLL: the timings were measured and are kept
        if self.ending.kind in ("cancelled", "timeout"):
            return self.ending.reason
        if self.metrics is None:
            return self.ending.reason or "no result"
        return None


class Source(ABC):
    """The events of a launched job, as the loop reads them."""

    stop_grace_s: float | None = 0.0  # after a stop request, how long it may take to end; None: until it does
    events: Any = None  # the queue the job puts its events on (queue.Queue or multiprocessing's)

    def get(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None when none came within `timeout` seconds."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:  # multiprocessing's queues raise the same
            return None

    @abstractmethod
    def death(self) -> str | None:
        """None while the job's process(es) live; else how one died, in one line."""

    def request_stop(self) -> None:
        """Ask the job to end between tokens (sources that can only be killed do nothing)."""


class Launcher(ABC):
    """Runs one job (arena/execute/worker.py's Job) to its end."""

    @abstractmethod
    def launch(self, job: Any, on_event: OnEvent, limit: Limit) -> Outcome:
        """Run `job`, pass its events to `on_event` as they come, end it at `limit`. Nothing the
        job started is left running on return, save what the launcher keeps warm."""
