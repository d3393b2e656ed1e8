"""The configuration registry: a table of rows, each a composition of technique choices.

A configuration is data: its attention (`attention.Attention`), at most one weight quantization (a
`Quantizer`, arena/techniques/base.py), a compile mode (`compilation.Compile`), a parallel plan
(`parallel.TensorParallel`), a runtime other than transformers on PyTorch
(`onnxruntime.OnnxRuntime`) and speculative decoding (`speculative.Speculation`). Each choice is
owned by its technique module, which says what it needs from the machine, why it cannot run somewhere (`availability` asks them in turn), why it cannot be
combined with the rest of a row (`conflict`: the row is refused when it is built, before anything
starts, never reduced to what one backend can do), and how it changes a model; the backends apply
them. Adding a configuration is a row here; adding a quantization library is a module beside this
one and its rows (docs/architecture.md: "Adding a technique").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from arena.core.ending import Code, code_of
from arena.core.env import Platform, platform, track
from arena.models.dtypes import resolve_dtype
from arena.techniques import attention, compilation, onnxruntime, parallel, speculative
from arena.techniques.attention import (
    BETTERTRANSFORMER,
    EAGER,
    FLASH_ATTENTION_2,
    FLASH_ATTENTION_3,
    SDPA,
    SDPA_EFFICIENT,
    SDPA_FLASH,
    SDPA_MATH,
    Attention,
)
from arena.techniques.base import Needs, Quantizer, Site
from arena.techniques.bitsandbytes import BitsAndBytes
from arena.techniques.compilation import COMPILED_DECODE, STATIC_CACHE, Compile
from arena.techniques.onnxruntime import OnnxRuntime
from arena.techniques.parallel import TENSOR_PARALLEL, TensorParallel
from arena.techniques.parallel import TP_CPU_WORLD_ENV, tensor_parallel_world  # noqa: F401  (the runner's names)
from arena.techniques.speculative import Speculation
from arena.techniques.torchao import TorchAo

if TYPE_CHECKING:
    from arena.models.placement import Placement

Family = Literal["attention", "quantization", "compile", "onnxruntime", "parallel", "speculative", "combination"]
Loop = Literal["torch", "compiled-decode", "tensor-parallel", "onnxruntime"]


class ImpossibleCombination(ValueError):
    """A row whose technique choices cannot run together (the reason says why)."""


@dataclass(frozen=True)
class Config:
    name: str
    label: str
    family: Family
    description: str
    attention: Attention | None = SDPA  # None only where the runtime brings its own (ONNX Runtime)
    quant: Quantizer | None = None  # a weight quantization: bitsandbytes.py, torchao.py, ...
    compile: Compile | None = None  # STATIC_CACHE or COMPILED_DECODE (compilation.py)
    parallel: TensorParallel | None = None  # TENSOR_PARALLEL: one process per GPU (parallel.py)
    runtime: OnnxRuntime | None = None  # None: transformers on PyTorch
    speculation: Speculation | None = None  # speculative decoding: where guesses come from (speculative.py)

    def __post_init__(self) -> None:
        # each technique says what it cannot be combined with; any other two loops cannot run one row
        loops = {choice.loop for choice in self.choices if getattr(choice, "loop", None)}
        reason = (
            onnxruntime.conflict(self)
            or attention.conflict(self)
            or parallel.conflict(self)
            or compilation.conflict(self)
            or speculative.conflict(self)
            or (f"its choices need different generation loops ({' and '.join(sorted(loops))})" if len(loops) > 1 else None)
        )
        if reason:
            raise ImpossibleCombination(f"{self.name}: {reason}")

    @property
    def choices(self) -> tuple[Any, ...]:
        """The row's technique choices, each from its own module."""
        return tuple(c for c in (self.attention, self.quant, self.compile, self.parallel, self.runtime,
                                 self.speculation) if c is not None)

    @property
    def loop(self) -> Loop:
        """The generation loop that runs the row: the one its choices name (at most one, checked
        when the row is built), else transformers' generate() on PyTorch."""
        return next((c.loop for c in self.choices if getattr(c, "loop", None)), "torch")

    def requirements(self) -> Needs:
        """What this row needs from the machine: every choice's needs, merged."""
        needs = Needs()
        for choice in (self.quant, self.attention, self.compile, self.parallel, self.runtime):
            needs = needs.merged(choice.requirements()) if choice is not None else needs
        return needs

    # Reads of the composition, for the code that applies or reports it
    @property
    def backend(self) -> Literal["torch", "onnxruntime"]:
        return "onnxruntime" if self.runtime is not None else "torch"

    @property
    def attn(self) -> str | None:
        return self.attention.impl if self.attention else None

    @property
    def sdpa_kernel(self) -> str | None:
        return self.attention.kernel if self.attention else None

    @property
    def bettertransformer(self) -> bool:
        return bool(self.attention and self.attention.bettertransformer)

    @property
    def retired(self) -> str | None:
        """Why the row's technique no longer runs with the pinned stack (attention.retired: unless on a
        legacy stack), or None."""
        return self.attention.retired if self.attention else None

    @property
    def static_cache(self) -> bool:
        return self.compile == STATIC_CACHE

    @property
    def compiled_decode(self) -> bool:
        return self.compile == COMPILED_DECODE

    @property
    def compiled(self) -> bool:
        return self.compile is not None

    @property
    def tensor_parallel(self) -> bool:
        return self.parallel is not None

    @property
    def provider(self) -> str | None:
        return self.runtime.provider if self.runtime else None

    @property
    def needs_cuda(self) -> bool:
        return self.requirements().cuda

    @property
    def quantized(self) -> bool:
        return self.quant is not None


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""
    code: Code = Code.OK  # why not, for the program (arena/core/ending.py); `reason` is for people


