"""Library noise, silenced at its source: the known warnings and log lines of torch, transformers,
optimum, bitsandbytes and the ONNX exporter that tell a user of the arena nothing to act on.

Only what is listed below is dropped, each matched by its logger and the start of its text (log
records) or by its text (Python warnings), with the reason it is noise. Anything else a library
says still shows, so a real problem is never hidden: a new message that leaks is caught by
tests/test_quiet.py, and is either listed here (with why it is noise) or dealt with.

`silence()` runs once at the top of every spawned worker (arena/execute/worker_entry.py) and at
the start of the CLI and the web app. `ARENA_VERBOSE=1` (the CLI's `--verbose`) leaves every
library line as the library prints it; workers inherit the variable.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

VERBOSE_ENV = "ARENA_VERBOSE"

# logger name -> starts of the messages it logs that are noise here
KNOWN_LOG_LINES: dict[str, tuple[str, ...]] = {
    # torchao registers its enums with pytree the old way when it is imported (every worker):
    # a deprecation notice for torchao's authors
    "torch.utils._pytree": (r"<enum '\w+'> is an Enum subclass and is now natively supported",),
    # inductor compiling on a machine without CUDA (the compiled configurations on CPU) finds no
    # CUDA runtime, which is what a CPU-only machine is
    "torch.utils.cpp_extension": (r"No CUDA runtime is found",),
    # the GGUF tokenizer of the embedded model, loaded once to convert it; the converted copy is
    # a GPT2Tokenizer, which has no `legacy` option
    "transformers.models.llama.tokenization_llama_fast": (r"You are using the default legacy behaviour",),
    "transformers.models.llama.tokenization_llama": (r"You are using the default legacy behaviour",),
    # optimum's ONNX exporter passes `torch_dtype` to transformers, which renamed it `dtype`
    "transformers.configuration_utils": (r"`torch_dtype` is deprecated",),
    "transformers.modeling_utils": (r"`torch_dtype` is deprecated",),
    # the exporter's tied-weights bookkeeping (lm_head tied to the embeddings): it keeps one
    # initializer and says so, with one line per weight after the first
    "optimum": (r"Found different candidate ONNX initializers", r"\t\S+: \{.*\}"),
    # LLM.int8 computes in fp16 whatever the activations' dtype: said at every matmul call
    "bitsandbytes.autograd._functions": (r"MatMul8bitLt: inputs will be cast from",),
    # bitsandbytes' optional `kernels` package (a faster CPU 4-bit matmul) is not installed: the
    # CPU rows use bitsandbytes' own implementation, and GPU rows never need it
    "bitsandbytes.backends.cpu.ops": (r"Failed to load CPU gemm_4bit_forward from kernels-community",),
}

# Python warnings (any category) whose message starts so. During the ONNX export: exporting a
# transformers model traces Python control flow on tensors, which torch flags as TracerWarnings,
# and torch explains how it exports advanced indexing; the arena checks every ONNX row's tokens
# against the baseline instead (its agreement column), which is where a wrong trace would show.
KNOWN_WARNINGS: tuple[str, ...] = (
    r"Converting a tensor to a Python (boolean|integer|float|index|number)",
    r"Iterating over a tensor might cause the trace to be incorrect",
    r"torch\.tensor results are registered as constants in the trace",
    r"Exporting aten::index operator of advanced indexing",
    # Gradio 6.17 answers a malformed request (a broken or hostile client) with Starlette's old
    # name for status 422, once per such request in the server's log: a notice for Gradio's authors
    r"'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated",
)

_done = False


def verbose() -> bool:
    """ARENA_VERBOSE is set to something true: every library line is shown."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


class KnownNoise(logging.Filter):
    """Drops the records whose message starts with one of `patterns`."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the library's problem: let it through
            return True
        return self.pattern.match(message) is None


def silence() -> None:
    """Drop the known noise of this process (once; nothing when ARENA_VERBOSE is set). Imports
    no library: it can run before torch is imported."""
    global _done
    if _done or verbose():
        return
    _done = True
    for name, patterns in KNOWN_LOG_LINES.items():
        logging.getLogger(name).addFilter(KnownNoise(patterns))
    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


@contextmanager
def bars_off(module: ModuleType) -> Iterator[None]:
    """Inside the block, the tqdm bars of `module` (a library module that does
    `from tqdm... import tqdm`) are disabled, unless ARENA_VERBOSE is set: for a library's own
    progress inside a step that shows ours."""
    original = getattr(module, "tqdm", None)
    if original is None or verbose():
        yield
        return

    def quiet_tqdm(*args, **kwargs):
        kwargs["disable"] = True
        return original(*args, **kwargs)

    module.tqdm = quiet_tqdm
    try:
        yield
    finally:
        module.tqdm = original
