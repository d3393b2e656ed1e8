"""The configuration registry: one declarative entry per optimization configuration.

A configuration is data. The torch and ONNX Runtime backends read these fields; the runner,
CLI and page read the registry. Adding a configuration means adding an entry here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from arena.core.env import Platform, built_cuda_major, platform, version_tuple
from arena.models.dtypes import HALF_DTYPES, resolve_dtype

if TYPE_CHECKING:
    from arena.models.placement import Placement

Family = Literal["attention", "quantization", "compile", "onnxruntime", "parallel", "combination"]

# Developer/CI switch: run tensor-parallel configurations on the CPU over this many gloo ranks
# (the product refuses them without CUDA GPUs).
TP_CPU_WORLD_ENV = "ARENA_TP_CPU_WORLD"


@dataclass(frozen=True)
class Config:
    name: str
    label: str
    family: Family
    description: str
    backend: Literal["torch", "onnxruntime"] = "torch"
    attn: Literal["eager", "sdpa", "flash_attention_2", "flash_attention_3"] | None = "sdpa"
    sdpa_kernel: Literal["flash", "efficient", "math"] | None = None
    quant: Literal["int8", "fp4", "nf4", "nf4-dq"] | None = None  # bitsandbytes
    torchao: str | None = None  # a torchao weight quantization (arena/backends/torchao_quant.CONFIGS)
    static_cache: bool = False  # static KV cache, compiled by generate() (torch.compile)
    compiled_decode: bool = False  # own decode loop: static cache, step compiled as a CUDA graph
    bettertransformer: bool = False
    tensor_parallel: bool = False  # one process per GPU, weights sliced (arena/backends/tp_shard.py)
    provider: str | None = None  # ONNX Runtime execution provider
    needs_cuda: bool = False
    needs_half: bool = False  # fp16/bf16 only
    needs_dtype: str | None = None  # this run dtype only (e.g. tinygemm int4 kernels are bf16-only)
    min_capability: tuple[int, int] | None = None  # least CUDA compute capability, where on CUDA
    needs: tuple[str, ...] = ()  # distributions that must be installed
    retired: str | None = None  # reason the technique no longer runs with the pinned stack

    @property
    def quantized(self) -> bool:
        return self.quant is not None or self.torchao is not None

    @property
    def compiled(self) -> bool:
        return self.static_cache or self.compiled_decode


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""


BASELINE = "eager"

_ENTRIES: tuple[Config, ...] = (
    Config("eager", "Eager attention (baseline)", "attention",
           "transformers' plain PyTorch attention: matmul, softmax, matmul.", attn="eager"),
    Config("sdpa", "PyTorch SDPA", "attention",
           "torch.nn.functional.scaled_dot_product_attention; PyTorch picks the kernel."),
    Config("sdpa-flash", "SDPA: flash kernel only", "attention",
           "SDPA restricted to its FlashAttention kernel (torch.nn.attention.sdpa_kernel).",
           sdpa_kernel="flash", needs_cuda=True, needs_half=True),
    Config("sdpa-efficient", "SDPA: memory-efficient kernel only", "attention",
           "SDPA restricted to its memory-efficient (xFormers-style) kernel.",
           sdpa_kernel="efficient", needs_cuda=True),
    Config("sdpa-math", "SDPA: math kernel only", "attention",
           "SDPA restricted to its unfused math reference kernel.", sdpa_kernel="math"),
    Config("flash-attention-2", "FlashAttention-2", "attention",
           "Tri Dao's flash-attn package through attn_implementation='flash_attention_2'.",
           attn="flash_attention_2", needs_cuda=True, needs_half=True, needs=("flash-attn",)),
    Config("flash-attention-3", "FlashAttention-3 (Hopper)", "attention",
           "flash-attn's Hopper kernels (the flash_attn_3 package built from its hopper/ folder) through "
           "attn_implementation='flash_attention_3'; sm_90 only.",
           attn="flash_attention_3", needs_cuda=True, needs_half=True, needs=("flash-attn-3",)),
    Config("bettertransformer", "BetterTransformer", "attention",
           "optimum's to_bettertransformer() fast path.", bettertransformer=True,
           needs=("optimum",),
           retired="retired upstream: BetterTransformer was removed in optimum 2.0 and needs "
                   "transformers<4.49; its decoder fast path lives on as SDPA (run sdpa)"),
    Config("bnb-8bit", "bitsandbytes LLM.int8", "quantization",
           "8-bit weights with outlier decomposition (load_in_8bit).", quant="int8",
           needs=("bitsandbytes",)),
    Config("bnb-4bit", "bitsandbytes 4-bit (fp4)", "quantization",
           "4-bit float weights (load_in_4bit, bnb_4bit_quant_type='fp4').", quant="fp4",
           needs=("bitsandbytes",)),
    Config("bnb-nf4", "bitsandbytes NF4", "quantization",
           "4-bit NormalFloat weights (bnb_4bit_quant_type='nf4').", quant="nf4",
           needs=("bitsandbytes",)),
    Config("bnb-nf4-double-quant", "bitsandbytes NF4 + double quantization", "quantization",
           "NF4 with quantized quantization constants (bnb_4bit_use_double_quant=True).",
           quant="nf4-dq", needs=("bitsandbytes",)),
    Config("static-cache", "Static KV cache + torch.compile", "compile",
           "generate(cache_implementation='static'): a fixed-size KV cache, the forward compiled "
           "by torch.compile (CUDA graphs on GPU).", static_cache=True),
    Config("compiled-decode", "Compiled decode step (CUDA graph)", "compile",
           "Static KV cache; prefill once, then the whole decode step (forward + token choice on "
           "the device) compiled with torch.compile and captured once as a CUDA graph, one replay a "
           "token, no host sync per token beyond streaming (the same step uncaptured on CPU).",
           compiled_decode=True),
    Config("flash-attention-2+compiled-decode", "FlashAttention-2 decoding + compiled decode step", "combination",
           "The compiled decode step (static cache, CUDA graph) with attention through flash-attn's kv-cache "
           "kernel (split-KV flash decoding): each step reads only the filled cache positions.",
           attn="flash_attention_2", compiled_decode=True, needs_cuda=True, needs_half=True, needs=("flash-attn",)),
    Config("tensor-parallel", "Tensor parallel (one process per GPU)", "parallel",
           "Every decoder layer's linear weights sliced over the GPUs by the model's own tensor-parallel "
           "plan (attention heads and MLP columns; plain tensors, gpt-fast style), one process per GPU "
           "through torch.distributed (NCCL), one all-reduce after attention and one after the MLP.",
           tensor_parallel=True),
    Config("tensor-parallel+static-cache", "Tensor parallel + static KV cache + torch.compile", "parallel",
           "tensor-parallel with generate(cache_implementation='static'), the forward compiled by "
           "torch.compile on every rank.", tensor_parallel=True, static_cache=True),
    Config("ort-cuda", "ONNX Runtime (CUDA)", "onnxruntime",
           "Optimum ORTModelForCausalLM on CUDAExecutionProvider with IO binding, fp16 export.",
           backend="onnxruntime", attn=None, provider="CUDAExecutionProvider", needs_cuda=True,
           needs=("optimum-onnx",)),
    Config("ort-tensorrt", "ONNX Runtime (TensorRT)", "onnxruntime",
           "Optimum ORTModelForCausalLM on TensorrtExecutionProvider, fp16 export.",
           backend="onnxruntime", attn=None, provider="TensorrtExecutionProvider", needs_cuda=True,
           needs=("optimum-onnx",)),
    Config("ort-cpu", "ONNX Runtime (CPU)", "onnxruntime",
           "Optimum ORTModelForCausalLM on CPUExecutionProvider, fp32 export.",
           backend="onnxruntime", attn=None, provider="CPUExecutionProvider",
           needs=("optimum-onnx",)),
    Config("bnb-4bit+flash-attention-2", "4-bit (fp4) + FlashAttention-2", "combination",
           "The guide's combination: load_in_4bit with attn_implementation='flash_attention_2'.",
           attn="flash_attention_2", quant="fp4", needs_cuda=True, needs_half=True,
           needs=("bitsandbytes", "flash-attn")),
    Config("bnb-8bit+flash-attention-2", "LLM.int8 + FlashAttention-2", "combination",
           "The guide's combination: load_in_8bit with attn_implementation='flash_attention_2'.",
           attn="flash_attention_2", quant="int8", needs_cuda=True, needs_half=True,
           needs=("bitsandbytes", "flash-attn")),
    Config("bnb-4bit+sdpa-flash", "4-bit (fp4) + SDPA flash kernel", "combination",
           "The guide's 'combine optimizations' example: 4-bit weights, SDPA restricted to flash.",
           quant="fp4", sdpa_kernel="flash", needs_cuda=True, needs_half=True,
           needs=("bitsandbytes",)),
)



def _torchao(name: str, key: str, label: str, description: str, **requires: object) -> tuple[Config, Config]:
    """A torchao weight quantization and the same weights under the compiled decode step."""
    needs = ("torchao",) + tuple(requires.pop("needs", ()))  # type: ignore[arg-type]
    plain = Config(name, f"torchao {label}", "quantization", f"torchao {description} Quantized at load "
                   "(transformers' TorchAoConfig) or in place (synthetic weights); lm_head and embeddings "
                   "stay in the model dtype.", torchao=key, needs=needs, **requires)  # type: ignore[arg-type]
    compiled = Config(f"{name}+compiled-decode", f"torchao {label} + compiled decode", "combination",
                      f"torchao {description} Run by the compiled decode step (CUDA graph).",
                      torchao=key, compiled_decode=True, needs=needs, **requires)  # type: ignore[arg-type]
    return plain, compiled


_FLOAT8 = (8, 9)  # float8 matmuls and Triton's fp8 conversions: Ada / Hopper and newer
_TORCHAO: tuple[Config, ...] = (
    *_torchao("torchao-int8wo", "int8wo", "int8 weight-only",
              "int8 weights, one symmetric scale per output row (Int8WeightOnlyConfig); the matmul "
              "dequantizes, and under compile fuses into one int8-reading GEMV."),
    *_torchao("torchao-int4wo", "int4wo-g128", "int4 weight-only (group 128)",
              "int4 weights, a bf16 scale and zero point per group of 128 (Int4WeightOnlyConfig, "
              "tile_packed_to_4d: the tinygemm kernel of torch itself); bf16 on CUDA only.",
              needs_cuda=True, needs_dtype="bf16", min_capability=(8, 0)),
    *_torchao("torchao-int4wo-g64", "int4wo-g64", "int4 weight-only (group 64)",
              "int4 weights, a bf16 scale and zero point per group of 64 (tinygemm, as torchao-int4wo "
              "with finer groups: more accurate, 2x the scales).",
              needs_cuda=True, needs_dtype="bf16", min_capability=(8, 0)),
    *_torchao("torchao-int4wo-preshuffled", "int4wo-g128-preshuffled", "int4 weight-only (group 128, MSLK)",
              "int4 weights in groups of 128, preshuffled for MSLK's bf16i4bf16_shuffled kernel "
              "(needs the mslk-cuda package); an A/B against tinygemm.",
              needs_cuda=True, needs_dtype="bf16", min_capability=(9, 0), needs=("mslk-cuda",)),
    *_torchao("torchao-int4wo-gemlite", "uint4wo-g128-gemlite", "int4 weight-only (group 128, gemlite)",
              "uint4 weights bit-packed with a scale and zero point per group of 128, multiplied by "
              "gemlite's Triton GEMV kernels (torchao's prototype UIntxWeightOnlyConfig); an A/B "
              "against tinygemm at batch-1 decode.",
              needs_cuda=True, needs_dtype="bf16", min_capability=(8, 0), needs=("gemlite",)),
    *_torchao("torchao-float8wo", "float8wo", "float8 weight-only",
              "float8 (e4m3) weights with one scale per output row (Float8WeightOnlyConfig); the "
              "matmul dequantizes to the model dtype.", min_capability=_FLOAT8),
    *_torchao("torchao-float8dq", "float8dq", "float8 dynamic (weights + activations)",
              "float8 (e4m3) weights and activations quantized on the fly per row "
              "(Float8DynamicActivationFloat8WeightConfig, PerRow): float8 tensor-core matmuls; "
              "Hopper/Ada only.", needs_cuda=True, needs_dtype="bf16", min_capability=_FLOAT8),
)

REGISTRY: dict[str, Config] = {c.name: c for c in _ENTRIES + _TORCHAO}
FAMILIES: tuple[str, ...] = ("attention", "quantization", "compile", "onnxruntime", "parallel", "combination")


class UnknownConfigError(ValueError):
    pass


def get(name: str) -> Config:
    try:
        return REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(name), REGISTRY, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownConfigError(
            f"unknown configuration {str(name)[:60]!r}; {hint}`python -m arena configs` lists all {len(REGISTRY)}"
        ) from None


def parse_names(text: str | list[str]) -> list[str]:
    """'eager, sdpa' or ['eager','sdpa'] -> validated, de-duplicated names, in order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names: list[str] = []
    for item in items:
        name = item.strip()
        if not name:
            continue
        get(name)
        if name not in names:
            names.append(name)
    if not names:
        raise UnknownConfigError(f"no configuration given; valid: {', '.join(REGISTRY)}")
    return names


