"""One configuration, measured: load (timed), warm up, repeats of timed generation, then NLL in
its own step.

Two phases: `load_phase` (the model on its device, load_s timed; an ONNX export first, as its
own step) and `measure_phase` (warm-up unless these shapes were already warmed in this process,
the timed repeats, the metrics, then NLL); `run_job` is both, then frees the model. A warm
worker (arena/execute/worker_entry.py) keeps what `load_phase` returned and runs only
`measure_phase` for the next identical job. Events are small dicts:
    {"type": "status", "stage": "exporting" | "loading" | "warming up" | "running" | "scoring", ...}
    {"type": "token", "text": "..."}      live text of row 0, first timed repeat only, up to end-of-text
    {"type": "metrics", "metrics": {...}} the measured fields of a Result
    {"type": "nll", "fields": {...}, "scoring_s": s}  nll and nll_note: its own step after the timings are out
    {"type": "error", "reason": "...", "code": "oom"}  one line; code: arena/core/ending.py's OOM or ERROR
    {"type": "stopped", "reason": "...", "code": "cancelled"}  cancel or time limit, seen between tokens
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from arena.core.ending import Code
from arena.core.errors import kernel_reason, one_line, oom_reason
from arena.core.units import MiB
from arena.execute import memory_limit

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
    reference_ids: list[int] | None = None  # the baseline's tokens, for NLL; None: our own (the baseline)
    baseline_failed: bool = False  # no reference: no NLL, and the note says why
    stream: bool = True
    memory_limit_mb: int | None = None  # ARENA_WORKER_MEMORY_MB (see arena/execute/memory_limit.py)
    gpus: list[int] | None = None  # a GPU choice / split (arena/models/placement.py); None: `device` alone
    max_memory: dict[str, int] | None = None  # budgets in bytes by "0", "1", "cpu"
    draft: tuple[str, str] | None = None  # the draft model (kind, ref) of an assisted configuration


class Loaded:
    """What the load phase leaves for the measure phase: the model on its device, and the shapes
    already warmed up. A warm worker keeps one between jobs (arena/execute/pool.py)."""

    def __init__(self, job: Job) -> None:
        self.job = job  # the job that loaded it
        self.backend = None
        self.memory = None
        self.warmed: set[tuple[int, int, int]] = set()  # (batch, prompt tokens, new tokens) warmed up
        self.load_stage_s = 0.0  # wall time of the whole load stage (tokenizer, bandwidth, load)
        self.device = job.device
        self.on_gpus: tuple[int, ...] = ()

    def close(self) -> None:
        """Free the model (inline mode shares the process with the next configuration)."""
        import gc

        from arena.measure.memory import release_freed_memory

        if self.memory is not None:
            self.memory.close()
        job, device = self.job, self.device
        self.backend = self.tokenizer = self.memory = None
        gc.collect()
        release_freed_memory()
        if device.startswith("cuda"):
            import torch

            if job.memory_limit_mb:  # inline runs share the process
                for gpu in self.on_gpus or (torch.device(device).index or 0,):
                    torch.cuda.set_per_process_memory_fraction(1.0, gpu)
            torch.cuda.empty_cache()


def load_phase(job: Job, emit: Emit) -> Loaded:
    """Load `job`'s configuration (timed as load_s). Raises; `report_error` words it."""
    import torch

    from arena.techniques import registry
    from arena.measure.memory import MemoryTracker
    from arena.models.placement import Placement
    from arena.models.spec import ModelSpec

    t_stage = time.perf_counter()
    out = Loaded(job)
    out.config = config = registry.get(job.config)
    out.spec = spec = ModelSpec(job.model_kind, job.model_ref)  # type: ignore[arg-type]
    out.device = device = "cpu" if config.backend == "onnxruntime" and not config.needs_cuda else job.device
    out.where = where = Placement(tuple(job.gpus or ()), dict(job.max_memory or {}))
    out.on_gpus = on_gpus = where.gpus if device.startswith("cuda") and where.gpus else ()
    if device.startswith("cuda:"):
        torch.cuda.set_device(torch.device(device))  # the first GPU of a choice or split (validated)
    import transformers  # noqa: F401  (imported before the idle baseline: library pages are not the model's)
    if config.backend == "onnxruntime":
        import optimum.onnxruntime  # noqa: F401
    from arena.models.tokenizers import eos_ids, load_tokenizer

    out.tokenizer = load_tokenizer(spec)  # the same for every configuration: not the model's share
    out.eos = eos_ids(spec, out.tokenizer)
    # The idle baseline: imports and tokenizer done and, on CUDA, the context created; no model yet.
    out.memory = MemoryTracker(device, gpus=on_gpus, track_cpu=where.mapped and "cpu" in where.max_memory,
                               sample=config.backend == "onnxruntime" and device.startswith("cuda"))
    try:
        _load(out, job, emit)
    except BaseException:
        out.close()
        raise
    out.load_stage_s = time.perf_counter() - t_stage
    return out


