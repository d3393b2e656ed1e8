"""Optimum + ONNX Runtime: export once per model and dtype (cached under ARENA_HOME), then
ORTModelForCausalLM on the configuration's execution provider (IO binding on CUDA)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from arena.backends.base import Backend
from arena.core.paths import building, cache_dir, is_complete
from arena.models.sources import pretrained_path
from arena.models.spec import ModelSpec
from arena.models.synthetic import synthetic_checkpoint
from arena.models.tokenizers import load_tokenizer


def export_dir(spec: ModelSpec, dtype: str, device: str) -> Path:
    """The cached ONNX export of `spec` in `dtype`, made on first use."""
    from optimum.exporters.onnx import main_export

    key = spec.id.replace("/", "--").replace(":", "-")
    target = cache_dir("onnx") / f"{key}-{dtype}"
    if is_complete(target):
        return target
    source = (
        str(synthetic_checkpoint(spec, "fp32" if dtype == "fp32" else "fp16", device))
        if spec.synthetic else pretrained_path(spec)
    )
    kwargs = dict(task="text-generation-with-past", device=device, do_validation=False, trust_remote_code=False)
    if dtype == "fp16":
        kwargs["dtype"] = "fp16"
    with building(target, f"{spec.id} {dtype}") as tmp:
        try:
            main_export(source, tmp, **kwargs)
        except Exception as exc:
            # Optimum's post-processing (weight de-duplication) fails on some tied-embedding
            # models; the un-post-processed export is still a valid model.
            if "post-processing" not in str(exc).lower():
                raise
            shutil.rmtree(tmp)
            tmp.mkdir()
            main_export(source, tmp, no_post_process=True, **kwargs)
        if not spec.synthetic:
            load_tokenizer(spec).save_pretrained(tmp)
    return target


class OrtBackend(Backend):
    def load(self) -> None:
        from optimum.onnxruntime import ORTModelForCausalLM

        path = export_dir(self.spec, self.dtype, "cuda" if self.config.needs_cuda else "cpu")
        self.export_path = path
        on_gpu = self.config.needs_cuda
        self.model = ORTModelForCausalLM.from_pretrained(
            path,
            provider=self.config.provider,
            use_io_binding=on_gpu,
            use_cache=True,
        )
        # The session may silently fall back to the CPU provider when the requested one fails
        # to initialize: say so instead of reporting CPU numbers under a GPU name.
        used = self.model.model.get_providers()[0]
        if used != self.config.provider:
            raise RuntimeError(f"ONNX Runtime fell back to {used} ({self.config.provider} failed to start)")

    def input_device(self) -> torch.device:
        return torch.device("cuda" if self.config.needs_cuda else "cpu")

    def weights_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.export_path.iterdir() if f.suffix in (".onnx", ".onnx_data", ".data") or f.name.endswith("_data"))
