"""The entry of every spawned worker process, whichever front end starts it.

This module imports only the standard library at the top, and is the spawned process's
target, so a worker holds what a worker needs (torch, transformers, the measuring code) and
nothing of the web app: arena/execute/launcher.py spawns it without re-running the parent's
main module, which for the web app (app.py) would import gradio, pandas and plotly.

A worker:
- dies with its parent: PR_SET_PDEATHSIG (Linux) and a watchdog thread on the parent's pid;
- leads its own process group, so that the parent can kill it and anything it started at once;
- imports torch and transformers before it is given a job (a spare worker waits, ready);
- serves jobs one after another from its queue, keeping the last loaded model: a job with the
  same key as the previous one skips the load (and the warm-up of shapes already warmed).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from arena.core import quiet
from arena.execute import hooks

quiet.silence()  # library noise off before torch is imported (ARENA_VERBOSE=1 keeps it)

FOREIGN_MODULES = ("gradio", "pandas", "plotly")  # the web app's; never needed in a worker
WATCH_PARENT_S = 0.5
PR_SET_PDEATHSIG = 1
# What most jobs load: the generic model and tokenizer classes, generation, the Llama family (the
# embedded default's), and the measuring code.
PRELOAD = ("transformers.modeling_utils", "transformers.generation.utils", "transformers.models.auto.modeling_auto",
           "transformers.models.auto.tokenization_auto", "transformers.tokenization_utils_fast",
           "transformers.models.llama.modeling_llama", "arena.backends", "arena.backends.torch",
           "arena.measure.memory", "arena.measure.clocks", "arena.measure.energy", "arena.models.tokenizers")


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when `parent_pid` does, and lead its own process group."""
    import signal

    try:
        os.setsid()
    except OSError:
        pass  # already a group leader
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:  # other systems, and a belt for Linux
        while True:
            time.sleep(WATCH_PARENT_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def foreign_modules() -> list[str]:
    """The web app's libraries imported in this process (none, in a worker)."""
    return sorted(name for name in FOREIGN_MODULES if name in sys.modules)


def gpu_reserved_mb() -> float:
    """What torch's allocator holds on every GPU of this process (NVML may not list the pids
    of a container's processes; this is the floor of what a warm worker holds)."""
    import torch

    from arena.core.units import MiB

    if not torch.cuda.is_initialized():
        return 0.0
    return sum(torch.cuda.memory_reserved(i) for i in range(torch.cuda.device_count())) / MiB


def warm_cuda() -> None:
    """Pay a fresh CUDA process's first-use costs before a job comes: the context on GPU 0, the
    cuBLAS handle and the first kernels' loading (a cold sdpa run on the embedded default spent
    3.7 s warming up for 0.4 s of generation on an H200, its first generation in a new process).
    Not on ZeroGPU, where only the decorated call may touch the GPU."""
    import torch

    if os.environ.get("SPACES_ZERO_GPU") or not torch.cuda.is_available():
        return
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    x = torch.randn(1, 4, 16, 64, device="cuda:0", dtype=dtype)
    y = torch.nn.functional.scaled_dot_product_attention(x, x, x, is_causal=True)
    w = torch.randn(256, 256, device="cuda:0", dtype=dtype)
    (torch.nn.functional.linear(y, w).float().softmax(-1).sum() + torch.topk(w, 4).values.sum()).item()
    del x, y, w
    torch.cuda.empty_cache()  # the job's memory readings start from nothing held


def prepare(cuda: bool = False) -> float:
    """Import what every job needs (and with `cuda`, initialise the GPU: warm_cuda); returns the
    seconds it took."""
    t0 = time.perf_counter()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import importlib

    import torch  # noqa: F401
    import transformers  # noqa: F401

    import arena.execute.worker  # noqa: F401
    # transformers imports lazily: without these a job's load stage would pay for them
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if cuda:
        try:
            warm_cuda()
        except Exception:  # a GPU that cannot be used here: the job says why, in its own words
            pass
    return time.perf_counter() - t0


def serve(parent_pid: int, jobs: Any, events: Any, stop_flag: Any) -> None:
    """A pooled worker: announce readiness, then run each job from `jobs` (a tuple of job, key,
    time limit in seconds and its reason; None ends the worker) and answer with its events,
    ending each with {"type": "done", "reusable": ...}."""
    die_with_parent(parent_pid)
    hooks.install_from_env()  # the tests' fault hooks, when the test entry point names them
    if os.environ.get("ARENA_SAMPLE_STACKS"):  # only under a sampled server (benchmarks/server_e2e.py)
        from arena.core import stack_sampler

        stack_sampler.from_env("worker")
    imports_s = prepare(cuda=True)
    events.put({"type": "ready", "pid": os.getpid(), "imports_s": imports_s, "foreign": foreign_modules()})

    from arena.execute.stopping import Stopped, deadline_check
    from arena.execute.worker import (
        durable_put,
        load_phase,
        measure_phase,
        report_error,
    )

    put = durable_put(events)  # written to the pipe before the next step: a kill keeps what was sent

    loaded, loaded_key = None, None
    while True:
        item = jobs.get()
        if item is None:
            return
        job, key, timeout_s, timeout_reason = item
        stop = deadline_check(time.monotonic() + timeout_s, timeout_reason, stop_flag.is_set)
        warm = loaded is not None and loaded_key == key
        reusable = True
        try:
            if not warm:
                if loaded is not None:
                    loaded.close()
                    loaded, loaded_key = None, None
                loaded = load_phase(job, put)
                loaded_key = key
            measure_phase(loaded, job, put, warm=warm, stop=stop)
        except Exception as exc:
            report_error(exc, job, put)
            # after a clean stop the model is intact; after an error, nothing is trusted
            reusable = isinstance(exc, Stopped) and loaded is not None and loaded_key == key
        put({"type": "done", "reusable": reusable, "gpu_mb": gpu_reserved_mb()})


def run_target(parent_pid: int, target: Callable[[Any, Any], None], job: Any, events: Any) -> None:
    """A one-job worker (the sweep's): the same parent-death and process-group setup, then
    `target(job, events)`."""
    die_with_parent(parent_pid)
    hooks.install_from_env()  # the tests' fault hooks, when the test entry point names them
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    target(job, events)