def _load(out: Loaded, job: Job, emit: Emit) -> None:
    import torch

    from arena.backends import make_backend
    from arena.backends.base import Backend
    from arena.execute import hooks
    from arena.techniques import registry
    from arena.measure import bandwidth
    from arena.measure.memory import release_freed_memory

    config, spec, device, where, on_gpus = out.config, out.spec, out.device, out.where, out.on_gpus
    if job.memory_limit_mb and device.startswith("cuda"):
        for gpu in on_gpus or (torch.device(device).index or 0,):
            memory_limit.cap_cuda(job.memory_limit_mb, f"cuda:{gpu}")
    hooks.fire("load", job.config)
    out.bw = device_bandwidth(job.config, device)  # measured once per device (cached), before any weights
    out.backend = backend = make_backend(config, spec, registry.run_dtype(config, job.dtype), device, where)
    out.export_s = None
    if type(backend).prepare is not Backend.prepare:  # an ONNX export: its own cached step and time
        emit({"type": "status", "stage": "exporting"})
        out.export_s = backend.prepare()
    emit({"type": "status", "stage": "loading"})
    t0 = time.perf_counter()
    backend.load()
    if device.startswith("cuda"):
        for gpu in on_gpus or (None,):
            torch.cuda.synchronize(gpu)
    out.load_s = time.perf_counter() - t0
    if device.startswith("cuda"):
        # What loading freed stays in torch's cache and in NVML's reading, and would be counted in
        # the next phase's peak: a synthetic model quantized in place leaves its bf16 weights there
        # (the 7B shape, torchao int8: a 13.6 GB warm-up peak beside 6.7 GB of weights, H200), and
        # any loader its load-time buffers. Each configuration's phases start from what its model holds.
        torch.cuda.empty_cache()
    else:
        # The same on the CPU: glibc keeps freed pages resident (VmHWM would count the originals
        # an in-place quantization freed as the next phase's peak).
        release_freed_memory()
    out.draft_load_s, out.draft_memory_mb = _load_draft(out, job) if job.draft else (None, None)
    out.weights_mb = None  # read after the measured phases (an ONNX file parse is not the model's memory)
    out.placed = backend.placement_used()


def _load_draft(out: Loaded, job: Job) -> tuple[float, float | None]:
    """An assisted configuration's draft model, loaded after the model: its own load time, and the
    memory it adds (the headline method's reading after its load less the one before)."""
    import torch

    from arena.measure.memory import release_freed_memory
    from arena.models.spec import ModelSpec

    before = out.memory.now_mb()
    t0 = time.perf_counter()
    out.backend.load_draft(ModelSpec(*job.draft), out.tokenizer)  # type: ignore[arg-type]
    if out.device.startswith("cuda"):
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t0
    out.backend.draft.resident()  # untimed, as the model's own first touch is not in load_s
    torch.cuda.empty_cache() if out.device.startswith("cuda") else release_freed_memory()
    after = out.memory.now_mb()
    return load_s, None if before is None or after is None else max(0.0, after - before)


