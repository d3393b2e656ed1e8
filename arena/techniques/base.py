"""What every technique module shares: where a configuration is asked to run (`Site`), the
requirements a row or a quantization declares (installed packages, CUDA, dtype, compute
capability), and the interface of a weight-quantization library (`Quantizer`).

A technique is one module under arena/techniques/ that says what it needs installed, why it
cannot run on this platform or model (`blocker`), and how it changes a model. The registry
(arena/techniques/registry.py) lists rows that name techniques and asks each one in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from arena.core.ending import Code, Why
from arena.core.env import Platform, built_cuda_major
from arena.models.dtypes import HALF_DTYPES

if TYPE_CHECKING:
    import torch

    from arena.models.placement import Placement


class Choice(Protocol):
    """One technique's part of a row (attention.Attention, a Quantizer, compilation.Compile,
    parallel.TensorParallel, onnxruntime.OnnxRuntime): the row's slot it fills and its needs."""

    @property
    def kind(self) -> str: ...

    def requirements(self) -> Needs: ...


class Runtime(Choice, Protocol):
    """A row's runtime other than transformers on PyTorch (onnxruntime.OnnxRuntime)."""

    @property
    def provider(self) -> str: ...

    @property
    def on_gpu(self) -> bool: ...


class Speculative(Choice, Protocol):
    """A row's speculative decoding (speculative.Speculation): where its guesses come from."""

    @property
    def guesses(self) -> str: ...
    @property
    def draft(self) -> bool: ...


class Row(Protocol):
    """What a technique module reads of a registry row (registry.Config has it all): its choices
    and the read-only reads of the composition, typed here so that the modules the registry
    imports need not import the registry back."""

    @property
    def name(self) -> str: ...
    @property
    def attention(self) -> Choice | None: ...
    @property
    def quant(self) -> Quantizer | None: ...
    @property
    def compile(self) -> Choice | None: ...
    @property
    def parallel(self) -> Choice | None: ...
    @property
    def runtime(self) -> Runtime | None: ...
    @property
    def speculation(self) -> Speculative | None: ...
    @property
    def choices(self) -> tuple[Choice, ...]: ...
    @property
    def backend(self) -> str: ...
    @property
    def attn(self) -> str | None: ...
    @property
    def sdpa_kernel(self) -> str | None: ...
    @property
    def bettertransformer(self) -> bool: ...
    @property
    def compiled_decode(self) -> bool: ...
    @property
    def compiled(self) -> bool: ...
    @property
    def tensor_parallel(self) -> bool: ...
    @property
    def provider(self) -> str | None: ...
    @property
    def needs_cuda(self) -> bool: ...
    @property
    def retired(self) -> str | None: ...


@dataclass(frozen=True)
class Site:
    """Where a configuration is asked to run: the facts a technique's blocker reads."""

    plat: Platform
    dtype: str  # the run dtype, resolved (never "auto")
    placement: Placement | None = None  # a GPU choice or max_memory split, when one is asked
    model_config: Any = None  # the model's transformers config, when known
    positions: int | None = None  # cache positions of the run (prompt + new tokens), when known
    batch: int = 1  # rows per batch of the run
    synthetic: bool = False  # the model's weights are random (synthetic architectures)


