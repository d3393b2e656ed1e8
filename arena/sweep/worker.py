"""The measuring side of a sweep: one (implementation, quantization) group in one process.

`run_group` loads the model once, then for each point builds a left-padded batch with its
attention mask, warms up, times `repeats` passes (device synchronized around each) and
reports the median latency and the peak memory of that point. In generate-padded mode each
pass is one generate() timed as the arena times it (arena/measure/clocks.py's TokenClock: TTFT,
decode tokens/s, per-token latencies; greedy, exactly new_tokens per row). A point that fails (out of
memory, no kernel for a mask, ...) is reported with its reason and the next point runs.
Events (small dicts, as arena/execute/worker.py's):
    {"type": "loaded", "load_s": ..., "weights_mb": ...}
    {"type": "point", "index": i, "metrics": {...}} or {"type": "point", "index": i, "error": "...", "code": "oom"}
    {"type": "error", "reason": "...", "code": "error"}   the group could not start (codes: arena/core/ending.py)
"""

from __future__ import annotations

import gc
import inspect
import os
import statistics
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from arena.core.ending import Code
from arena.core.errors import one_line, oom_reason
from arena.techniques.registry import Config
from arena.core.units import MiB
from arena.execute import hooks

Emit = Callable[[dict[str, Any]], None]
REAL_TOKEN_SEED = 0


@dataclass
class GroupJob:
    config: Config
    model_kind: str
    model_ref: str
    dtype: str
    device: str
    mode: str  # "forward" | "generate" | "generate-padded"
    points: list[tuple[int, int, list[int]]]  # (batch, seq, left-padding length of each row)
    repeats: int
    warmup: int
    new_tokens: int
    extra: dict[str, Any] = field(default_factory=dict)


