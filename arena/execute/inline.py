"""Inline runs (ZeroGPU, where the GPU belongs to the decorated call's own process, and
`--inline`): the configuration runs in this process, with the same stop checks between tokens
and the same warm rule as the pool's: the last loaded model stays cached, with its key, when
it fits the warm budget, and serves the next identical job. Only one is kept, so a model
measured here never shares the process's memory with another one; every other is freed
(model deleted, caches emptied) before the next configuration loads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from arena.core.errors import one_line
from arena.core.limits import warm_budget_mb
from arena.execute.pool import PoolSettings, warm_key
from arena.execute.stopping import deadline_check
from arena.execute.worker import Job, Loaded, load_phase, measure_phase, report_error

OnEvent = Callable[[dict[str, Any]], None]

_lock = threading.Lock()
_cached: tuple[tuple, Loaded] | None = None


def _fits(loaded: Loaded, settings: PoolSettings) -> bool:
    import psutil

    from arena.core.units import MiB

    if loaded.device.startswith("cuda"):
        import torch

        index = torch.device(loaded.device).index or 0
        total = torch.cuda.get_device_properties(index).total_memory / MiB
    else:
        total = psutil.virtual_memory().total / MiB
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


def run_inline(job: Job, on_event: OnEvent, *, compiled: bool, timeout_s: float, timeout_reason: str,
               cancel: threading.Event | None, settings: PoolSettings) -> tuple[dict | None, str | None, bool]:
    """(metrics, error, warm). The time limit and cancel end generation between tokens."""
    global _cached
    metrics, error = None, None

    def emit(event: dict[str, Any]) -> None:
        nonlocal metrics, error
        if event["type"] == "metrics":
            metrics = event["metrics"]
        elif event["type"] == "nll":  # its own step, after the timings
            if metrics is not None:
                metrics.update(event["fields"])
        elif event["type"] in ("error", "stopped"):
            error = event["reason"]
        else:
            on_event({**event, "config": job.config})

    key = warm_key(job, compiled)
    stop = deadline_check(time.monotonic() + timeout_s, timeout_reason, cancel.is_set if cancel else None)
    with _lock:
        held, _cached = _cached, None
    warm = held is not None and held[0] == key and settings.keep_warm
    if held is not None and not warm:
        held[1].close()  # freed before the next configuration loads
    loaded = held[1] if warm else None
    try:
        if loaded is None:
            loaded = load_phase(job, emit)
        measure_phase(loaded, job, emit, warm=warm, stop=stop)
    except Exception as exc:
        try:
            report_error(exc, job, emit)
        except Exception:  # report_error words errors; this is a last resort
            error = one_line(exc)
    if metrics is not None:
        metrics.setdefault("stage_s", {})["start"] = 0.0
    keep = loaded is not None and error is None and settings.keep_warm and _fits(loaded, settings)
    if keep:
        with _lock:
            _cached = (key, loaded)
    elif loaded is not None:
        loaded.close()
    return metrics, error, warm