def run_dtype(config: Config, dtype: str) -> str:
    """The dtype a configuration really runs in: ONNX exports are fp16 on GPU, fp32 on CPU."""
    if config.backend == "onnxruntime":
        return "fp16" if config.needs_cuda else "fp32"
    return dtype


def placement_blocker(config: Config, placement: Placement | None) -> str | None:
    """Why `config` cannot run with this GPU choice / max_memory split (arena/models/placement.py), or
    None. Only transformers on PyTorch can be spread by accelerate's device_map; a configuration
    that needs the whole model on one device is refused, never run on one device unasked."""
    if config.tensor_parallel:
        if placement is not None and placement.max_memory:
            return ("tensor parallel shards every layer over the GPUs in gpus; max_memory budgets apply to "
                    "device_map splits")
        return None
    if placement is None or not placement.asked:
        return None
    if config.backend == "onnxruntime":
        if placement.mapped:
            return ("cannot be split over devices: ONNX Runtime runs the whole model on one execution "
                    "provider (GPUs and max_memory apply to the PyTorch configurations)")
        if config.needs_cuda:
            return "GPU choice applies to the PyTorch configurations; ONNX Runtime here runs on GPU 0 only"
        return None
    if placement.mapped and config.compiled_decode:
        return ("cannot be split over devices: the compiled decode step is captured as one CUDA graph "
                "and needs the whole model on one device")
    if placement.mapped and config.static_cache:
        return ("cannot be split over devices: the static cache's compiled forward (CUDA graphs on a GPU) "
                "needs the whole model on one device")
    if placement.mapped and config.bettertransformer:
        return "cannot be split over devices: to_bettertransformer() is not supported with a device_map"
    return None


