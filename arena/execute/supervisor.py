"""The one loop that supervises a launched job, whatever its launcher (arena/execute/launcher.py):
read its events, check cancel and the deadline at every one (not only when the worker is
quiet), ask the source to stop between tokens and drain its answer, tell a death (after
reading what the worker sent before dying) from an end, and collect "metrics", "nll",
"error" and "stopped" with their codes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from arena.core.ending import Code
from arena.execute.launcher import Ending, Limit, OnEvent, Outcome, Source

POLL_S = 0.05  # how long one read waits before cancel, the deadline and death are checked again
DEATH_DRAIN_S = 0.5  # after a death, how long what it sent last is still read


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
    error_code = Code.ERROR
    stopped: str | None = None
    stopped_code = Code.CANCELLED
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
            explained = explain() if explain is not None else None  # a memory limit the launcher watched
            code = Code.OOM if explained else error_code if error else Code.CRASH
            out.ending = Ending("died", explained or error or why, code)
            return out
        out.answered = True
        kind = event["type"]
        if kind == until:
            out.last = event
            break
        if kind == "error":
            error, error_code = event["reason"], Code(event.get("code", Code.ERROR))
            if end_on_error:
                out.ending, out.metrics = Ending("done", error, error_code), None
                return out
        elif kind == "stopped":
            stopped, stopped_code = event["reason"], Code(event.get("code", Code.CANCELLED))
        elif kind == "metrics":
            out.metrics = event["metrics"]
        elif kind == "nll":  # its own step, after the timings (which it never loses)
            if out.metrics is not None:
                add_nll(out.metrics, event)
        else:
            on_event(event)
    if stopped is not None:  # the worker's own stop check (its deadline) ended it between tokens
        out.ending = Ending("cancelled" if stopped_code is Code.CANCELLED else "timeout", stopped, stopped_code)
    else:
        out.ending = Ending("done", error, error_code if error is not None else None)
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
