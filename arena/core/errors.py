"""Error wording: every failure a user sees is one line, said the same way everywhere."""

from __future__ import annotations

import reprlib
from typing import Any

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlist = _short.maxtuple = _short.maxdict = 4


def short_repr(value: Any) -> str:
    """repr() cut to a length fit for a one-line message (hostile input can be huge)."""
    return _short.repr(value)


def one_line_text(text: str, limit: int = 300) -> str:
    """Whitespace folded, cut at `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(exc: BaseException) -> str:
    """'TypeName: first line of the message', at most 300 characters."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__


def process_death(exitcode: int | None) -> str:
    """How a worker process ended, in words: 'killed by signal 9 (likely out of memory)',
    'exit code 1'."""
    how = f"killed by signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"
    return how + (" (likely out of memory)" if exitcode == -9 else "")


def oom_reason(exc: BaseException) -> str | None:
    """The one-line reason for an out-of-memory error (GPU or host), None for any other error."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return "out of memory: " + one_line(exc).split(": ", 1)[-1][:200]
    if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc):
        return "out of memory (host RAM)"
    return None


_KERNEL_NEEDS = {
    "flash": "fp16/bf16 inputs, head dimension up to 256, no explicit attention mask, an Ampere or newer GPU",
    "efficient": "a CUDA GPU, head dimension a multiple of 8, and (torch 2.11 and older) no grouped-query attention",
    "math": "nothing special (it runs everywhere)",
}


def kernel_reason(exc: BaseException, kernel: str | None) -> str | None:
    """One line for SDPA's "No available kernel. Aborting execution." under a kernel choice: which
    kernel refused and what it needs (torch's own warnings above the error say which check failed)."""
    text = str(exc)  # torch 2.11: "No available kernel. Aborting execution."; 2.14: "No viable backend ..."
    if kernel is None or ("No available kernel" not in text and "No viable backend" not in text):
        return None
    return (f"SDPA's {kernel} kernel cannot run these inputs, and this configuration allows no other "
            f"(it needs {_KERNEL_NEEDS.get(kernel, 'inputs it supports')}); run sdpa to let PyTorch choose")
