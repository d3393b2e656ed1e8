"""Optimum + ONNX Runtime: export once per model and dtype (cached under ARENA_HOME), then
ORTModelForCausalLM on the configuration's execution provider (IO binding on CUDA)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from arena import models
from arena.backends.common import Backend
from arena.paths import cache_dir

_COMPLETE = ".arena-complete"


def export_dir(spec: models.ModelSpec, dtype: str, device: str) -> Path:
    """The cached ONNX export of `spec` in `dtype`, made on first use."""
    from optimum.exporters.onnx import main_export

    key = spec.id.replace("/", "--").replace(":", "-")
    target = cache_dir("onnx") / f"{key}-{dtype}"
    if (target / _COMPLETE).is_file():
        return target
    source = (
        str(models.synthetic_checkpoint(spec, "fp32" if dtype == "fp32" else "fp16", device))
        if spec.synthetic else models.pretrained_path(spec)
    )
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    kwargs = dict(task="text-generation-with-past", device=device, do_validation=False, trust_remote_code=False)
    if dtype == "fp16":
        kwargs["dtype"] = "fp16"
    try:
        main_export(source, tmp, **kwargs)
    except Exception as exc:
        # Optimum's post-processing (weight de-duplication) fails on some tied-embedding
        # models; the un-post-processed export is still a valid model.
        if "post-processing" not in str(exc).lower():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        main_export(source, tmp, no_post_process=True, **kwargs)
    if not spec.synthetic:
        tok = models.load_tokenizer(spec)
        tok.save_pretrained(tmp)
    (tmp / _COMPLETE).write_text(f"{spec.id} {dtype}", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
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
