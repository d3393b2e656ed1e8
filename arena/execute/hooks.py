"""Named points in the measuring code where a fault can be injected, and nothing else.

The measuring code calls `fire(point, ...)` at each point; nothing is registered in a
production run, so every call does nothing. The test entry point (tests/conftest.py) names a
module in ARENA_HOOKS (arena/testing/faults.py); a spawned worker inherits the variable and
registers that module's `HOOKS` when it starts (`install_from_env`), so no production module
names the tests' code. Points and their arguments:
    "load" (config)               a configuration's worker, after it starts loading
    "nll" (config)                a configuration's worker, as its NLL step begins
    "sweep_point" (config, batch) a sweep worker, at a point of batch `batch`
    "token_delay" (config)        seconds to wait before each token, or a function giving them (returned)
    "bandwidth" (config, bw)      the device's measured Bandwidth: a replacement (returned), or None
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

HOOKS_ENV = "ARENA_HOOKS"  # a module whose HOOKS dict ({point: hook}) a worker registers at start
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


def install_from_env() -> None:
    """Register the `HOOKS` of the module named in ARENA_HOOKS, when it is set (tests only)."""
    name = os.environ.get(HOOKS_ENV)
    if name:
        for point, hook in importlib.import_module(name).HOOKS.items():
            register(point, hook)