def padded_batch(batch: int, seq: int, pads: list[int], vocab: int, pad_id: int):
    """(input_ids, attention_mask, position_ids) for a left-padded batch: row i starts with
    pads[i] padding tokens (mask 0); positions count real tokens only, as generate() does."""
    import torch

    gen = torch.Generator().manual_seed(REAL_TOKEN_SEED)
    ids = torch.randint(4, vocab, (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    for row, n in enumerate(pads):
        ids[row, :n] = pad_id
        mask[row, :n] = 0
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    return ids, mask, positions


def generate_padded(model, ids, mask, new_tokens: int, pad_id: int, streamer=None):
    """generate() on a left-padded batch as every timed generation here runs: greedy, exactly
    `new_tokens` per row (no end of sequence), KV cache on; returns the new tokens only."""
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=None,
                         eos_token_id=None, pad_token_id=pad_id, do_sample=False, temperature=None, top_p=None,
                         top_k=None, use_cache=True, streamer=streamer)
    return out[:, ids.shape[1]:]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _failure(exc: BaseException) -> tuple[str, str]:
    """(one-line reason, code) of a failed load or point: out of memory named as such."""
    reason = oom_reason(exc)
    if os.environ.get("ARENA_DEBUG"):
        traceback.print_exc()
    return reason or one_line(exc), Code.OOM.value if reason else Code.ERROR.value


def _load(job: GroupJob, emit: Emit):
    """The group's model, loaded once (timed); None after an "error" event when it cannot load."""
    from arena.backends import make_backend
    from arena.models.spec import ModelSpec

    try:
        hooks.fire("load", job.config.name)
        backend = make_backend(job.config, ModelSpec(job.model_kind, job.model_ref),  # type: ignore[arg-type]
                               job.dtype, job.device)
        t0 = time.perf_counter()
        backend.load()
        _sync(job.device)
        load_s = time.perf_counter() - t0
    except Exception as exc:
        reason, code = _failure(exc)
        emit({"type": "error", "reason": reason, "code": code})
        return None
    emit({"type": "loaded", "load_s": load_s, "weights_mb": backend.weights_bytes() / MiB})
    return backend


def _measure_point(job: GroupJob, backend, memory, batch: int, seq: int, pads: list[int]) -> dict[str, Any]:
    """One point: warm-up passes, then `repeats` timed passes (device synchronized around each);
    the median latency, the peak memory and, for generate-padded, the arena's token timings."""
    import torch

    from arena.measure.clocks import TokenClock, median_timing, timing_from_stamps

    model, config = backend.model, backend.model.config
    pad_id = config.pad_token_id if isinstance(config.pad_token_id, int) else 0
    keep_last = "logits_to_keep" in inspect.signature(model.forward).parameters
    device = backend.input_device()
    ids, mask, positions = (t.to(device) for t in padded_batch(batch, seq, pads, config.vocab_size, pad_id))

    def once(streamer=None) -> None:
        with torch.inference_mode(), backend.generation_context():
            if job.mode == "forward":
                # One prefill as generate() does it: the whole batch, no KV cache kept,
                # logits of the last position only when the model allows it.
                kwargs = {"logits_to_keep": 1} if keep_last else {}
                model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, **kwargs)
            else:
                generate_padded(model, ids, mask, job.new_tokens, pad_id, streamer)

    memory.reset_peak()
    clocked = job.mode == "generate-padded"
    for _ in range(job.warmup):
        once(TokenClock() if clocked else None)
    times, timings = [], []
    for _ in range(job.repeats):
        clock = TokenClock() if clocked else None
        _sync(job.device)
        t0 = time.perf_counter()
        if clock is not None:
            clock.begin()
        once(clock)
        _sync(job.device)
        times.append((time.perf_counter() - t0) * 1e3)
        if clock is not None:
            timings.append(timing_from_stamps(clock.start, clock.stamps, batch, clock.counts))
    mem = memory.report(torch_backend=True)
    latency = statistics.median(times)
    produced = batch * seq - sum(pads) if job.mode == "forward" else batch * job.new_tokens
    method = ("torch.cuda.max_memory_allocated over this point's passes (weights included)"
              if job.device.startswith("cuda") else mem.memory_method + " (weights included)")
    metrics = {"latency_ms": latency, "e2e_tokens_per_s": produced / (latency / 1e3),
               "peak_memory_mb": mem.peak_memory_mb, "memory_method": method,
               "torch_allocated_mb": mem.torch_allocated_mb, "torch_reserved_mb": mem.torch_reserved_mb,
               "spread": {"latency_ms": times}}
    if timings:
        timing, spread = median_timing(timings)
        metrics.update(ttft_ms=timing.ttft_ms, decode_tokens_per_s=timing.decode_tokens_per_s,
                       e2e_tokens_per_s=timing.e2e_tokens_per_s, token_latency_p50_ms=timing.token_latency_p50_ms,
                       token_latency_p90_ms=timing.token_latency_p90_ms, spread={"latency_ms": times, **spread})
    return metrics


def run_group(job: GroupJob, emit: Emit, should_stop: Callable[[], bool] | None = None) -> None:
    """Load once, then measure every point of `job`, emitting events; `should_stop` (the
    launcher's stop request) is asked before each point."""
    import torch

    from arena.measure.memory import MemoryTracker

    memory = MemoryTracker(job.device, headline="torch-allocated")  # the guide's memory charts: allocator peak
    try:
        backend = _load(job, emit)
        for index, (batch, seq, pads) in enumerate(job.points if backend is not None else ()):
            if should_stop is not None and should_stop():
                return
            try:
                hooks.fire("sweep_point", job.config.name, batch)
                emit({"type": "point", "index": index,
                      "metrics": _measure_point(job, backend, memory, batch, seq, pads)})
            except Exception as exc:
                reason, code = _failure(exc)
                emit({"type": "point", "index": index, "error": reason, "code": code})
            finally:
                # An out-of-memory point must not starve the next one: its tensors are gone with
                # its frame; hand the cached blocks back before going on.
                gc.collect()
                if job.device.startswith("cuda"):
                    torch.cuda.empty_cache()
    finally:
        memory.close()


def worker_main(job: GroupJob, queue) -> None:
    """Entry point of a spawned sweep worker."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        run_group(job, queue.put)
    finally:
        queue.put({"type": "done"})
