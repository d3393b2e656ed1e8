"""Does the arena's harness measure what a bare loop measures, for every family?

Each configuration is measured twice per round on the same model, tokens and settings:
  1. through the arena (spawned worker, streamer timestamps, events, the headline memory method);
  2. through its family's own bare reference loop in a fresh process, written here without the
     arena's measuring code: plain `generate` timed with device synchronization
     (optimum-benchmark style: prefill = a 1-token generate, decode = (N-1) tokens over the
     difference) for eager / sdpa / static-cache / bitsandbytes / torchao; a hand-written compiled
     decode loop (static cache, one compiled step, gpt-fast style) for compiled-decode;
     ORTModelForCausalLM.generate for ONNX Runtime. Peak memory by the headline's definition,
     measured another way: a 1 ms sampler thread (RSS above the idle baseline after imports on
     CPU; NVML process memory above the idle CUDA context on GPU).
Arena and reference alternate for `rounds` rounds (ABAB: drift stays out of the ratio); medians
are compared. Targets: decode tok/s and peak memory within 5%; on a GPU, energy within 10%: the
arena's J/token x decoded tokens against the NVML energy counter's delta over the reference's
decode phase (a full generation's energy less a 1-token generation's).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import threading
import time
from dataclasses import replace
from typing import Any, Callable

from arena.core.request import RunRequest
from arena.core.units import mib

SPEED_MEMORY_TARGET, ENERGY_TARGET = 0.05, 0.10
KEYS = ("decode_tokens_per_s", "peak_memory_mb", "ttft_ms", "energy_j_per_token")


class Sampler:
    """Peak of `read()` above its value at start, sampled every 1 ms in a thread (reference only)."""

    def __init__(self, read: Callable[[], int]) -> None:
        self.read, self.idle, self.peak = read, read(), 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.peak = self.read()
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                self.peak = max(self.peak, self.read())
                self._stop.wait(0.001)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        return mib(self.peak - self.idle)


def _preload(cfg: Any) -> None:
    """Everything load_reference imports, imported before the idle baseline (as the arena's worker
    has all its modules imported before its own): library pages are not the model's share."""
    import importlib

    if cfg.backend == "onnxruntime":
        import optimum.onnxruntime  # noqa: F401
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig  # noqa: F401

    from arena.execute.worker_entry import PRELOAD

    for name in PRELOAD:  # what transformers imports lazily on the first load (its modeling and
        if name.startswith("transformers."):  # generation code): the worker imports it before its baseline
            importlib.import_module(name)

    import arena.backends.onnxruntime  # noqa: F401
    import arena.techniques.torchao  # noqa: F401
    import arena.models.sources  # noqa: F401
    import arena.models.synthetic  # noqa: F401


def _probes(device: str) -> tuple[Callable[[], int], Callable[[], int] | None]:
    """This process's memory reader (NVML's own process figure on a GPU, the RSS on the CPU) and the
    GPU's energy counter in mJ (None where there is none)."""
    import psutil
    import torch

    energy_mj: Callable[[], int] | None = None
    if device == "cuda":
        import pynvml

        torch.zeros(1, device="cuda")
        pynvml.nvmlInit()
        nvml = pynvml.nvmlDeviceGetHandleByUUID("GPU-" + str(torch.cuda.get_device_properties(0).uuid))
        pid = os.getpid()

        def read() -> int:
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(nvml):
                if p.pid == pid:
                    return int(p.usedGpuMemory or 0)
            return int(pynvml.nvmlDeviceGetMemoryInfo(nvml).used)

        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(nvml)
            energy_mj = lambda: int(pynvml.nvmlDeviceGetTotalEnergyConsumption(nvml))  # noqa: E731
        except pynvml.NVMLError:
            energy_mj = None
    else:
        proc = psutil.Process()

        def read() -> int:
            return int(proc.memory_info().rss)

    return read, energy_mj