BASELINE = "eager"

_ENTRIES: tuple[Config, ...] = (
    Config("eager", "Eager attention (baseline)", "attention",
           "transformers' plain PyTorch attention: matmul, softmax, matmul.", attention=EAGER),
    Config("sdpa", "PyTorch SDPA", "attention",
           "torch.nn.functional.scaled_dot_product_attention; PyTorch picks the kernel."),
    Config("sdpa-flash", "SDPA: flash kernel only", "attention",
           "SDPA restricted to its FlashAttention kernel (torch.nn.attention.sdpa_kernel).",
           attention=SDPA_FLASH),
    Config("sdpa-efficient", "SDPA: memory-efficient kernel only", "attention",
           "SDPA restricted to its memory-efficient (xFormers-style) kernel.",
           attention=SDPA_EFFICIENT),
    Config("sdpa-math", "SDPA: math kernel only", "attention",
           "SDPA restricted to its unfused math reference kernel.", attention=SDPA_MATH),
    Config("flash-attention-2", "FlashAttention-2", "attention",
           "Tri Dao's flash-attn package through attn_implementation='flash_attention_2'.",
           attention=FLASH_ATTENTION_2),
    Config("flash-attention-3", "FlashAttention-3 (Hopper)", "attention",
           "flash-attn's Hopper kernels (the flash_attn_3 package built from its hopper/ folder) through "
           "attn_implementation='flash_attention_3'; sm_90 only.",
           attention=FLASH_ATTENTION_3),
    Config("bettertransformer", "BetterTransformer", "attention",
           "optimum's to_bettertransformer() fast path.",
           attention=BETTERTRANSFORMER),
    Config("bnb-8bit", "bitsandbytes LLM.int8", "quantization",
           "8-bit weights with outlier decomposition (load_in_8bit).", quant=BitsAndBytes("int8")),
    Config("bnb-4bit", "bitsandbytes 4-bit (fp4)", "quantization",
           "4-bit float weights (load_in_4bit, bnb_4bit_quant_type='fp4').", quant=BitsAndBytes("fp4")),
    Config("bnb-nf4", "bitsandbytes NF4", "quantization",
           "4-bit NormalFloat weights (bnb_4bit_quant_type='nf4').", quant=BitsAndBytes("nf4")),
    Config("bnb-nf4-double-quant", "bitsandbytes NF4 + double quantization", "quantization",
           "NF4 with quantized quantization constants (bnb_4bit_use_double_quant=True).",
           quant=BitsAndBytes("nf4-dq")),
    Config("static-cache", "Static KV cache + torch.compile", "compile",
           "generate(cache_implementation='static'): a fixed-size KV cache, the forward compiled "
           "by torch.compile (CUDA graphs on GPU).", compile=STATIC_CACHE),
    Config("compiled-decode", "Compiled decode step (CUDA graph)", "compile",
           "Static KV cache; prefill once, then the whole decode step (forward + token choice on "
           "the device) compiled with torch.compile and captured once as a CUDA graph, one replay a "
           "token, no host sync per token beyond streaming (the same step uncaptured on CPU).",
           compile=COMPILED_DECODE),
    # The kernel SDPA uses inside the compiled step is fixed when the step is traced: by default the
    # first that fits (cuDNN's on Hopper in torch 2.11: 32 launches of ~7 us a step on the 7B shape,
    # 5% of the step); this row traces it with torch's FlashAttention kernel instead. (No math row:
    # inductor's attention pattern matcher turns the math path back into a fused SDPA call.)
    Config("sdpa-flash+compiled-decode", "SDPA flash kernel + compiled decode step", "combination",
           "The compiled decode step (static cache, CUDA graph) with SDPA restricted to its FlashAttention "
           "kernel when the step is traced (and in the prefill).", attention=SDPA_FLASH, compile=COMPILED_DECODE),
    Config("flash-attention-2+compiled-decode", "FlashAttention-2 decoding + compiled decode step", "combination",
           "The compiled decode step (static cache, CUDA graph) with attention through flash-attn's kv-cache "
           "kernel (split-KV flash decoding): each step reads only the filled cache positions.",
           attention=FLASH_ATTENTION_2, compile=COMPILED_DECODE),
    Config("tensor-parallel", "Tensor parallel (one process per GPU)", "parallel",
           "Every decoder layer's linear weights sliced over the GPUs by the model's own tensor-parallel "
           "plan (attention heads and MLP columns; plain tensors, gpt-fast style), one process per GPU "
           "through torch.distributed (NCCL), one all-reduce after attention and one after the MLP.",
           parallel=TENSOR_PARALLEL),
    Config("tensor-parallel+static-cache", "Tensor parallel + static KV cache + torch.compile", "parallel",
           "tensor-parallel with generate(cache_implementation='static'), the forward compiled by "
           "torch.compile on every rank.", parallel=TENSOR_PARALLEL, compile=STATIC_CACHE),
    Config("ort-cuda", "ONNX Runtime (CUDA)", "onnxruntime",
           "Optimum ORTModelForCausalLM on CUDAExecutionProvider with IO binding, fp16 export.",
           attention=None, runtime=OnnxRuntime("CUDAExecutionProvider")),
    Config("ort-tensorrt", "ONNX Runtime (TensorRT)", "onnxruntime",
           "Optimum ORTModelForCausalLM on TensorrtExecutionProvider, fp16 export.",
           attention=None, runtime=OnnxRuntime("TensorrtExecutionProvider")),
    Config("ort-cpu", "ONNX Runtime (CPU)", "onnxruntime",
           "Optimum ORTModelForCausalLM on CPUExecutionProvider, fp32 export.",
           attention=None, runtime=OnnxRuntime("CPUExecutionProvider")),
    Config("bnb-4bit+flash-attention-2", "4-bit (fp4) + FlashAttention-2", "combination",
           "The guide's combination: load_in_4bit with attn_implementation='flash_attention_2'.",
           attention=FLASH_ATTENTION_2, quant=BitsAndBytes("fp4")),
    Config("bnb-8bit+flash-attention-2", "LLM.int8 + FlashAttention-2", "combination",
           "The guide's combination: load_in_8bit with attn_implementation='flash_attention_2'.",
           attention=FLASH_ATTENTION_2, quant=BitsAndBytes("int8")),
    Config("bnb-4bit+sdpa-flash", "4-bit (fp4) + SDPA flash kernel", "combination",
           "The guide's 'combine optimizations' example: 4-bit weights, SDPA restricted to flash.",
           quant=BitsAndBytes("fp4"), attention=SDPA_FLASH),
)


