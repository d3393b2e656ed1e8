"""One interface for every way a configuration runs, and the one loop that supervises it.

A `Launcher` runs one job, streams its events to `on_event` and honours a `Limit` (the time
limit and the user's cancel); it returns an `Outcome`. Shaped after optimum-benchmark's
launchers (inline, process, torchrun), the arena has three:
- `inline.InlineLauncher`: this process (ZeroGPU, `--inline`), the job in a thread;
- `pool.WorkerLauncher`: a spawned worker of the warm pool;
- `tensor_parallel.RanksLauncher`: one spawned process per rank.
Each turns its worker(s) into a `Source` of events; `supervise` is the loop they all run: read
events, check cancel and the deadline at every one (not only when the worker is quiet), ask
the source to stop between tokens and drain its answer, tell a death (after reading what the
worker sent before dying) from an end, and collect "metrics", "nll", "error" and "stopped".
"""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

OnEvent = Callable[[dict[str, Any]], None]
POLL_S = 0.05  # how long one read waits before cancel, the deadline and death are checked again
DEATH_DRAIN_S = 0.5  # after a death, how long what it sent last is still read


@dataclass
class Ending:
    """How a job ended: "done" (reason: its own error, if any), "cancelled", "timeout" or "died"
    (reason says how)."""

    kind: Literal["done", "cancelled", "timeout", "died"]
    reason: str | None = None


class Limit:
    """What ends a job early: its deadline (`timeout_s` from now, ended with `reason`) and the
    user's cancel."""

    def __init__(self, timeout_s: float, reason: str, cancel: threading.Event | None = None) -> None:
        self.timeout_s, self.reason, self.cancel = timeout_s, reason, cancel
        self.deadline = time.monotonic() + timeout_s

    def left_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def check(self) -> Ending | None:
        if self.cancel is not None and self.cancel.is_set():
            return Ending("cancelled", "cancelled by the user")
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


def supervise(source: Source, on_event: OnEvent, limit: Limit, *, until: str = "done",
              explain: Callable[[], str | None] | None = None, end_on_error: bool = False,
              stop_grace_s: float | None | Literal["source"] = "source") -> Outcome:
    """Read `source` until an `until` event, passing every event but "error", "stopped",
    "metrics", "nll" and `until` to `on_event`. Cancel or the deadline: ask it to stop and read
    its answer (events still passed on a cancel) for its grace period. `explain()` may name a
    death first (a memory limit); `end_on_error`: the first error ends the job (tensor-parallel
    peers would wait forever in a collective)."""
    grace = source.stop_grace_s if stop_grace_s == "source" else stop_grace_s
    out = Outcome(Ending("done"))
    error: str | None = None
    stopped: str | None = None
    died_at: float | None = None
    while True:
        ending = limit.check()
        if ending is not None:
            out.ending = ending
            if grace is None or grace > 0:
                source.request_stop()
                out.clean_stop = _drain(source, on_event if ending.kind == "cancelled" else None, grace)
            if ending.kind != "cancelled":  # a cancel keeps timings already sent (NLL is then not scored)
                out.metrics = None
            return out
        event = source.get(POLL_S)
        if event is None:
            why = source.death()
            if why is None:
                continue
            died_at = died_at or time.monotonic()
            if time.monotonic() - died_at < DEATH_DRAIN_S:
                continue
            out.ending = Ending("died", (explain() if explain is not None else None) or error or why)
            return out
        out.answered = True
        kind = event["type"]
        if kind == until:
            out.last = event
            break
        if kind == "error":
            error = event["reason"]
            if end_on_error:
                out.ending, out.metrics = Ending("done", error), None
                return out
        elif kind == "stopped":
            stopped = event["reason"]
        elif kind == "metrics":
            out.metrics = event["metrics"]
        elif kind == "nll":  # its own step, after the timings (which it never loses)
            if out.metrics is not None:
                add_nll(out.metrics, event)
        else:
            on_event(event)
    if stopped is not None:  # the worker's own stop check (its deadline) ended it between tokens
        out.ending = Ending("cancelled" if stopped.startswith("cancelled") else "timeout", stopped)
    else:
        out.ending = Ending("done", error)
    return out


def add_nll(metrics: dict[str, Any], event: dict[str, Any]) -> None:
    """Merge an "nll" event into its metrics: the fields, and the scoring step's wall time as
    a stage of its own."""
    metrics.update(event["fields"])
    if event.get("scoring_s") is not None:
        metrics.setdefault("stage_s", {})["scoring"] = event["scoring_s"]


def _drain(source: Source, on_event: OnEvent | None, grace_s: float | None) -> bool:
    """After a stop request: read until "done"; True when the job stopped between tokens and
    is reusable (its model intact), False when it ended otherwise or did not answer in time."""
    end = None if grace_s is None else time.monotonic() + grace_s
    stopped = False
    while end is None or time.monotonic() < end:
        event = source.get(POLL_S)
        if event is None:
            if source.death() is not None:
                return False
            continue
        if event["type"] == "stopped":
            stopped = True
        elif event["type"] == "done":
            return stopped and bool(event.get("reusable", True))
        elif event["type"] not in ("error", "metrics", "nll") and on_event is not None:
            on_event(event)
    return False


class Launcher(ABC):
    """Runs one job (arena/execute/worker.py's Job) to its end."""

    @abstractmethod
    def launch(self, job: Any, on_event: OnEvent, limit: Limit) -> Outcome:
        """Run `job`, pass its events to `on_event` as they come, end it at `limit`. Nothing the
        job started is left running on return, save what the launcher keeps warm."""
