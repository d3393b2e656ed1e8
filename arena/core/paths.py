"""Where the arena keeps its data (model caches, ONNX exports, the results store), and how a
cache entry is written so that a half-written one is never used."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

COMPLETE = ".arena-complete"  # written last in a cache directory


def arena_home() -> Path:
    """ARENA_HOME, default ~/.cache/inference-arena; created on first use."""
    home = Path(os.environ.get("ARENA_HOME") or Path.home() / ".cache" / "inference-arena")
    home.mkdir(parents=True, exist_ok=True)
    return home


def cache_dir(*parts: str) -> Path:
    path = arena_home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_complete(target: Path) -> bool:
    """A cache directory made by `building` that finished."""
    return (target / COMPLETE).is_file()


@contextlib.contextmanager
def building(target: Path, note: str) -> Iterator[Path]:
    """Yields an empty temporary sibling of `target` to fill; when the block ends without an
    error, marks it complete and renames it to `target` (replacing any older one). A crash
    mid-way leaves only the temporary folder, removed by the next try."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    (tmp / COMPLETE).write_text(note, encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file so that a reader never sees half of it (temporary file, then rename)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