def _torchao(name: str, scheme: str, label: str, description: str, **needs: object) -> tuple[Config, Config]:
    """A torchao weight quantization and the same weights under the compiled decode step."""
    quant = TorchAo(scheme, Needs(**needs))  # type: ignore[arg-type]
    plain = Config(name, f"torchao {label}", "quantization", f"torchao {description} Quantized at load "
                   "(transformers' TorchAoConfig) or in place (synthetic weights); lm_head and embeddings "
                   "stay in the model dtype.", quant=quant)
    compiled = Config(f"{name}+compiled-decode", f"torchao {label} + compiled decode", "combination",
                      f"torchao {description} Run by the compiled decode step (CUDA graph).",
                      quant=quant, compile=COMPILED_DECODE)
    return plain, compiled


_FLOAT8 = (8, 9)  # float8 matmuls and Triton's fp8 conversions: Ada / Hopper and newer
_TORCHAO: tuple[Config, ...] = (
    *_torchao("torchao-int8wo", "int8wo", "int8 weight-only",
              "int8 weights, one symmetric scale per output row (Int8WeightOnlyConfig); the matmul "
              "dequantizes, and under compile fuses into one int8-reading GEMV."),
    *_torchao("torchao-int4wo", "int4wo-g128", "int4 weight-only (group 128)",
              "int4 weights, a bf16 scale and zero point per group of 128 (Int4WeightOnlyConfig, "
              "tile_packed_to_4d: the tinygemm kernel of torch itself); bf16 on CUDA only.",
              cuda=True, dtype="bf16", min_capability=(8, 0)),
    *_torchao("torchao-int4wo-g64", "int4wo-g64", "int4 weight-only (group 64)",
              "int4 weights, a bf16 scale and zero point per group of 64 (tinygemm, as torchao-int4wo "
              "with finer groups: more accurate, 2x the scales).",
              cuda=True, dtype="bf16", min_capability=(8, 0)),
    *_torchao("torchao-int4wo-preshuffled", "int4wo-g128-preshuffled", "int4 weight-only (group 128, MSLK)",
              "int4 weights in groups of 128, preshuffled for MSLK's bf16i4bf16_shuffled kernel "
              "(needs the mslk-cuda package); an A/B against tinygemm.",
              cuda=True, dtype="bf16", min_capability=(9, 0), packages=("mslk-cuda",)),
    *_torchao("torchao-int4wo-gemlite", "uint4wo-g128-gemlite", "int4 weight-only (group 128, gemlite)",
              "uint4 weights bit-packed with a scale and zero point per group of 128, multiplied by "
              "gemlite's Triton GEMV kernels (torchao's prototype UIntxWeightOnlyConfig); an A/B "
              "against tinygemm at batch-1 decode.",
              cuda=True, dtype="bf16", min_capability=(8, 0), packages=("gemlite",)),
    *_torchao("torchao-float8wo", "float8wo", "float8 weight-only",
              "float8 (e4m3) weights with one scale per output row (Float8WeightOnlyConfig); the "
              "matmul dequantizes to the model dtype.", min_capability=_FLOAT8),
    *_torchao("torchao-float8dq", "float8dq", "float8 dynamic (weights + activations)",
              "float8 (e4m3) weights and activations quantized on the fly per row "
              "(Float8DynamicActivationFloat8WeightConfig, PerRow): float8 tensor-core matmuls; "
              "Hopper/Ada only.", cuda=True, dtype="bf16", min_capability=_FLOAT8),
)

