"""One configuration, measured: load (timed), warm up, repeats of timed generation, NLL.

`run_job` is the whole measurement; `worker_main` is the entry of the spawned process that
runs it and streams its events through a queue. Events are small dicts:
    {"type": "status", "stage": "loading" | "warming up" | "running", ...}
    {"type": "token", "text": "..."}      live text of row 0, first timed repeat only
    {"type": "metrics", "metrics": {...}} the measured fields of a Result
    {"type": "error", "reason": "..."}    one line
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from arena import memory_limit

Emit = Callable[[dict[str, Any]], None]


@dataclass
class Job:
    config: str
    model_kind: str
    model_ref: str
    dtype: str
    device: str
    prompt_ids: list[int]
    batch_size: int
    max_new_tokens: int
    repeats: int
    sampling: dict[str, Any] = field(default_factory=dict)
    reference_ids: list[int] | None = None  # the baseline's tokens, for NLL; None: our own
    stream: bool = True
    memory_limit_mb: int | None = None  # ARENA_WORKER_MEMORY_MB (see arena/memory_limit.py)
    gpus: list[int] | None = None  # a GPU choice / split (arena/placement.py); None: `device` alone
    max_memory: dict[str, int] | None = None  # budgets in bytes by "0", "1", "cpu"


class _TextStream:
    """Incremental detokenizer for row 0, as transformers' TextStreamer does it: decode the
    tokens since the last newline and emit only the new characters."""

    def __init__(self, spec, tokenizer, emit: Emit) -> None:
        self.spec, self.tokenizer, self.emit = spec, tokenizer, emit
        self.cache: list[int] = []
        self.printed = 0
        self.enabled = False

    def __call__(self, ids: list[int]) -> None:
        if not self.enabled:
            return
        if self.tokenizer is None:
            self.emit({"type": "token", "text": " " + " ".join(map(str, ids))})
            return
        self.cache.extend(ids)
        text = self.tokenizer.decode(self.cache, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for more
            return
        if len(text) > self.printed:
            self.emit({"type": "token", "text": text[self.printed:]})
        if text.endswith("\n"):
            self.cache, self.printed = [], 0
        else:
            self.printed = len(text)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__


def oom_reason(exc: BaseException) -> str | None:
    """The one-line reason for an out-of-memory error (GPU or host), None for any other error."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return "out of memory: " + one_line(exc).split(": ", 1)[-1][:200]
    if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc):
        return "out of memory (host RAM)"
    return None


def _injected_fault(config: str) -> None:
    """Test hook for fault tolerance: ARENA_FAULT_INJECT="name=raise|kill|hang|alloc[,...]" makes
    the worker of configuration `name` raise, die by SIGKILL, hang, or keep allocating host
    memory (up to 4 GB, then raise), after it starts loading."""
    for item in os.environ.get("ARENA_FAULT_INJECT", "").split(","):
        name, _, kind = item.partition("=")
        if name.strip() != config:
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


