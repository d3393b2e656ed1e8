"""ZeroGPU: on a ZeroGPU Space (SPACES_ZERO_GPU set) a measuring call holds a GPU for its
duration through the `spaces` package, and runs in that call's own process (isolation
"inline"); elsewhere the functions are unchanged."""

from __future__ import annotations

import os
from collections.abc import Callable


def active() -> bool:
    return bool(os.environ.get("SPACES_ZERO_GPU"))


def gpu(fn: Callable) -> Callable:
    """Hold a GPU for the call on a ZeroGPU Space (ARENA_ZERO_GPU_S seconds at most)."""
    if not active():
        return fn
    import spaces

    return spaces.GPU(duration=int(os.environ.get("ARENA_ZERO_GPU_S", "300")))(fn)
