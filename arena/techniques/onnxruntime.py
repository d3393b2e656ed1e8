"""ONNX Runtime through Optimum's ORTModelForCausalLM (arena/backends/onnxruntime.py): the model
exported once, then run on one execution provider (CUDA, TensorRT or CPU).

Its limits: the provider must be in onnxruntime's list (onnxruntime-gpu lists CUDA and TensorRT
even on a machine without a GPU, so the row also needs CUDA), TensorRT's libraries must load, and
one provider runs the whole model on one device: no GPU choice or split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from arena.core.ending import Code, Why
from arena.techniques.base import Needs, Row, Site


@dataclass(frozen=True)
class OnnxRuntime:
    """A row's runtime when it is not transformers on PyTorch: the exported model on one ONNX
    Runtime execution provider."""

    provider: str  # "CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"

    kind: ClassVar[str] = "runtime"
    loop: ClassVar[str] = "onnxruntime"

    @property
    def on_gpu(self) -> bool:
        return self.provider != "CPUExecutionProvider"

    def requirements(self) -> Needs:
        # onnxruntime-gpu lists CUDA and TensorRT even on a machine without a GPU: the row needs one
        return Needs(("optimum-onnx",), cuda=self.on_gpu)


def conflict(config: Row) -> str | None:
    """Why `config` cannot run on ONNX Runtime, or None: the exported graph runs with the provider's
    own kernels, so no PyTorch technique would apply to it."""
    if config.runtime is None:
        return None
    others = [choice.kind for choice in config.choices if choice is not config.runtime]
    if others:
        return (f"ONNX Runtime runs the exported graph with {config.runtime.provider}'s own kernels; "
                f"its {' and '.join(others)} choice would not apply")
    return None


def run_dtype(config: Row, dtype: str) -> str:
    """The dtype the export runs in: fp16 on a GPU, fp32 on the CPU, whatever the run asked."""
    return "fp16" if config.runtime is not None and config.runtime.on_gpu else "fp32"


def blocker(config: Row, site: Site) -> str | None:
    """Why `config`'s ONNX Runtime provider cannot run at `site`, or None."""
    if config.runtime is None:
        return None
    plat = site.plat
    if config.provider not in plat.ort_providers:
        return f"{config.provider} is not in onnxruntime's providers"
    if config.provider == "TensorrtExecutionProvider" and not plat.tensorrt_loadable:
        return Why("TensorRT libraries (libnvinfer) are not installed", Code.NOT_INSTALLED)
    placement = site.placement
    if placement is None or not placement.asked:
        return None
    if placement.mapped:
        return ("cannot be split over devices: ONNX Runtime runs the whole model on one execution "
                "provider (GPUs and max_memory apply to the PyTorch configurations)")
    if config.runtime.on_gpu:
        return "GPU choice applies to the PyTorch configurations; ONNX Runtime here runs on GPU 0 only"
    return None