def tensor_parallel_world(plat: Platform, placement: Placement | None) -> int | str:
    """How many ranks a tensor-parallel run has here (the GPUs in `gpus`, else every GPU), or why
    it cannot run. On a machine without CUDA only the developer switch ARENA_TP_CPU_WORLD (gloo
    ranks on the CPU, for tests) runs it."""
    gpus = placement.gpus if placement is not None else ()
    if not plat.has_cuda:
        cpu_world = os.environ.get(TP_CPU_WORLD_ENV, "")
        if cpu_world.isdigit() and int(cpu_world) >= 2 and not gpus:
            return int(cpu_world)
        return "needs at least 2 CUDA GPUs (one process per GPU through NCCL); this machine has none"
    if gpus and len(gpus) < 2:
        return f"needs at least 2 GPUs in gpus (got {','.join(map(str, gpus))})"
    world = len(gpus) or plat.gpu_count
    if world < 2:
        return f"needs at least 2 CUDA GPUs (one process per GPU through NCCL); this machine has {world}"
    return world


@lru_cache(maxsize=1)
def efficient_kernel_has_gqa() -> bool:
    """Does this torch's memory-efficient SDPA kernel take grouped-query attention (enable_gqa)?
    torch 2.11 does not (only flash, cuDNN and math did; the kernel choice then fails with "No
    available kernel"); later releases added it and say so in scaled_dot_product_attention's docs."""
    import torch

    doc = torch.nn.functional.scaled_dot_product_attention.__doc__ or ""
    return "Memory-efficient attention also supports GQA" in " ".join(doc.split())


