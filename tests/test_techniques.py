"""Adding a quantization library is one module plus registry rows (docs/architecture.md: "Adding a technique").

This file is that module: a tiny fake library, `RoundToGrid`, registered from here and nowhere
else, is listed by `python -m arena configs`, refused with its reason where it cannot run, run
through the real runner on CPU (a synthetic model quantized in place, a saved one after loading)
and swept by `python -m arena sweep` — each through the command line's own entry point."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from arena.core.env import platform
from arena.core.units import MiB
from arena.techniques import registry
from arena.techniques.attention import SDPA_FLASH
from arena.techniques.base import Needs, Quantizer, Site
from arena.ui.cli import main
from tests.localmodel import small_local_model


@dataclass(frozen=True)
class RoundToGrid(Quantizer):
    """Each decoder linear's weights rounded to 2**bits levels per group of `group` inputs, one scale
    per group kept beside the weight (fake quantization: the weights stay in the model dtype)."""

    bits: int = 4
    group: int = 32

    library = "numpy"  # the distribution the library installs as (every install has numpy)
    in_place = True  # quantize() works on a built model: synthetic weights need no checkpoint

    def blocker(self, site: Site) -> str | None:
        config = site.model_config
        for size in (getattr(config, "hidden_size", 0), getattr(config, "intermediate_size", 0)):
            if size % self.group:
                return f"round-to-grid needs layer widths in whole groups of {self.group} (this model has {size})"
        return None

    def quantize(self, model: torch.nn.Module) -> torch.nn.Module:
        head = model.get_output_embeddings()
        levels = 2 ** (self.bits - 1) - 1
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.Linear) and module is not head:
                    w = module.weight
                    groups = w.reshape(w.shape[0], -1, self.group)
                    scale = groups.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / levels
                    w.copy_(((groups / scale).round() * scale).reshape(w.shape))
                    w.grid_scale = scale.squeeze(-1)
        return model

    def state_bytes(self, tensor: torch.Tensor) -> int:
        scale = getattr(tensor, "grid_scale", None)
        return scale.numel() * scale.element_size() if scale is not None else 0


ROWS = (
    registry.Config("grid-int4", "Round-to-grid int4 (fake)", "quantization",
                    "int4 levels per group of 32 inputs.", quant=RoundToGrid("int4")),
    registry.Config("grid-int4-g48", "Round-to-grid int4, groups of 48 (fake)", "quantization",
                    "int4 levels per group of 48 inputs.", quant=RoundToGrid("int4-g48", group=48)),
    registry.Config("grid-int8-cuda", "Round-to-grid int8 on CUDA (fake)", "quantization",
                    "int8 levels per group of 32 inputs, CUDA only.",
                    quant=RoundToGrid("int8-cuda", Needs(cuda=True), bits=8)),
)


@pytest.fixture
def fake_library(monkeypatch):
    """The rows added for this test only: the registry's own table is put back afterwards."""
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    registry.add(*ROWS)


def _cli(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_a_library_added_from_one_module_is_listed_with_its_reasons(fake_library, capsys):
    rows = {row["config"]: row for row in json.loads(_cli(capsys, "configs", "--json"))}
    assert rows["grid-int4"]["available"] and rows["grid-int4"]["family"] == "quantization"
    assert rows["grid-int4-g48"]["available"]  # no model named yet: its blocker needs one
    assert rows["grid-int8-cuda"]["reason"] == ("" if platform().has_cuda else "needs a CUDA GPU")
    with pytest.raises(ValueError, match="already in the registry"):
        registry.add(ROWS[0])
    with pytest.raises(ValueError, match="a quantization row is its quantizer alone"):
        # a sweep would pair only the quantizer with its attention rows: nothing else may ride on the row
        registry.add(registry.Config("grid-x", "x", "quantization", "x", quant=RoundToGrid("x"), attention=SDPA_FLASH))


def test_a_library_added_from_one_module_runs_is_refused_and_is_swept(fake_library, capsys, tmp_path):
    out = tmp_path / "run.json"
    _cli(capsys, "run", "--model", "synthetic:tiny-llama", "--configs", "eager,grid-int4,grid-int4-g48,grid-int8-cuda",
         "--max-new-tokens", "6", "--repeats", "1", "--dtype", "fp32", "--inline", "--no-store", "--json", str(out))
    by = {r["config"]: r for r in json.loads(out.read_text())}
    eager, grid = by["eager"], by["grid-int4"]
    assert grid["status"] == "ok" and len(grid["token_ids"]) == 6 and grid["token_agreement"] is not None
    # quantized in place, its footprint counting one fp32 scale per 32 inputs of each decoder linear:
    # tiny-llama's 2 layers hold q and o (64x64), k and v (32x64: 2 of 4 heads), gate and up (128x64), down (64x128)
    scales = 2 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 128 * 64) // 32
    assert (grid["weights_mb"] - eager["weights_mb"]) * MiB == pytest.approx(4 * scales)
    assert grid["env"]["packages"]["numpy"]  # the library's version is recorded with the result
    assert by["grid-int4-g48"]["status"] == "unavailable"
    assert by["grid-int4-g48"]["reason"] == "round-to-grid needs layer widths in whole groups of 48 (this model has 64)"
    if not platform().has_cuda:
        assert (by["grid-int8-cuda"]["status"], by["grid-int8-cuda"]["reason"]) == ("unavailable", "needs a CUDA GPU")

    # a saved model: loaded as it is, then quantized (the library passes no quantization_config)
    saved = small_local_model(tmp_path / "saved")
    _cli(capsys, "run", "--model", str(saved), "--prompt", "w1 w2 w3 w4", "--configs", "eager,grid-int4",
         "--max-new-tokens", "4", "--repeats", "1", "--dtype", "fp32", "--inline", "--no-store", "--json", str(out))
    by = {r["config"]: r for r in json.loads(out.read_text())}
    assert by["grid-int4"]["status"] == "ok", by["grid-int4"]["reason"]
    assert by["grid-int4"]["weights_mb"] > by["eager"]["weights_mb"]  # its scales, counted

    swept = tmp_path / "sweep.json"
    _cli(capsys, "sweep", "--model", "synthetic:tiny-llama", "--attn", "eager,sdpa", "--quant", "none,grid-int4",
         "--batch-sizes", "1", "--seq-lens", "16", "--padding", "0", "--repeats", "1", "--warmup", "0",
         "--dtype", "fp32", "--inline", "--no-store", "--json", str(swept))
    points = {r["config"]: r for r in json.loads(swept.read_text())}
    assert set(points) == {"eager", "sdpa", "grid-int4+eager", "grid-int4+sdpa"}
    assert all(p["status"] == "ok" for p in points.values()), {n: p["reason"] for n, p in points.items()}
    assert points["grid-int4+sdpa"]["label"] == "Round-to-grid int4 (fake) + PyTorch SDPA"
    for attn in ("eager", "sdpa"):  # the sweep's pair carries the quantizer: its scales are in the weights
        assert (points[f"grid-int4+{attn}"]["weights_mb"] - points[attn]["weights_mb"]) * MiB == pytest.approx(4 * scales)
