"""Optimum + ONNX Runtime: export once per model and dtype (cached under ARENA_HOME), then
ORTModelForCausalLM on the configuration's execution provider (IO binding on CUDA)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from arena.backends.base import Backend
from arena.core.paths import building, cache_dir, is_complete
from arena.models.gguf import has_gguf_copy
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
        if has_gguf_copy(target):  # an export made before the embedded tokenizer was mended
            (target / "tokenizer.model").unlink()
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
    applies = frozenset({"runtime"})  # the exported graph on its provider's own kernels

    export_path: Path | None = None

    def prepare(self) -> float:
        """The export, its own step: seconds it took (about 0 when the cache had it)."""
        t0 = time.perf_counter()
        self.export_path = export_dir(self.spec, self.dtype, "cuda" if self.config.needs_cuda else "cpu")
        if self.config.needs_cuda and torch.cuda.is_initialized():
            import gc

            gc.collect()
            torch.cuda.empty_cache()  # the exporter's PyTorch copy of the model is gone: give its memory back
        return time.perf_counter() - t0

    def load(self) -> None:
        from optimum.onnxruntime import ORTModelForCausalLM

        path = self.export_path or export_dir(self.spec, self.dtype, "cuda" if self.config.needs_cuda else "cpu")
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

    def nll_prompt_kwargs(self) -> dict:
        return {}  # the exported graph has no logits_to_keep input

    def nll_cache(self) -> None:
        return None  # ORTModelForCausalLM starts its own (empty) past

    def weights_bytes(self) -> int:
        return onnx_weights_bytes(self.export_path)


def onnx_weights_bytes(folder: Path) -> int:
    """Bytes of the initializers of the exported decoder, a tied embedding counted once (the
    export may keep the input embedding and the output projection, its transpose, as two)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model_file = next(f for f in sorted(folder.glob("*.onnx")) if "decoder_model" in f.name or f.name == "model.onnx")
    tensors = list(onnx.load(str(model_file), load_external_data=False).graph.initializer)

    def nbytes(t) -> int:
        return int(np.prod(t.dims, dtype=np.int64)) * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize

    total = sum(nbytes(t) for t in tensors)
    # Only the largest matrices can be a tied embedding: read just those (a 7B export is 13 GB).
    big = sorted((t for t in tensors if len(t.dims) == 2), key=lambda t: -nbytes(t))[:3]
    arrays = [numpy_helper.to_array(t, base_dir=str(folder)) for t in big]
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            if a.size == b.size and a.dtype == b.dtype and (
                    (a.shape == b.shape and np.array_equal(a, b)) or (a.shape == b.T.shape and np.array_equal(a, b.T))):
                total -= b.nbytes
    return int(total)
