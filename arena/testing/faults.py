"""Fault injection for the fault-tolerance tests, kept out of the measuring code: the test entry
point (tests/conftest.py) sets ARENA_HOOKS to this module, and a worker it starts registers `HOOKS`
at the points of arena/execute/hooks.py (`hooks.install_from_env`); each hook does nothing unless
ARENA_FAULT_INJECT names its configuration. No production module imports this one.

ARENA_FAULT_INJECT holds comma-separated items (read at each call):
    name=raise|kill|hang|alloc   the arena worker of configuration `name`, after it starts loading
    name=nll-oom|nll-kill|nll-hang  the arena worker of `name`, when it starts scoring NLL (after its timings)
    name=oom@B|kill@B            the sweep worker of implementation `name`, at the points of batch B
    name=slow@MS                 the arena worker of configuration `name` waits MS ms before each timed token
    name=ramp@MS                 ... waits MS ms x the timed tokens so far before each: repeats that slow down
    name=bandwidth@GBS           the arena worker of `name` measures its device's bandwidth as GBS GB/s
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from typing import Any

VARIABLE = "ARENA_FAULT_INJECT"


def _items() -> list[tuple[str, str]]:
    out = []
    for item in os.environ.get(VARIABLE, "").split(","):
        name, _, kind = item.partition("=")
        if name.strip():
            out.append((name.strip(), kind.strip()))
    return out


def at_load(config: str) -> None:
    """The arena worker of `config` raises, dies by SIGKILL, hangs, or keeps allocating host
    memory (up to 4 GB, then raises)."""
    for name, kind in _items():
        if name != config:
            continue
        if kind == "raise":
            raise RuntimeError("injected fault")
        if kind == "kill":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "hang":
            time.sleep(3600)
        if kind == "alloc":
            held = []
            for _ in range(128):  # 32 MB at a time, every page written, so it is resident
                held.append(b"\x01" * (32 * 2**20))
                time.sleep(0.01)
            raise RuntimeError(f"allocated {len(held) * 32} MB without being stopped")


def at_nll(config: str) -> None:
    """The arena worker of `config` runs out of memory, dies, or hangs as its NLL step begins."""
    for name, kind in _items():
        if name == config and kind == "nll-oom":
            import torch

            raise torch.OutOfMemoryError("injected: CUDA out of memory while scoring")
        if name == config and kind == "nll-hang":
            time.sleep(3600)
        if name == config and kind == "nll-kill":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


def at_sweep_point(config: str, batch: int) -> None:
    """The sweep worker of `config` raises an out-of-memory error, or dies, at batch `batch`."""
    for name, kind in _items():
        what, _, at = kind.partition("@")
        if name != config or not at.isdigit() or int(at) != batch:
            continue
        if what == "oom":
            import torch

            raise torch.OutOfMemoryError("injected: CUDA out of memory")
        if what == "kill":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


def token_delay_s(config: str) -> Any:
    """Seconds the arena worker of `config` waits before each token (slow@MS): a generation
    long enough to cancel in the middle of, on any machine; or (ramp@MS) a function giving a
    wait that grows with each token, so that each timed repeat is slower than the one before."""
    for name, kind in _items():
        what, _, at = kind.partition("@")
        if name == config and what == "slow" and at.isdigit():
            return int(at) / 1000
        if name == config and what == "ramp" and at.isdigit():
            count = itertools.count(1)
            return lambda: next(count) * int(at) / 1000
    return 0.0


def bandwidth(config: str, measured: Any) -> Any:
    """A bandwidth of GBS GB/s for the arena worker of `config` (bandwidth@GBS), every time it is
    measured: a limit that a result beats even after re-measuring it."""
    for name, kind in _items():
        what, _, at = kind.partition("@")
        if name == config and what == "bandwidth" and measured is not None:
            return dataclasses.replace(measured, gb_s=float(at), method="injected")
    return None


# point of arena/execute/hooks.py -> the hook; the worker registers them (worker_entry), so this
# module, at the bottom of the layers, imports nothing of the arena's
HOOKS = {"load": at_load, "nll": at_nll, "sweep_point": at_sweep_point, "token_delay": token_delay_s,
         "bandwidth": bandwidth}