def run_job(job: Job, emit: Emit) -> None:
    import torch

    from arena import bandwidth, configs, models
    from arena.backends import make_backend
    from arena.backends.common import Sampling
    from arena.measure import EnergyMeter, MemoryTracker, TokenClock, median_timing, timing_from_stamps
    from arena.placement import Placement

    config = configs.get(job.config)
    spec = models.ModelSpec(job.model_kind, job.model_ref)  # type: ignore[arg-type]
    device = "cpu" if config.backend == "onnxruntime" and not config.needs_cuda else job.device
    where = Placement(tuple(job.gpus or ()), dict(job.max_memory or {}))
    on_gpus = where.gpus if device.startswith("cuda") and where.gpus else ()
    if device.startswith("cuda:"):
        torch.cuda.set_device(torch.device(device))  # the first GPU of a choice or split (validated)
    sampling = Sampling(**job.sampling)
    memory = MemoryTracker(device, gpus=on_gpus, track_cpu=where.mapped and "cpu" in where.max_memory)
    try:
        emit({"type": "status", "stage": "loading"})
        if job.memory_limit_mb and device.startswith("cuda"):
            for gpu in on_gpus or (torch.device(device).index or 0,):
                memory_limit.cap_cuda(job.memory_limit_mb, f"cuda:{gpu}")
        _injected_fault(job.config)
        bw = bandwidth.for_device(device)  # measured once per device (cached), before any weights
        tokenizer = models.load_tokenizer(spec)
        backend = make_backend(config, spec, configs.run_dtype(config, job.dtype), device, where)
        t0 = time.perf_counter()
        backend.load()
        if device.startswith("cuda"):
            for gpu in on_gpus or (None,):
                torch.cuda.synchronize(gpu)
        load_s = time.perf_counter() - t0
        weights_mb = backend.weights_bytes() / 2**20
        placed = backend.placement_used()

        input_ids = torch.tensor([job.prompt_ids] * job.batch_size, dtype=torch.long)
        stream = _TextStream(spec, tokenizer, emit)
        clock = TokenClock(on_tokens=stream if job.stream else None)

        emit({"type": "status", "stage": "warming up"})
        memory.reset_peak()
        # A full-length warm-up: compiled configurations trace and capture at these shapes,
        # and every allocator reaches its steady state before timing.
        # With a streamer, as the timed repeats: its path (host copies, pinned buffers) warms too.
        backend.generate(input_ids, job.max_new_tokens, sampling, streamer=TokenClock())

        energy = EnergyMeter(device)
        timings, new_ids = [], None
        energy.start()
        for i in range(job.repeats):
            emit({"type": "status", "stage": "running", "repeat": i + 1, "repeats": job.repeats})
            stream.enabled = i == 0
            clock.begin()
            out = backend.generate(input_ids, job.max_new_tokens, sampling, streamer=clock)
            timings.append(timing_from_stamps(clock.start, clock.stamps, job.batch_size))
            if new_ids is None:
                new_ids = out[0].tolist()
        joules = energy.stop()
        mem = memory.report(torch_backend=config.backend == "torch")
        timing, spread = median_timing(timings)

        reference = job.reference_ids if job.reference_ids is not None else new_ids
        nll = backend.nll(job.prompt_ids, reference) if reference else None
        eos = models.eos_ids(spec, tokenizer)
        shown = new_ids
        cut = next((i for i, t in enumerate(new_ids) if t in eos), None)
        if cut is not None:
            shown = new_ids[:cut]  # generation ran on past end-of-sequence for timing only
        total_tokens = job.batch_size * job.max_new_tokens * job.repeats
        metrics = {
            "load_s": load_s,
            "weights_mb": weights_mb,
            **asdict(timing),
            **asdict(mem),
            "energy_j_per_token": joules / total_tokens if joules is not None else None,
            "token_ids": new_ids,
            "text": models.decode(spec, tokenizer, shown),
            "nll": nll,
            "spread": spread,
            "dtype": backend.dtype,
            "eos_at": cut,
            "placement": placed,
        }
        metrics.pop("total_s", None)
        metrics.pop("rss_peak_mb", None)
        metrics.update(bandwidth.fields_for(
            bw, spec, weights_bytes=weights_mb * 2**20, dtype=backend.dtype, batch=job.batch_size,
            prompt_tokens=len(job.prompt_ids), new_tokens=job.max_new_tokens,
            decode_tokens_per_s=timing.decode_tokens_per_s))
        emit({"type": "metrics", "metrics": metrics})
    except Exception as exc:
        reason = oom_reason(exc)
        if reason and isinstance(exc, torch.OutOfMemoryError) and job.memory_limit_mb and device.startswith("cuda"):
            reason = memory_limit.exceeded(job.memory_limit_mb, what="GPU memory")
        elif reason is None and os.environ.get("ARENA_DEBUG"):
            traceback.print_exc()
        emit({"type": "error", "reason": reason or one_line(exc)})
    finally:
        memory.close()
        if job.memory_limit_mb and device.startswith("cuda"):  # inline runs share the process
            for gpu in on_gpus or (torch.device(device).index or 0,):
                torch.cuda.set_per_process_memory_fraction(1.0, gpu)


def worker_main(job: Job, queue) -> None:
    """Entry point of a spawned worker process."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        run_job(job, queue.put)
    finally:
        queue.put({"type": "done"})