def reference(model_id: str, config_name: str, dtype: str, prompt_ids: list[int], batch: int,
              new_tokens: int, repeats: int, out: Any) -> None:
    """The bare loop, in its own spawned process; puts its medians on `out`."""
    from arena.core import quiet

    quiet.silence()  # the libraries' known noise off, as in the arena's workers (not a measuring step)
    import torch
    import transformers  # noqa: F401  (before the idle baseline, as the arena's worker)

    from arena.measure.memory import release_freed_memory
    from arena.techniques import registry

    cfg = registry.get(config_name)
    device = "cuda" if cfg.needs_cuda or (cfg.backend == "torch" and torch.cuda.is_available()) else "cpu"
    _preload(cfg)
    read, energy_mj = _probes(device)
    memory = Sampler(read)
    gen, how = load_reference(cfg, model_id, dtype, device)
    if device == "cuda":  # as the arena does after loading: the headline is what generation holds,
        torch.cuda.empty_cache()  # not what loading (a quantize-at-load) left in torch's cache
    else:  # the same on the CPU: the heap's freed pages (bitsandbytes' bf16 originals) go back
        release_freed_memory()
    ids = torch.tensor([prompt_ids] * batch, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed(n: int, joules: list[float]) -> float:
        sync()
        e0 = energy_mj() if energy_mj else 0
        t0 = time.perf_counter()
        gen(ids, n)
        sync()
        seconds = time.perf_counter() - t0
        if energy_mj:
            joules.append((energy_mj() - e0) / 1e3)
        return seconds

    timed(new_tokens, [])  # warm-up at full length (compiles, captures, allocates)
    e_prefill: list[float] = []
    e_full: list[float] = []
    prefill = statistics.median(timed(1, e_prefill) for _ in range(repeats))
    full = statistics.median(timed(new_tokens, e_full) for _ in range(repeats))
    memory.start()  # its own runs: the sampler thread never slows the timed ones
    for _ in range(repeats):
        timed(new_tokens, [])
    mem = memory.stop()
    decoded = batch * (new_tokens - 1)
    decode_j = statistics.median(e_full) - statistics.median(e_prefill) if e_full else None
    # a decode shorter than the noise of two timings gives no speed, not a negative one
    out.put({"decode_tokens_per_s": decoded / (full - prefill) if full > prefill else None,
             "peak_memory_mb": mem, "ttft_ms": prefill * 1e3,
             "energy_j_per_token": decode_j / decoded if decode_j and decode_j > 0 else None,
             "decode_s": full - prefill, "how": how})


def load_reference(cfg: Any, model_id: str, dtype: str, device: str) -> tuple[Callable[[Any, int], None], str]:
    """(generate(ids, n), a few words on the loop) for the configuration's family, built plainly."""
    import torch

    from arena.models.dtypes import torch_dtype
    from arena.models.sources import pretrained_path
    from arena.models.spec import parse_model
    from arena.models.synthetic import synthetic_checkpoint

    spec = parse_model(model_id)
    if cfg.backend == "onnxruntime":
        from optimum.onnxruntime import ORTModelForCausalLM

        from arena.backends.onnxruntime import export_dir

        ort = ORTModelForCausalLM.from_pretrained(export_dir(spec, dtype, device), provider=cfg.provider,
                                                  use_io_binding=device == "cuda", use_cache=True)

        def ort_gen(ids: Any, n: int) -> None:
            ort.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                         do_sample=False, pad_token_id=0)
        return ort_gen, f"ORTModelForCausalLM.generate on {cfg.provider}"

    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    source = str(synthetic_checkpoint(spec, dtype, device)) if spec.synthetic else pretrained_path(spec)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype), "attn_implementation": cfg.attn}
    if cfg.quant is not None and cfg.quant.library == "bitsandbytes":  # written out as transformers documents it
        scheme = cfg.quant.scheme
        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_8bit=True) if scheme == "int8" else
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="fp4" if scheme == "fp4" else "nf4",
                               bnb_4bit_use_double_quant=scheme == "nf4-dq", bnb_4bit_compute_dtype=torch_dtype(dtype)))
        kwargs["device_map"] = {"": device}
    elif cfg.quant is not None:  # another library: its own config for from_pretrained (torchao: TorchAoConfig)
        kwargs["quantization_config"] = cfg.quant.hf_config(torch_dtype(dtype))
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs).eval()
    if "device_map" not in kwargs:
        model = model.to(device)
    if cfg.quant is not None and kwargs.get("quantization_config") is None:  # a library that quantizes loaded weights
        model = cfg.quant.quantize(model)
    if cfg.compiled_decode:
        return compiled_loop(model, device), "hand-written static-cache loop, decode step torch.compile'd"
    extra: dict[str, Any] = {}
    if cfg.static_cache:
        from transformers import CompileConfig

        cc = CompileConfig(mode="reduce-overhead" if device == "cuda" else "default")
        cc._compile_all_devices = True
        extra = {"cache_implementation": "static", "compile_config": cc}

    def gen(ids: Any, n: int) -> None:
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                           do_sample=False, pad_token_id=0, **extra)
    return gen, "transformers generate()" + (" with a static cache" if extra else "")


def compiled_loop(model: Any, device: str) -> Callable[[Any, int], None]:
    """gpt-fast style: prefill once, then one compiled (CUDA-graph) decode step per token."""
    import torch
    from transformers import StaticCache

    state: dict[str, Any] = {}

    def step(token: Any, position: Any) -> Any:
        out = model(input_ids=token, cache_position=position, past_key_values=state["cache"], use_cache=True)
        return out.logits[:, -1, :].argmax(dim=-1)

    compiled = torch.compile(step, mode="reduce-overhead" if device == "cuda" else "default", fullgraph=True)

    def gen(ids: Any, n: int) -> None:
        batch, plen = ids.shape
        if state.get("shape") != (batch, plen + n):
            state["cache"] = StaticCache(config=model.config, max_cache_len=plen + n)
            state["shape"] = (batch, plen + n)
        else:
            state["cache"].reset()
        pos = torch.arange(plen + n, device=device)
        with torch.no_grad():
            out = model(input_ids=ids, cache_position=pos[:plen], past_key_values=state["cache"], use_cache=True,
                        logits_to_keep=1)
            token = out.logits[:, -1, :].argmax(dim=-1)
            for k in range(1, n):
                if device == "cuda":
                    torch.compiler.cudagraph_mark_step_begin()
                token = compiled(token.view(batch, 1), pos[plen + k - 1: plen + k]).clone()
                token.cpu()  # the arena streams every token to the host too
    return gen