REGISTRY: dict[str, Config] = {}
FAMILIES: tuple[str, ...] = ("attention", "quantization", "compile", "onnxruntime", "parallel", "speculative",
                             "combination")


def add(*configs: Config) -> None:
    """Add rows to the table (a name already there is refused). Every result records the version
    of each package a row needs (arena/core/env.py: `track`)."""
    for config in configs:
        if config.name in REGISTRY:
            raise ValueError(f"configuration {config.name!r} is already in the registry")
        if config.family not in FAMILIES:
            raise ValueError(f"{config.name}: unknown family {config.family!r}; valid: {', '.join(FAMILIES)}")
        bare = Config(config.name, config.label, config.family, config.description, quant=config.quant)
        if config.family == "quantization" and (config.quant is None or config != bare):
            # a sweep pairs the row's quantizer with each attention row: nothing else of it travels
            raise ValueError(f"{config.name}: a quantization row is its quantizer alone (Config.quant); "
                             f"put what it needs in the quantizer's Needs")
    for config in configs:
        REGISTRY[config.name] = config
    track(*(dist for config in configs for dist in config.requirements().packages))


# Speculative decoding (arena/techniques/speculative.py): on sdpa, lossless under greedy decoding.
_SPECULATIVE: tuple[Config, ...] = (
    Config("prompt-lookup", "Prompt lookup decoding", "speculative",
           "generate(prompt_lookup_num_tokens=10): up to 10 guessed tokens copied from where the last two "
           "tokens occurred in the prompt, verified in one forward pass; no second model.",
           speculation=Speculation("prompt-lookup")),
    Config("assisted", "Assisted generation (draft model)", "speculative",
           "generate(assistant_model=draft): a smaller draft model (the request's draft_model; default the "
           "embedded SmolLM2-135M, a sanity draft) proposes tokens, the model verifies them in one forward pass; "
           "a draft with another vocabulary goes through assistant_tokenizer.",
           speculation=Speculation("assisted")),
    Config("assisted+prompt-lookup", "Assisted generation + prompt lookup", "speculative",
           "A draft model and prompt lookup together, where transformers combines them.",
           speculation=Speculation("assisted+prompt-lookup")),
)