def rolling_window(model_config: Any) -> int | None:
    """The shortest sliding (or chunked) attention window of the model's layers, as transformers'
    StaticCache reads the config to choose its layers; None when every layer attends to all."""
    layer_types = getattr(model_config, "layer_types", None)
    sliding = getattr(model_config, "sliding_window", None)
    chunk = getattr(model_config, "attention_chunk_size", None)
    if layer_types is not None:
        windows = [sliding if t == "sliding_attention" else chunk if t == "chunked_attention" else None
                   for t in layer_types]
    else:
        windows = [sliding if sliding is not None else chunk]
    windows = [w for w in windows if w]
    return min(windows) if windows else None


def model_blocker(config: Config, model_config: Any, positions: int | None = None) -> str | None:
    """Why `config` cannot run this model (its transformers config) for a run of `positions` cache
    positions (prompt + new tokens), where the model alone says so: tensor parallelism needs the
    architecture's tensor-parallel plan (Falcon and GPT-2 have none); the compiled decode step
    cannot run past a sliding window; SDPA's memory-efficient kernel cannot take grouped-query
    attention in some torch releases."""
    if model_config is None:
        return None
    if config.tensor_parallel and not getattr(model_config, "base_model_tp_plan", None):
        kind = getattr(model_config, "model_type", "this model")
        return f"{kind} has no tensor-parallel plan (base_model_tp_plan) in this transformers version"
    window = rolling_window(model_config) if config.compiled_decode and positions else None
    if window and positions > window:
        # Past its window transformers' sliding static cache rolls itself and counts positions in a
        # Python int: host state that a captured graph does not replay (it would attend wrong slots).
        return (f"the compiled decode step cannot run past this model's {window:,}-token sliding window "
                f"(this run needs {positions:,} positions: prompt + new tokens); shorten them or run "
                f"sdpa or static-cache")
    if config.sdpa_kernel != "efficient":
        return None
    heads = getattr(model_config, "num_attention_heads", None)
    kv = getattr(model_config, "num_key_value_heads", None) or heads
    if heads and kv and kv < heads and not efficient_kernel_has_gqa():
        import torch

        return (f"SDPA's memory-efficient kernel cannot run grouped-query attention in torch "
                f"{torch.__version__.split('+')[0]} (this model: {heads} query heads share {kv} key/value "
                f"heads); run sdpa or sdpa-flash")
    return None