def compare(request: RunRequest, name: str, *, rounds: int, store: Any = None,
            say: Callable[[str], None] = print) -> dict[str, Any]:
    """`name` through the arena and through its bare loop, alternating for `rounds` rounds: a row
    with each metric as (arena median, reference median, arena / reference), or with the status
    and reason of the arena run that did not measure (then no reference runs)."""
    from arena.bench.runs import measure
    from arena.techniques import registry

    ctx = mp.get_context("spawn")
    arenas, refs = [], []
    row: dict[str, Any] = {"config": name, "status": "ok", "reason": "", "rounds": 0}
    for _ in range(rounds):
        measured = measure(replace(request, configs=[name]), store=store)
        arena = measured.results[0]
        if arena.status != "ok":
            row.update(status=arena.status, reason=arena.reason)
            break
        q = ctx.Queue()
        cfg = registry.get(name)
        p = ctx.Process(target=reference, args=(request.model, name, registry.run_dtype(cfg, measured.prepared.dtype),
                                                 measured.prepared.prompt_ids, request.batch_size,
                                                 request.max_new_tokens, request.repeats, q))
        p.start()
        try:
            refs.append(q.get(timeout=request.timeout_s))
        except Exception as exc:
            row.update(status="failed", reason=f"the reference loop gave no result ({type(exc).__name__})")
            p.kill()
            break
        p.join()
        arenas.append(arena)
        say(f"{name} round {len(refs)}: decode tok/s arena {arena.decode_tokens_per_s:.2f} / reference "
            f"{refs[-1]['decode_tokens_per_s']:.2f}; peak MB arena {arena.peak_memory_mb:.1f} / reference "
            f"{refs[-1]['peak_memory_mb']:.1f}")
    if not refs:
        return row
    row.update(status="ok", reason="", rounds=len(refs), how=refs[0]["how"], method=arenas[0].memory_method,
               energy_note=arenas[0].energy_note)
    for key in KEYS:
        a = [getattr(x, key) for x in arenas if getattr(x, key) is not None]
        r = [y[key] for y in refs if y.get(key) is not None]
        if a and r:
            row[key] = (statistics.median(a), statistics.median(r), statistics.median(a) / statistics.median(r))
    return row


def worst_gap(row: dict[str, Any]) -> float | None:
    """The largest |ratio - 1| of decode tok/s and peak memory; None when either is missing."""
    gaps = [abs(row[k][2] - 1) for k in ("decode_tokens_per_s", "peak_memory_mb") if row.get(k)]
    return max(gaps) if len(gaps) == 2 else None


def met(row: dict[str, Any]) -> str:
    """PASS / MISS against the targets (tok/s and memory within 5%; energy within 10% where read)."""
    if row.get("status") != "ok":
        return ""
    gap = worst_gap(row)
    energy = row.get("energy_j_per_token")
    misses = []
    if gap is None or gap > SPEED_MEMORY_TARGET:
        misses.append("tok/s or memory")
    if energy and abs(energy[2] - 1) > ENERGY_TARGET:
        misses.append("energy")
    return "PASS" if not misses else "MISS (" + ", ".join(misses) + ")"


def table(rows: list[dict[str, Any]]) -> str:
    def fmt(v: Any, d: int = 2) -> str:
        return "-" if v is None else f"{v:,.{d}f}"

    lines = ["| configuration | tok/s arena | reference | ratio | peak MB arena | reference | ratio | J/token arena "
             "| reference (NVML delta) | ratio | target |", "|---|" + "---:|" * 9 + "---|"]
    for row in rows:
        if row.get("status") != "ok":
            lines.append(f"| {row['config']} | {row.get('status')}: {row.get('reason')} |" + " |" * 9)
            continue
        t, m, e = (row.get(k) or (None, None, None) for k in ("decode_tokens_per_s", "peak_memory_mb",
                                                             "energy_j_per_token"))
        lines.append(f"| {row['config']} | {fmt(t[0])} | {fmt(t[1])} | {fmt(t[2], 3)} | {fmt(m[0], 1)} | "
                     f"{fmt(m[1], 1)} | {fmt(m[2], 3)} | {fmt(e[0], 4)} | {fmt(e[1], 4)} | {fmt(e[2], 3)} | {met(row)} |")
    lines.append("")
    lines += [f"- {r['config']}: reference = {r['how']}; arena memory = {r['method']}"
              + (f"; arena energy: {r['energy_note']}" if r.get("energy_note") else "")
              for r in rows if r.get("status") == "ok"]
    return "\n".join(lines)
