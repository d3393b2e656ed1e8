from dataclasses import replace

import pytest

from arena import configs
from arena.env import platform


def test_registry_has_the_guides_configurations():
    for name in ["eager", "sdpa", "sdpa-flash", "sdpa-efficient", "sdpa-math", "flash-attention-2",
                 "bettertransformer", "bnb-8bit", "bnb-4bit", "bnb-nf4", "bnb-nf4-double-quant",
                 "static-cache", "ort-cuda", "ort-tensorrt", "ort-cpu", "bnb-4bit+flash-attention-2",
                 "bnb-8bit+flash-attention-2", "bnb-4bit+sdpa-flash"]:
        assert name in configs.REGISTRY
    assert {c.family for c in configs.REGISTRY.values()} <= set(configs.FAMILIES)


def test_parse_names_rejects_unknown_and_lists_valid():
    assert configs.parse_names("eager, sdpa,eager") == ["eager", "sdpa"]
    with pytest.raises(configs.UnknownConfigError) as err:
        configs.parse_names("eager,warp-drive")
    assert "warp-drive" in str(err.value) and "sdpa-math" in str(err.value)


@pytest.mark.skipif(platform().has_cuda, reason="checks the reasons given on a machine without a GPU")
def test_cpu_availability_reasons():
    table = {row["config"]: row for row in configs.availability_table("auto")}
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
    assert configs.resolve_dtype("auto", gpu) == "bf16"
    assert configs.resolve_dtype("auto", replace(gpu, bf16_supported=False)) == "fp16"
    fa2 = configs.get("flash-attention-2")
    assert configs.availability(fa2, "fp32", gpu).reason == "flash-attn is not installed"
    with_fa = replace(gpu, packages={**gpu.packages, "flash-attn": "2.8.3"})
    assert configs.availability(fa2, "bf16", with_fa).ok
    assert "needs fp16/bf16" in configs.availability(fa2, "fp32", with_fa).reason
    assert "Ampere" in configs.availability(fa2, "fp16", replace(with_fa, capability=(7, 5))).reason
    trt = configs.availability(configs.get("ort-tensorrt"), "fp16", gpu)
    assert not trt.ok and "libnvinfer" in trt.reason
    assert configs.availability(configs.get("ort-cuda"), "fp16", gpu).ok
    assert configs.availability(configs.get("sdpa-flash"), "bf16", gpu).ok
    assert not configs.availability(configs.get("sdpa-flash"), "fp32", gpu).ok
    assert configs.availability(configs.get("sdpa-efficient"), "fp32", gpu).ok


def test_onnx_runs_in_its_export_dtype():
    assert configs.run_dtype(configs.get("ort-cuda"), "bf16") == "fp16"
    assert configs.run_dtype(configs.get("ort-cpu"), "bf16") == "fp32"
    assert configs.run_dtype(configs.get("sdpa"), "bf16") == "bf16"


def test_backends_apply_the_kernel_choice_and_the_static_cache():
    """The registry's sdpa_kernel and static_cache reach the torch backend (a regression once
    dropped them silently: the sdpa-* configurations ran plain SDPA)."""
    import contextlib

    from torch.nn.attention import SDPBackend

    from arena.backends import make_backend
    from arena.models import ModelSpec

    spec = ModelSpec("synthetic", "tiny-llama")
    for name, backend in (("sdpa-flash", SDPBackend.FLASH_ATTENTION), ("sdpa-math", SDPBackend.MATH)):
        ctx = make_backend(configs.get(name), spec, "fp32", "cpu").generation_context()
        assert not isinstance(ctx, contextlib.nullcontext)
        from torch.nn.attention import sdpa_kernel

        assert type(ctx) is type(sdpa_kernel(backend))
    plain = make_backend(configs.get("sdpa"), spec, "fp32", "cpu").generation_context()
    assert isinstance(plain, contextlib.nullcontext)
    kwargs = make_backend(configs.get("static-cache"), spec, "fp32", "cpu").extra_generate_kwargs(8)
    assert kwargs["cache_implementation"] == "static"
    assert make_backend(configs.get("sdpa"), spec, "fp32", "cpu").extra_generate_kwargs(8) == {}
