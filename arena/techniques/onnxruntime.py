"""ONNX Runtime through Optimum's ORTModelForCausalLM (arena/backends/onnxruntime.py): the model
exported once, then run on one execution provider (CUDA, TensorRT or CPU).

Its limits: the provider must be in onnxruntime's list (onnxruntime-gpu lists CUDA and TensorRT
even on a machine without a GPU, so the row also needs CUDA), TensorRT's libraries must load, and
one provider runs the whole model on one device: no GPU choice or split.
"""

from __future__ import annotations

from arena.core.ending import Code, Why
from arena.techniques.base import Row, Site


def run_dtype(config: Row, dtype: str) -> str:
    """The dtype the export runs in: fp16 on a GPU, fp32 on the CPU, whatever the run asked."""
    return "fp16" if config.needs_cuda else "fp32"


def blocker(config: Row, site: Site) -> str | None:
    """Why `config`'s ONNX Runtime provider cannot run at `site`, or None."""
    if config.backend != "onnxruntime":
        return None
    plat = site.plat
    if config.provider and config.provider not in plat.ort_providers:
        return f"{config.provider} is not in onnxruntime's providers"
    if config.provider == "TensorrtExecutionProvider" and not plat.tensorrt_loadable:
        return Why("TensorRT libraries (libnvinfer) are not installed", Code.NOT_INSTALLED)
    placement = site.placement
    if placement is None or not placement.asked:
        return None
    if placement.mapped:
        return ("cannot be split over devices: ONNX Runtime runs the whole model on one execution "
                "provider (GPUs and max_memory apply to the PyTorch configurations)")
    if config.needs_cuda:
        return "GPU choice applies to the PyTorch configurations; ONNX Runtime here runs on GPU 0 only"
    return None