def _warm_up(loaded: Loaded, job: Job, emit: Emit, stream: Any, input_ids: Any, sampling: Any,
             stages: dict[str, float], stop: Callable[[], str | None] | None) -> float | None:
    """A full-length warm-up, unless these shapes were warmed in this process: compiled configurations
    trace and capture at these shapes, and every allocator reaches its steady state before timing.
    With a streamer and the energy reads, as the timed repeats: its path (host copies, pinned
    buffers) warms too. Its text goes to the page as it comes (the first text a visitor sees after a
    cold start); the first timed repeat then does the same streaming work but sends only what is new.
    Returns the warm-up's peak memory (MB), None when it was skipped."""
    from arena.execute.stopping import Guarded
    from arena.measure.clocks import TokenClock
    from arena.measure.energy import EnergyMeter

    shape = (job.batch_size, len(job.prompt_ids), job.max_new_tokens)
    if shape in loaded.warmed:
        return None
    emit({"type": "status", "stage": "warming up"})
    t0 = time.perf_counter()
    stream.enabled = job.stream
    clock = TokenClock(on_tokens=stream if job.stream else None,
                       on_first=EnergyMeter(loaded.device, gpus=loaded.on_gpus).begin)
    loaded.backend.generate(input_ids, job.max_new_tokens, sampling, streamer=Guarded(clock, stop))
    stream.again()
    loaded.warmed.add(shape)
    stages["warmup"] = time.perf_counter() - t0
    return loaded.memory.phase_peak_mb()


def _timed_repeats(loaded: Loaded, job: Job, emit: Emit, stream: Any, input_ids: Any, sampling: Any,
                   clock: Any, energy: Any, guarded: Any) -> tuple[list[Any], list[int], int]:
    """The timed generations (the text streamed by the first only): their timings, the first's tokens,
    and the new tokens of row 0 over all of them."""
    from arena.measure.clocks import timing_from_stamps

    timings, new_ids, tokens = [], None, 0
    if loaded.backend.drafts is not None:  # speculative rows: guesses counted from here
        loaded.backend.drafts.reset()
    for i in range(job.repeats):
        emit({"type": "status", "stage": "running", "repeat": i + 1, "repeats": job.repeats})
        stream.enabled = i == 0
        clock.begin()
        out = loaded.backend.generate(input_ids, job.max_new_tokens, sampling, streamer=guarded)
        energy.end(time.perf_counter())
        timings.append(timing_from_stamps(clock.start, clock.stamps, job.batch_size, clock.counts))
        tokens += clock.tokens
        if new_ids is None:
            new_ids = out[0].tolist()
    return timings, new_ids, tokens


def _speculative_fields(loaded: Loaded, warm: bool, tokens: int) -> dict[str, Any]:
    """A speculative row's guesses over the timed repeats (`tokens`: row 0's new tokens over them),
    and its draft's own load (none on a warm worker, as load_s)."""
    drafts = loaded.backend.drafts
    fields = drafts.fields(tokens) if drafts is not None else {}
    if not warm:
        fields.update(draft_load_s=loaded.draft_load_s, draft_memory_mb=loaded.draft_memory_mb)
    return fields


def device_bandwidth(config: str, device: str, refresh: bool = False) -> Any:
    """The device's bandwidth (arena/measure/bandwidth.py), through the "bandwidth" fault point."""
    from arena.execute import hooks
    from arena.measure import bandwidth

    bw = bandwidth.for_device(device, refresh=refresh)
    return hooks.fire("bandwidth", config, bw) or bw


def _trust_fields(loaded: Loaded, job: Job, decode_tokens_per_s: float | None, spread: Any,
                  load_share: float | None) -> dict[str, Any]:
    """The bandwidth-limit fields and the trust verdicts (arena/measure/trust.py): the limit from
    the device's bandwidth, measured again when the result beats it."""
    from arena.measure import bandwidth_limit, trust

    def limit(bw: Any) -> dict[str, Any]:
        return bandwidth_limit.fields_for(
            bw, loaded.spec, weights_bytes=loaded.weights_mb * MiB, dtype=loaded.backend.dtype,
            batch=job.batch_size, prompt_tokens=len(job.prompt_ids), new_tokens=job.max_new_tokens,
            decode_tokens_per_s=decode_tokens_per_s)

    return trust.fields(limit, loaded.bw, lambda: device_bandwidth(job.config, loaded.device, refresh=True),
                        spread, load_share, loaded.device)


