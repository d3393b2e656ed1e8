"""Named points in the measuring code where a fault can be injected, and nothing else.

The measuring code calls `fire(point, ...)` at each point; nothing is registered in a
production run, so every call does nothing. A worker registers the fault-injection hooks of
arena/testing/faults.py only when ARENA_FAULT_INJECT is set (worker_entry.install_fault_hooks),
so no production module imports the tests' code. Points and their arguments:
    "load" (config)               a configuration's worker, after it starts loading
    "nll" (config)                a configuration's worker, as its NLL step begins
    "sweep_point" (config, batch) a sweep worker, at a point of batch `batch`
    "token_delay" (config)        seconds to wait before each token, or a function giving them (returned)
    "bandwidth" (config, bw)      the device's measured Bandwidth: a replacement (returned), or None
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

POINTS = ("load", "nll", "sweep_point", "token_delay", "bandwidth")
_hooks: dict[str, Callable[..., Any]] = {}


def register(point: str, hook: Callable[..., Any]) -> None:
    if point not in POINTS:
        raise ValueError(f"unknown hook point {point!r}; known: {', '.join(POINTS)}")
    _hooks[point] = hook


def fire(point: str, *args: Any) -> Any:
    """Run the hook of `point`, if one is registered; its return value, else None."""
    hook = _hooks.get(point)
    return hook(*args) if hook is not None else None