def availability(config: Config, dtype: str, plat: Platform | None = None,
                 placement: Placement | None = None, model_config: Any = None,
                 positions: int | None = None) -> Availability:
    """Can `config` run here in `dtype` (already resolved), on `placement` when one is asked, for
    the model whose transformers config is `model_config` when given, over `positions` cache
    positions (prompt + new tokens) when given? If not, a one-line reason."""
    plat = plat or platform()
    if config.retired:
        legacy = (
            plat.has("optimum")
            and version_tuple(plat.packages.get("optimum")) < (2,)
            and version_tuple(plat.packages.get("transformers")) < (4, 49)
        )
        if not legacy:
            return Availability(False, config.retired)
    if config.needs_cuda and not plat.has_cuda:
        return Availability(False, "needs a CUDA GPU")
    for dist in config.needs:
        if dist == "optimum-onnx":
            if not plat.ort_providers:
                return Availability(False, "onnxruntime is not installed")
            if not plat.has("optimum-onnx"):
                return Availability(False, "optimum-onnx is not installed")
        elif not plat.has(dist):
            return Availability(False, f"{dist} is not installed")
    if config.needs_half and dtype not in HALF_DTYPES:
        return Availability(False, f"needs fp16/bf16 (run dtype is {dtype})")
    if config.needs_dtype and dtype != config.needs_dtype:
        return Availability(False, f"needs {config.needs_dtype} (run dtype is {dtype})")
    if config.min_capability and plat.has_cuda and plat.capability and plat.capability < config.min_capability:
        need, have = ".".join(map(str, config.min_capability)), ".".join(map(str, plat.capability))
        return Availability(False, f"needs compute capability {need} or newer (this GPU has {have})")
    if dtype == "bf16" and plat.has_cuda and not plat.bf16_supported:
        return Availability(False, "bf16 is not supported by this GPU")
    if config.provider and config.provider not in plat.ort_providers:
        return Availability(False, f"{config.provider} is not in onnxruntime's providers")
    if config.provider == "TensorrtExecutionProvider" and not plat.tensorrt_loadable:
        return Availability(False, "TensorRT libraries (libnvinfer) are not installed")
    if config.attn == "flash_attention_2" and plat.capability and plat.capability < (8, 0):
        return Availability(False, "FlashAttention-2 needs an Ampere or newer GPU (compute 8.0+)")
    if config.attn == "flash_attention_3" and plat.capability and plat.capability[0] != 9:
        return Availability(False, "FlashAttention-3 needs a Hopper GPU (compute 9.0, e.g. H100)")
    for dist in config.needs:
        if dist in plat.import_errors:
            return Availability(False, import_reason(dist, plat))
    if config.tensor_parallel:
        world = tensor_parallel_world(plat, placement)
        if isinstance(world, str):
            return Availability(False, world)
    blocker = placement_blocker(config, placement) or model_blocker(config, model_config, positions)
    if blocker:
        return Availability(False, blocker)
    return Availability(True)


def import_reason(dist: str, plat: Platform) -> str:
    """One line for an installed package whose own import check fails here (Platform.import_errors):
    a CUDA mismatch when the CUDA it was built for shows and differs from torch's."""
    error = plat.import_errors[dist]
    built = built_cuda_major(error, plat.packages.get(dist))
    torch_major = (plat.torch_cuda or "").split(".")[0]
    if built and torch_major and built != torch_major:
        rebuild = " (rebuild it with scripts/build-flash-attn.sh)" if dist == "flash-attn" else ""
        return f"CUDA mismatch: {dist} was built for CUDA {built}, torch uses CUDA {plat.torch_cuda}{rebuild}: {error}"
    return f"{dist} is installed but its import check fails: {error}"


def availability_table(dtype: str = "auto") -> list[dict[str, object]]:
    """Every configuration with whether it can run here, for `configs` and the Environment tab."""
    resolved = resolve_dtype(dtype)
    rows = []
    for cfg in REGISTRY.values():
        av = availability(cfg, resolved)
        rows.append({
            "config": cfg.name, "label": cfg.label, "family": cfg.family,
            "available": av.ok, "reason": av.reason, "description": cfg.description,
        })
    return rows
