from dataclasses import replace

import pytest

from arena.core.env import platform
from arena.models.dtypes import resolve_dtype
from arena.techniques import registry


def test_registry_has_the_guides_configurations():
    for name in ["eager", "sdpa", "sdpa-flash", "sdpa-efficient", "sdpa-math", "flash-attention-2",
                 "bettertransformer", "bnb-8bit", "bnb-4bit", "bnb-nf4", "bnb-nf4-double-quant",
                 "static-cache", "ort-cuda", "ort-tensorrt", "ort-cpu", "bnb-4bit+flash-attention-2",
                 "bnb-8bit+flash-attention-2", "bnb-4bit+sdpa-flash"]:
        assert name in registry.REGISTRY
    assert {c.family for c in registry.REGISTRY.values()} <= set(registry.FAMILIES)


def test_parse_names_rejects_unknown_and_lists_valid():
    assert registry.parse_names("eager, sdpa,eager") == ["eager", "sdpa"]
    with pytest.raises(registry.UnknownConfigError) as err:
        registry.parse_names("eager,warp-drive")
    assert "warp-drive" in str(err.value) and "sdpa-math" in str(err.value)


@pytest.mark.skipif(platform().has_cuda, reason="checks the reasons given on a machine without a GPU")
def test_cpu_availability_reasons():
    table = {row["config"]: row for row in registry.availability_table("auto")}
    for name in ["eager", "sdpa", "sdpa-math", "bnb-8bit", "bnb-4bit", "bnb-nf4", "static-cache", "ort-cpu"]:
        assert table[name]["available"], (name, table[name]["reason"])
    for name in ["sdpa-flash", "sdpa-efficient", "flash-attention-2", "ort-cuda", "ort-tensorrt",
                 "bnb-4bit+flash-attention-2", "bnb-8bit+flash-attention-2", "bnb-4bit+sdpa-flash"]:
        assert not table[name]["available"]
        assert table[name]["reason"] == "needs a CUDA GPU"
    assert "retired upstream" in table["bettertransformer"]["reason"]
    assert "SDPA" in table["bettertransformer"]["reason"]


def _gpu_platform(**changes):
    base = platform()
    gpu = replace(base, has_cuda=True, gpu_name="Test GPU", capability=(9, 0), bf16_supported=True,
                  ort_providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
                  tensorrt_loadable=False)
    return replace(gpu, **changes)


def test_gpu_reasons_dtype_packages_and_tensorrt():
    gpu = _gpu_platform(packages={**platform().packages, "flash-attn": None})
    assert resolve_dtype("auto", gpu) == "bf16"
    assert resolve_dtype("auto", replace(gpu, bf16_supported=False)) == "fp16"
    fa2 = registry.get("flash-attention-2")
    assert registry.availability(fa2, "fp32", gpu).reason == "flash-attn is not installed"
    with_fa = replace(gpu, packages={**gpu.packages, "flash-attn": "2.8.3"})
    assert registry.availability(fa2, "bf16", with_fa).ok
    assert "needs fp16/bf16" in registry.availability(fa2, "fp32", with_fa).reason
    assert "Ampere" in registry.availability(fa2, "fp16", replace(with_fa, capability=(7, 5))).reason
    trt = registry.availability(registry.get("ort-tensorrt"), "fp16", gpu)
    assert not trt.ok and "libnvinfer" in trt.reason
    assert registry.availability(registry.get("ort-cuda"), "fp16", gpu).ok
    assert registry.availability(registry.get("sdpa-flash"), "bf16", gpu).ok
    assert not registry.availability(registry.get("sdpa-flash"), "fp32", gpu).ok
    assert registry.availability(registry.get("sdpa-efficient"), "fp32", gpu).ok


def test_onnx_runs_in_its_export_dtype():
    assert registry.run_dtype(registry.get("ort-cuda"), "bf16") == "fp16"
    assert registry.run_dtype(registry.get("ort-cpu"), "bf16") == "fp32"
    assert registry.run_dtype(registry.get("sdpa"), "bf16") == "bf16"


def test_backends_apply_the_kernel_choice_and_the_static_cache():
    """The registry's sdpa_kernel and static_cache reach the torch backend (a regression once
    dropped them silently: the sdpa-* configurations ran plain SDPA)."""
    import contextlib

    import torch

    from arena.backends import make_backend
    from arena.models.spec import ModelSpec

    spec = ModelSpec("synthetic", "tiny-llama")
    # Inside each configuration's context torch's own switches show the one kernel allowed.
    switches = {"flash": torch.backends.cuda.flash_sdp_enabled, "efficient": torch.backends.cuda.mem_efficient_sdp_enabled,
                "math": torch.backends.cuda.math_sdp_enabled}
    for name, allowed in (("sdpa-flash", "flash"), ("sdpa-efficient", "efficient"), ("sdpa-math", "math")):
        with make_backend(registry.get(name), spec, "fp32", "cpu").generation_context():
            assert {k for k, on in switches.items() if on()} == {allowed}, name
    assert all(on() for on in switches.values())  # and the choice ends with the context
    # On CPU there is no memory-efficient kernel: under sdpa-efficient attention cannot run at all.
    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(RuntimeError), make_backend(registry.get("sdpa-efficient"), spec, "fp32", "cpu").generation_context():
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    plain = make_backend(registry.get("sdpa"), spec, "fp32", "cpu").generation_context()
    assert isinstance(plain, contextlib.nullcontext)
    kwargs = make_backend(registry.get("static-cache"), spec, "fp32", "cpu").extra_generate_kwargs(8)
    assert kwargs["cache_implementation"] == "static"
    assert make_backend(registry.get("sdpa"), spec, "fp32", "cpu").extra_generate_kwargs(8) == {}
