"""Fault injection for the fault-tolerance tests, kept out of the measuring code: the test entry
point (tests/conftest.py) sets ARENA_HOOKS to this module, and a worker it starts registers `HOOKS`
at the points of arena/execute/hooks.py (`hooks.install_from_env`); each hook does nothing unless
ARENA_FAULT_INJECT names its configuration. No production module imports this one.

ARENA_FAULT_INJECT holds comma-separated items (read at each call):
    name=raise|kill|hang|alloc   the arena worker of configuration `name`, after it starts loading
    name=nll-oom|nll-kill        the arena worker of `name`, when it starts scoring NLL (after its timings)
    name=oom@B|kill@B            the sweep worker of implementation `name`, at the points of batch B
    name=slow@MS                 the arena worker of configuration `name` waits MS ms before each timed token
"""

from __future__ import annotations

import os
import time

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
    """The arena worker of `config` runs out of memory, or dies, as its NLL step begins."""
    for name, kind in _items():
        if name == config and kind == "nll-oom":
            import torch

            raise torch.OutOfMemoryError("injected: CUDA out of memory while scoring")
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


def token_delay_s(config: str) -> float:
    """Seconds the arena worker of `config` waits before each token (slow@MS): a generation
    long enough to cancel in the middle of, on any machine."""
    for name, kind in _items():
        what, _, at = kind.partition("@")
        if name == config and what == "slow" and at.isdigit():
            return int(at) / 1000
    return 0.0


# point of arena/execute/hooks.py -> the hook; the worker registers them (worker_entry), so this
# module, at the bottom of the layers, imports nothing of the arena's
HOOKS = {"load": at_load, "nll": at_nll, "sweep_point": at_sweep_point, "token_delay": token_delay_s}