def measure_phase(loaded: Loaded, job: Job, emit: Emit, *, warm: bool = False,
                  stop: Callable[[], str | None] | None = None) -> None:
    """Warm up (unless these shapes already were, in this process), time the repeats, emit
    "metrics", then score NLL in its own step and emit "nll". `warm`: the model was loaded by an
    earlier job (load_s is then None). `stop()` returns a reason to end early, checked between
    tokens (raises Stopped)."""
    import torch

    from arena.backends.base import Sampling
    from arena.execute.livetext import TextStream
    from arena.execute.stopping import Guarded
    from arena.measure import trust
    from arena.measure.clocks import TokenClock, median_timing
    from arena.measure.energy import EnergyMeter
    from arena.models.tokenizers import decode

    config, spec, device, backend, memory = loaded.config, loaded.spec, loaded.device, loaded.backend, loaded.memory
    tokenizer, eos, on_gpus = loaded.tokenizer, loaded.eos, loaded.on_gpus
    sampling = Sampling(**job.sampling)
    stages: dict[str, float] = {} if warm else {"load": loaded.load_stage_s}
    input_ids = torch.tensor([job.prompt_ids] * job.batch_size, dtype=torch.long)
    stream = TextStream(spec, tokenizer, emit, eos=eos)
    energy = EnergyMeter(device, gpus=on_gpus)
    clock = TokenClock(on_tokens=stream if job.stream else None, on_first=energy.begin)
    guarded = Guarded(clock, stop, job.config)

    memory.reset_peak()
    warmup_peak = _warm_up(loaded, job, emit, stream, input_ids, sampling, stages, stop)
    memory.reset_peak()  # a warm run skips the warm-up: both report the timed repeats' peak
    load = trust.LoadMeter()  # other processes' CPU share while timed (the stability verdict)
    load.start()
    t_timed = time.perf_counter()

    timings, new_ids, timed_tokens = _timed_repeats(loaded, job, emit, stream, input_ids, sampling, clock, energy,
                                                    guarded)
    mem = memory.report(torch_backend=config.backend == "torch")
    stages["timed"] = time.perf_counter() - t_timed
    load_share = load.share()
    t_after = time.perf_counter()
    # After the measured phases: reading the ONNX initializers parses the model file, and what
    # that leaves in the heap is not the configuration's memory.
    if loaded.weights_mb is None:
        loaded.weights_mb = backend.weights_bytes() / MiB
    weights_mb = loaded.weights_mb
    timing, spread = median_timing(timings)
    decode_tokens = job.batch_size * (clock.tokens - (clock.counts[0] if clock.counts else 0)) * job.repeats
    joules, energy_note = energy.per_token(max(decode_tokens, 1))

    cut = next((i for i, t in enumerate(new_ids) if t in eos), None)
    shown = new_ids if cut is None else new_ids[:cut]  # generation ran on past end-of-text for timing only
    metrics = {
        "load_s": None if warm else loaded.load_s,
        "export_s": None if warm else loaded.export_s,
        **_speculative_fields(loaded, warm, timed_tokens),
        "warm": warm,
        "weights_mb": weights_mb,
        **asdict(timing),
        **asdict(mem),
        "warmup_peak_memory_mb": warmup_peak,
        "energy_j_per_token": joules,
        "energy_note": energy_note,
        "token_ids": new_ids,
        "text": decode(spec, tokenizer, shown),
        "tokens_after_eos": None if cut is None else len(new_ids) - cut - 1,
        "nll_note": "not computed: the worker ended before scoring",
        "spread": spread,
        "dtype": backend.dtype,
        "eos_ids": sorted(eos),
        "placement": loaded.placed,
    }
    metrics.pop("total_s", None)
    metrics.update(_trust_fields(loaded, job, timing.decode_tokens_per_s, spread, load_share))
    stages["after"] = time.perf_counter() - t_after
    metrics["stage_s"] = stages
    emit({"type": "metrics", "metrics": metrics})
    emit({"type": "status", "stage": "scoring"})
    t_scoring = time.perf_counter()
    fields = score_nll(job, backend, new_ids, eos)
    emit({"type": "nll", "fields": fields, "scoring_s": time.perf_counter() - t_scoring})


