"""Does the arena's harness measure what a bare loop measures, for every family?

Each configuration is measured twice per round on the same model, tokens and settings:
  1. through the arena (spawned worker, streamer timestamps, events, the headline memory method);
  2. through its family's own bare reference loop in a fresh process, written here without the
     arena's measuring code: plain `generate` timed with device synchronization
     (optimum-benchmark style: prefill = a 1-token generate, decode = (N-1) tokens over the
     difference) for eager / sdpa / static-cache / bitsandbytes; a hand-written compiled decode
     loop (static cache, one compiled step, gpt-fast style) for compiled-decode;
     ORTModelForCausalLM.generate for ONNX Runtime. Peak memory by the headline's definition,
     measured another way: a 1 ms sampler thread (RSS above the idle baseline after imports on
     CPU; NVML process memory above the idle CUDA context on GPU).
Arena and reference alternate for --rounds rounds (ABAB: drift stays out of the ratio); medians
are compared. Target: decode tok/s and peak memory within 5%. On a GPU, energy too: the arena's
J/token against the reference's mean board power / decode tok/s (target 20%).

    python benchmarks/fidelity.py --model default --configs eager,sdpa,ort-cpu --max-new-tokens 32
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Sampler:
    """Peak of `read()` above its value at start, sampled every 1 ms in a thread (reference only)."""

    def __init__(self, read) -> None:
        self.read, self.idle, self.peak = read, read(), 0
        self.power: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, power=None) -> None:
        self.peak = self.read()
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                self.peak = max(self.peak, self.read())
                if power is not None:
                    self.power.append(power())
                self._stop.wait(0.001)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return (self.peak - self.idle) / 2**20


def reference(model_id: str, config_name: str, dtype: str, prompt_ids: list[int], batch: int,
              new_tokens: int, repeats: int, out) -> None:
    import psutil
    import torch
    import transformers  # noqa: F401  (before the idle baseline, as the arena's worker)

    from arena.core import registry

    cfg = registry.get(config_name)
    device = "cuda" if cfg.needs_cuda or (cfg.backend == "torch" and torch.cuda.is_available()) else "cpu"
    if cfg.backend == "onnxruntime":
        import optimum.onnxruntime  # noqa: F401
    # Everything load_reference imports, imported before the idle baseline (as the arena's worker
    # has all its modules imported before its own): library pages are not the model's share.
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig  # noqa: F401

    import arena.backends.onnxruntime  # noqa: F401
    import arena.models.sources  # noqa: F401
    import arena.models.synthetic  # noqa: F401
    nvml = None
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

        def power() -> float:
            return pynvml.nvmlDeviceGetPowerUsage(nvml) / 1e3
    else:
        proc = psutil.Process()

        def read() -> int:
            return int(proc.memory_info().rss)

        power = None
    memory = Sampler(read)
    gen, step = load_reference(cfg, model_id, dtype, device)
    ids = torch.tensor([prompt_ids] * batch, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed(n: int) -> float:
        sync()
        t0 = time.perf_counter()
        gen(ids, n)
        sync()
        return time.perf_counter() - t0

    timed(new_tokens)  # warm-up at full length (compiles, captures, allocates)
    prefill = statistics.median(timed(1) for _ in range(repeats))
    full = statistics.median(timed(new_tokens) for _ in range(repeats))
    memory.start(power)  # its own runs: the sampler thread never slows the timed ones
    for _ in range(repeats):
        timed(new_tokens)
    mem = memory.stop()
    tps = batch * (new_tokens - 1) / (full - prefill)
    watts = statistics.mean(memory.power) if memory.power else None
    out.put({"decode_tokens_per_s": tps, "peak_memory_mb": mem, "ttft_ms": prefill * 1e3,
             "energy_j_per_token": watts / tps if watts else None, "how": step})


def load_reference(cfg, model_id: str, dtype: str, device: str):
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

        model = ORTModelForCausalLM.from_pretrained(export_dir(spec, dtype, device), provider=cfg.provider,
                                                    use_io_binding=device == "cuda", use_cache=True)

        def gen(ids, n):
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                           do_sample=False, pad_token_id=0)
        return gen, f"ORTModelForCausalLM.generate on {cfg.provider}"

    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    source = str(synthetic_checkpoint(spec, dtype, device)) if spec.synthetic else pretrained_path(spec)
    kwargs = {"dtype": torch_dtype(dtype), "attn_implementation": cfg.attn}
    if cfg.quantized:
        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_8bit=True) if cfg.quant == "int8" else
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="fp4" if cfg.quant == "fp4" else "nf4",
                               bnb_4bit_use_double_quant=cfg.quant == "nf4-dq", bnb_4bit_compute_dtype=torch_dtype(dtype)))
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs).eval()
    if not cfg.quantized:
        model = model.to(device)
    if cfg.compiled_decode:
        return compiled_loop(model, device), "hand-written static-cache loop, decode step torch.compile'd"
    extra = {}
    if cfg.static_cache:
        from transformers import CompileConfig

        cc = CompileConfig(mode="reduce-overhead" if device == "cuda" else "default")
        cc._compile_all_devices = True
        extra = {"cache_implementation": "static", "compile_config": cc}

    def gen(ids, n):
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                           do_sample=False, pad_token_id=0, **extra)
    return gen, "transformers generate()" + (" with a static cache" if extra else "")


def compiled_loop(model, device: str):
    """gpt-fast style: prefill once, then one compiled (CUDA-graph) decode step per token."""
    import torch
    from transformers import StaticCache

    state: dict = {}

    def step(token, position):
        out = model(input_ids=token, cache_position=position, past_key_values=state["cache"], use_cache=True)
        return out.logits[:, -1, :].argmax(dim=-1)

    compiled = torch.compile(step, mode="reduce-overhead" if device == "cuda" else "default", fullgraph=True)

    def gen(ids, n):
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--configs", "--config", default="eager,sdpa,ort-cpu")
    parser.add_argument("--prompt", default="Write a short story about a lighthouse keeper.")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved arena/reference rounds")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    from arena.core import registry
    from arena.core.request import RunRequest, validate
    from arena.execute import runner

    names = registry.parse_names(args.configs)
    ctx = mp.get_context("spawn")
    rows, worst = [], 0.0
    for name in names:
        prepared = validate(RunRequest(model=args.model, prompt=args.prompt, configs=[name], timeout_s=args.timeout,
                                       max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                       dtype=args.dtype, repeats=args.repeats, prompt_tokens=args.prompt_tokens))
        arenas, refs = [], []
        for _ in range(args.rounds):
            arena = runner.execute(prepared)[0]
            if arena.status != "ok":
                print(f"{name}: arena run {arena.status}: {arena.reason}")
                break
            q = ctx.Queue()
            p = ctx.Process(target=reference, args=(args.model, name, registry.run_dtype(registry.get(name), prepared.dtype),
                                                     prepared.prompt_ids, args.batch_size, args.max_new_tokens,
                                                     args.repeats, q))
            p.start()
            try:
                refs.append(q.get(timeout=args.timeout))
            except Exception as exc:
                print(f"{name}: reference loop gave no result ({type(exc).__name__})")
                p.kill()
                break
            p.join()
            arenas.append(arena)
            print(f"{name} round {len(refs)}: decode tok/s arena {arena.decode_tokens_per_s:.2f} / reference "
                  f"{refs[-1]['decode_tokens_per_s']:.2f}; peak MB arena {arena.peak_memory_mb:.1f} / reference "
                  f"{refs[-1]['peak_memory_mb']:.1f}", flush=True)
        if not refs:
            continue
        row = {"config": name, "how": refs[0]["how"], "method": arenas[0].memory_method, "rounds": len(refs)}
        for key in ("decode_tokens_per_s", "peak_memory_mb", "ttft_ms", "energy_j_per_token"):
            a = [getattr(x, key) for x in arenas if getattr(x, key) is not None]
            r = [y[key] for y in refs if y.get(key) is not None]
            if not a or not r:
                continue
            row[key] = (statistics.median(a), statistics.median(r), statistics.median(a) / statistics.median(r))
            if key in ("decode_tokens_per_s", "peak_memory_mb"):
                worst = max(worst, abs(row[key][2] - 1))
        rows.append(row)

    print(f"model {args.model}, {args.max_new_tokens} new tokens, batch {args.batch_size}, {args.repeats} repeats, "
          f"{args.rounds} interleaved rounds; arena / reference (target: tok/s and memory within 5%, energy 20%)")
    head = f"{'config':<22}{'tok/s arena':>12}{'ref':>10}{'ratio':>7}{'peak MB arena':>15}{'ref':>10}{'ratio':>7}{'J/tok ratio':>12}"
    print(head)
    for row in rows:
        t, m, e = (row.get(k) for k in ("decode_tokens_per_s", "peak_memory_mb", "energy_j_per_token"))
        fmt = lambda v, d=2: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
        print(f"{row['config']:<22}{fmt(t and t[0]):>12}{fmt(t and t[1]):>10}{fmt(t and t[2], 3):>7}"
              f"{fmt(m and m[0], 1):>15}{fmt(m and m[1], 1):>10}{fmt(m and m[2], 3):>7}{fmt(e and e[2], 3):>12}")
    for row in rows:
        print(f"  {row['config']}: reference = {row['how']}; arena memory = {row['method']}")
    done = {r["config"] for r in rows}
    missing = [n for n in names if n not in done]
    verdict = "PASS" if rows and not missing and worst <= 0.05 else "FAIL"
    print(f"{verdict}: worst tok/s or memory gap {worst * 100:.1f}% (target 5%)"
          + (f"; not measured: {', '.join(missing)}" if missing else ""))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