@dataclass(frozen=True)
class Needs:
    """What a configuration needs from this machine (a row's own, merged with its quantization's)."""

    packages: tuple[str, ...] = ()  # distributions that must be installed
    cuda: bool = False
    half: bool = False  # fp16/bf16 only
    dtype: str | None = None  # this run dtype only
    min_capability: tuple[int, int] | None = None  # least CUDA compute capability, where on CUDA

    def merged(self, other: Needs) -> Needs:
        return Needs(tuple(dict.fromkeys(self.packages + other.packages)), self.cuda or other.cuda,
                     self.half or other.half, other.dtype or self.dtype,
                     max(filter(None, (self.min_capability, other.min_capability)), default=None))

    def blocker(self, site: Site) -> str | None:
        """The first unmet need, in one line (a `Why`: NEEDS_CUDA, NOT_INSTALLED, else the
        registry's UNSUPPORTED), or None. Import checks come later (`import_blocker`):
        a missing GPU or package says more than an import error."""
        plat, dtype = site.plat, site.dtype
        if self.cuda and not plat.has_cuda:
            return Why("needs a CUDA GPU", Code.NEEDS_CUDA)
        for dist in self.packages:
            if dist == "optimum-onnx" and not plat.ort_providers:
                return Why("onnxruntime is not installed", Code.NOT_INSTALLED)
            if not plat.has(dist):
                return Why(f"{dist} is not installed", Code.NOT_INSTALLED)
        if self.half and dtype not in HALF_DTYPES:
            return f"needs fp16/bf16 (run dtype is {dtype})"
        if self.dtype and dtype != self.dtype:
            return f"needs {self.dtype} (run dtype is {dtype})"
        if self.min_capability and plat.has_cuda and plat.capability and plat.capability < self.min_capability:
            need, have = ".".join(map(str, self.min_capability)), ".".join(map(str, plat.capability))
            return f"needs compute capability {need} or newer (this GPU has {have})"
        if dtype == "bf16" and plat.has_cuda and not plat.bf16_supported:
            return "bf16 is not supported by this GPU"
        return None

    def import_blocker(self, plat: Platform) -> str | None:
        """An installed package whose own import check fails here (Platform.import_errors)."""
        for dist in self.packages:
            if dist in plat.import_errors:
                return import_reason(dist, plat)
        return None


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


@dataclass(frozen=True)
class Quantizer:
    """A weight-quantization library, one instance per scheme (the registry's `Config.quant`).

    As transformers' HfQuantizer is to from_pretrained, a subclass is to the arena: what it needs
    installed (`library`, `needs`), why it cannot run here (`needs` and `blocker`), how it
    quantizes (`hf_config` while loading a checkpoint, or `quantize` on a model already built,
    e.g. synthetic weights that have no checkpoint), and the bytes its weights keep beside their
    own data (`state_bytes`, for the weights footprint). Subclasses: bitsandbytes.py, torchao.py.
    """

    scheme: str  # the library's name for this quantization ("nf4", "int4wo-g128", ...)
    needs: Needs = Needs()  # beyond `library`: kernel packages, CUDA, dtype, compute capability

    library: ClassVar[str] = ""  # the distribution the library installs as (tracked in every result)
    in_place: ClassVar[bool] = False  # quantize() works on a built model: synthetic weights need no checkpoint
    kind: ClassVar[str] = "quantization"  # the row's choice it fills (arena/techniques/registry.py)

    def requirements(self) -> Needs:
        return Needs((self.library,)).merged(self.needs)

    def technique(self) -> str:
        """The measuring path this scheme shares with others of its library (one key per reference
        loop of the fidelity check, arena/bench/stages.py): the library, unless a subclass splits it."""
        return self.library

    def blocker(self, site: Site) -> str | None:
        """Why this scheme cannot run at `site` beyond its declared needs, or None."""
        return None

    def hf_config(self, dtype: torch.dtype, cpu_offload: bool = False) -> Any:
        """transformers' quantization_config for from_pretrained (quantize while loading), or None
        where this library only quantizes a loaded model (then `quantize` runs after the load).
        `cpu_offload`: a GPU split that keeps some modules on the cpu (unquantized there)."""
        return None

    def quantize(self, model: torch.nn.Module) -> torch.nn.Module:
        """Quantize a loaded or built model's decoder linears (lm_head and embeddings stay)."""
        raise NotImplementedError(f"{type(self).__name__} quantizes only while loading (hf_config)")

    def state_bytes(self, tensor: torch.Tensor) -> int:
        """Bytes a quantized weight keeps beside its own data (scales, codes): 0 for most."""
        return 0