add(*_ENTRIES, *_TORCHAO, *_SPECULATIVE)


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
    return onnxruntime.run_dtype(config, dtype) if config.backend == "onnxruntime" else dtype


def availability(config: Config, dtype: str, plat: Platform | None = None,
                 placement: Placement | None = None, model_config: Any = None,
                 positions: int | None = None, batch: int = 1, synthetic: bool = False) -> Availability:
    """Can `config` run here in `dtype` (already resolved), on `placement` when one is asked, for
    the model whose transformers config is `model_config` when given, over `positions` cache
    positions (prompt + new tokens) when given, at `batch` rows, on `synthetic` weights or not? If
    not, a one-line reason: the first technique of the row that refuses, asked in this order, with
    its code (the reason's own where it carries one, else the check's)."""
    site = Site(plat or platform(), dtype, placement, model_config, positions, batch, synthetic)
    needs = config.requirements()
    checks = (
        (lambda: attention.retired(config, site.plat), Code.RETIRED),
        (lambda: needs.blocker(site), Code.UNSUPPORTED),  # a GPU, packages, dtype, compute capability
        (lambda: onnxruntime.blocker(config, site), Code.UNSUPPORTED),
        (lambda: attention.blocker(config, site), Code.UNSUPPORTED),
        (lambda: needs.import_blocker(site.plat), Code.UNSUPPORTED),
        (lambda: parallel.blocker(config, site), Code.UNSUPPORTED),
        (lambda: compilation.blocker(config, site), Code.UNSUPPORTED),
        (lambda: config.quant.blocker(site) if config.quant else None, Code.UNSUPPORTED),
        (lambda: speculative.blocker(config, site), Code.UNSUPPORTED),
    )
    for check, code in checks:
        reason = check()
        if reason:
            return Availability(False, str(reason), code_of(reason, code))
    return Availability(True)


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
