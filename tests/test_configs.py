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


def test_parse_names_rejects_an_unknown_name_with_the_closest_ones_and_where_all_are_listed():
    assert registry.parse_names("eager, sdpa,eager") == ["eager", "sdpa"]
    with pytest.raises(registry.UnknownConfigError) as err:
        registry.parse_names("eager,sdpa-maths")
    assert "'sdpa-maths'" in str(err.value) and "did you mean sdpa-math" in str(err.value)
    with pytest.raises(registry.UnknownConfigError) as err:
        registry.parse_names("eager,warp-drive")
    assert "did you mean" not in str(err.value) and "python -m arena configs" in str(err.value)


@pytest.mark.skipif(platform().has_cuda, reason="checks the reasons given on a machine without a GPU")
def test_on_a_cpu_the_gpu_configurations_say_they_need_a_cuda_gpu():
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


def test_on_a_gpu_a_configuration_names_the_dtype_package_or_library_it_lacks():
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


def test_gqa_under_the_efficient_kernel_is_predicted_from_torch_itself():
    from transformers import LlamaConfig

    from arena.techniques.attention import efficient_kernel_has_gqa

    gqa = LlamaConfig(num_attention_heads=9, num_key_value_heads=3, hidden_size=576)
    mha = LlamaConfig(num_attention_heads=9, num_key_value_heads=9, hidden_size=576)

    def why(name: str, model_config: LlamaConfig) -> str:
        return registry.availability(registry.get(name), "bf16", _gpu_platform(), model_config=model_config).reason

    blocked = why("sdpa-efficient", gqa)
    assert (blocked == "") == efficient_kernel_has_gqa()
    if blocked:
        assert "grouped-query attention" in blocked and "9 query heads share 3" in blocked
    assert why("sdpa-efficient", mha) == ""
    assert why("sdpa-flash", gqa) == ""


def test_the_gqa_check_agrees_with_the_efficient_kernel_itself():
    """efficient_kernel_has_gqa asks torch's own kernel check (fake tensors, nothing allocated);
    on a GPU it must agree with running SDPA restricted to the memory-efficient kernel."""
    import torch

    from arena.techniques.attention import efficient_kernel_has_gqa, kernel_context

    if not torch.cuda.is_available():
        assert efficient_kernel_has_gqa() is False  # the kernel cannot run at all without CUDA
        pytest.skip("the memory-efficient kernel runs only on a CUDA GPU")
    q = torch.randn(1, 4, 8, 64, device="cuda", dtype=torch.float16)
    kv = torch.randn(1, 2, 8, 64, device="cuda", dtype=torch.float16)
    try:
        with kernel_context("efficient"):
            torch.nn.functional.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)
        runs = True
    except RuntimeError:
        runs = False
    assert efficient_kernel_has_gqa() is runs