def report_error(exc: BaseException, job: Job, emit: Emit) -> None:
    """One line for a failed load or measure: out of memory named as such, else the error."""
    import torch

    from arena.execute.stopping import Stopped

    if isinstance(exc, Stopped):
        emit({"type": "stopped", "reason": str(exc.reason), "code": exc.code.value})
        return
    reason = oom_reason(exc)
    if reason and isinstance(exc, torch.OutOfMemoryError) and job.memory_limit_mb and job.device.startswith("cuda"):
        reason = memory_limit.exceeded(job.memory_limit_mb, what="GPU memory")
    elif reason is None and os.environ.get("ARENA_DEBUG"):
        traceback.print_exception(exc)
    from arena.techniques import registry

    code = Code.OOM if reason else Code.ERROR
    reason = reason or kernel_reason(exc, registry.get(job.config).sdpa_kernel) or one_line(exc)
    emit({"type": "error", "reason": reason, "code": code.value})


def run_job(job: Job, emit: Emit, stop: Callable[[], str | None] | None = None) -> None:
    """Load, then measure, then free: one configuration, start to end, in this process."""
    loaded = None
    try:
        loaded = load_phase(job, emit)
        measure_phase(loaded, job, emit, stop=stop)
    except Exception as exc:
        report_error(exc, job, emit)
    finally:
        if loaded is not None:
            loaded.close()


def score_nll(job: Job, backend, own_ids: list[int], eos: set[int]) -> dict[str, Any]:
    """NLL of the baseline's continuation over its compared span (up to and including its first
    end-of-text), teacher-forced and chunked; its own try, so a failure here (out of memory: the
    timings were already sent) leaves a reason, not a lost row."""
    from arena.execute import hooks
    from arena.measure.quality import compared_span

    if job.baseline_failed:
        return {"nll": None, "nll_note": "n/a: the baseline failed, so there is no reference continuation to score"}
    reference = job.reference_ids if job.reference_ids is not None else own_ids
    reference = reference[:compared_span(reference, eos)]
    if not reference:
        return {"nll": None, "nll_note": "n/a: no reference tokens"}
    whose = "its own tokens (baseline)" if job.reference_ids is None else "the baseline's tokens"
    try:
        hooks.fire("nll", job.config)
        value, lead = backend.scores(job.prompt_ids, reference)
    except Exception as exc:
        return {"nll": None, "nll_note": "not computed: " + (oom_reason(exc) or one_line(exc))}
    note = f"{whose}, {len(reference)} positions"
    extra = backend.nll_note()
    return {"nll": value, "nll_note": note + (f"; {extra}" if extra else ""), "leads": lead}


def durable_put(queue) -> Emit:
    """queue.put that has written the event to the pipe when it returns. multiprocessing's put
    hands it to a feeder thread, so a worker killed right after (out of memory while scoring NLL)
    would lose the metrics it had already measured."""
    from multiprocessing.reduction import ForkingPickler

    writer, lock, sem = (getattr(queue, name, None) for name in ("_writer", "_wlock", "_sem"))
    if writer is None or sem is None:
        return queue.put

    def put(event: dict[str, Any]) -> None:
        event.setdefault("sent_at", time.time())  # the page's delay is measured from here
        data = ForkingPickler.dumps(event)
        sem.acquire()  # as Queue.put does: get() releases it
        if lock is None:
            writer.send_bytes(data)
        else:
            with lock:
                writer.send_bytes(data)

    return put
