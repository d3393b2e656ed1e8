"""Where the arena keeps its data: model caches, ONNX exports and the results store."""

from __future__ import annotations

import os
from pathlib import Path


def arena_home() -> Path:
    """ARENA_HOME, default ~/.cache/inference-arena; created on first use."""
    home = Path(os.environ.get("ARENA_HOME") or Path.home() / ".cache" / "inference-arena")
    home.mkdir(parents=True, exist_ok=True)
    return home


def cache_dir(*parts: str) -> Path:
    path = arena_home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
