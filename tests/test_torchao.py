"""torchao weight quantization (arena/techniques/torchao.py), for real on CPU: availability reasons,
the in-place path against transformers' TorchAoConfig path, the stored weight bytes, and torchao rows
in a run beside a baseline (agreement, NLL, a bandwidth limit from the real bytes)."""

from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from arena.core.env import platform
from arena.core.request import RunRequest
from arena.core.units import MiB
from arena.execute import runner
from arena.measure.footprint import weights_bytes
from arena.models.spec import ModelSpec
from arena.techniques import registry
from arena.techniques.attention import SDPA_MATH
from arena.techniques.torchao import TorchAo

TORCHAO = [name for name, c in registry.REGISTRY.items() if isinstance(c.quant, TorchAo)]


def _gpu(**changes):
    base = replace(platform(), has_cuda=True, gpu_name="Test GPU", capability=(9, 0), bf16_supported=True)
    return replace(base, **changes)


def test_a_sweep_group_over_a_torchao_quantization_is_refused_where_the_quantization_is():
    """A sweep pairs an attention row with a quantization row's quantizer: the pair needs what the
    quantization needs (int4: CUDA 8.0+, bf16), however the attention row alone would run."""
    from arena.sweep.plan import group_config

    group = group_config("sdpa", "torchao-int4wo")
    with_ao = {**platform().packages, "torchao": "0.18.0"}
    for plat, dtype, reason in ((replace(platform(), has_cuda=False), "fp32", "needs a CUDA GPU"),
                                (_gpu(packages=with_ao), "fp16", "needs bf16 (run dtype is fp16)"),
                                (_gpu(packages=with_ao, capability=(7, 5)), "bf16",
                                 "needs compute capability 8.0 or newer (this GPU has 7.5)"),
                                (_gpu(packages={**with_ao, "torchao": None}), "bf16", "torchao is not installed")):
        assert registry.availability(registry.get("sdpa"), dtype, plat).ok
        assert registry.availability(group, dtype, plat).reason == reason
    assert registry.availability(group, "bf16", _gpu(packages=with_ao)).ok


@pytest.mark.skipif(platform().has_cuda, reason="checks the reasons given on a machine without a GPU")
def test_cpu_runs_int8_and_float8_weight_only_and_says_why_not_the_rest():
    table = {row["config"]: row for row in registry.availability_table("auto")}
    for name in ("torchao-int8wo", "torchao-int8wo+compiled-decode", "torchao-float8wo"):
        assert table[name]["available"], (name, table[name]["reason"])
    for name in TORCHAO:
        if "int4" in name or "float8dq" in name:
            assert table[name]["reason"] == "needs a CUDA GPU", name


def test_on_a_gpu_torchao_rows_name_the_capability_dtype_or_package_they_lack():
    def why(name: str, dtype: str = "bf16", **plat) -> str:
        return registry.availability(registry.get(name), dtype, _gpu(**plat)).reason

    with_ao = {**platform().packages, "torchao": "0.18.0", "mslk-cuda": None}
    assert why("torchao-float8dq+compiled-decode", packages=with_ao) == ""
    assert why("torchao-float8dq", packages=with_ao, capability=(8, 0)) == \
        "needs compute capability 8.9 or newer (this GPU has 8.0)"
    assert "8.9" in why("torchao-float8wo+compiled-decode", packages=with_ao, capability=(8, 6))
    assert why("torchao-int4wo", packages=with_ao, capability=(8, 0)) == ""
    assert why("torchao-int4wo", "fp16", packages=with_ao) == "needs bf16 (run dtype is fp16)"
    assert why("torchao-int4wo-preshuffled+compiled-decode", packages=with_ao) == "mslk-cuda is not installed"
    assert why("torchao-int4wo-preshuffled", packages={**with_ao, "mslk-cuda": "1.1.0"}) == ""
    assert why("torchao-int8wo", packages={**with_ao, "torchao": None}) == "torchao is not installed"


def _llama() -> torch.nn.Module:
    """Linears dominate (as in a real model): 2 layers of hidden 256, MLP 512, vocab 256, untied."""
    cfg = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=256, tie_word_embeddings=False)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).eval()


def test_int8_weights_are_counted_as_stored_and_both_load_paths_agree(tmp_path):
    model = _llama()
    bf16 = weights_bytes(model)
    assert bf16 == model.get_memory_footprint()  # plain tensors: the same count as transformers'
    model.save_pretrained(tmp_path, safe_serialization=True)
    TorchAo("int8wo").quantize(model)
    # by hand: int8 data + an fp32 scale and an int8 zero point per output row, for every decoder
    # linear; lm_head, embeddings and norms stay bf16
    linears = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"]
    assert len(linears) == 14
    head = model.lm_head.weight
    assert type(head) is torch.nn.Parameter and head.dtype == torch.bfloat16
    by_hand = sum(m.out_features * m.in_features + m.out_features * (4 + 1) for m in linears)
    rest = sum(2 * p.numel() for n, p in model.named_parameters() if "proj" not in n)
    assert weights_bytes(model) == by_hand + rest + sum(b.numel() * b.element_size() for b in model.buffers())
    assert 0.45 < weights_bytes(model) / bf16 < 0.6
    assert model.get_memory_footprint() == bf16  # what a bf16-sized count would have said

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16, device_map={"": "cpu"},
                                                  quantization_config=TorchAo("int8wo").hf_config(torch.bfloat16)).eval()
    assert weights_bytes(loaded) == weights_bytes(model)
    assert type(loaded.lm_head.weight) is torch.nn.Parameter
    ids = torch.tensor([[5, 17, 99, 3, 42, 7]])
    kwargs = {"max_new_tokens": 12, "do_sample": False, "pad_token_id": 0, "eos_token_id": None}
    with torch.inference_mode():
        assert torch.equal(model.generate(ids, **kwargs), loaded.generate(ids, **kwargs))


def test_torchao_rows_run_beside_the_baseline_with_quality_and_their_real_bytes(store):
    req = RunRequest(model="synthetic:tiny-llama", prompt="", repeats=1, prompt_tokens=16, max_new_tokens=10,
                     configs=["eager", "torchao-int8wo", "torchao-int8wo+compiled-decode"], dtype="fp32",
                     isolation="inline")
    results = {r.config: r for r in runner.run(req, store=store)}
    eager = results["eager"]

    def bytes_per_step(r) -> float:  # what the bandwidth limit says one decode step reads (batch 1)
        return r.memory_bandwidth_gb_s * 1e9 / r.bandwidth_limit_tokens_per_s

    for name in ("torchao-int8wo", "torchao-int8wo+compiled-decode"):
        r = results[name]
        assert r.status == "ok", r.reason
        assert r.baseline == "eager" and r.token_agreement is not None and r.nll is not None
        assert r.weights_mb < 0.8 * eager.weights_mb  # int8 decoder linears
        # same model, dtype and lengths: the KV cache read is the same, so one step reads exactly the
        # weight bytes the int8 row saved fewer than eager's
        assert bytes_per_step(eager) - bytes_per_step(r) == pytest.approx((eager.weights_mb - r.weights_mb) * MiB)
    # the compiled decode step over int8 weights chooses the same tokens as the eager int8 model
    assert results["torchao-int8wo+compiled-decode"].token_ids == results["torchao-int8wo"].token_ids


def test_compiled_configurations_compile_under_one_flag_set_and_torchao_leaves_it_alone():
    import torch._inductor.config as inductor_config

    from arena.backends import make_backend

    spec = ModelSpec("synthetic", "tiny-llama")
    before = inductor_config.coordinate_descent_tuning
    for name, compiled in (("sdpa", False), ("compiled-decode", True), ("static-cache", True),
                           ("torchao-int8wo+compiled-decode", True), ("torchao-int8wo", False)):
        backend = make_backend(registry.get(name), spec, "fp32", "cpu")
        if name.startswith("torchao"):
            backend.load()  # quantize_ must not set process-wide flags (torchao's default would)
            assert inductor_config.coordinate_descent_tuning == before
        with backend.generation_context():
            assert inductor_config.coordinate_descent_tuning is compiled or not compiled and \
                inductor_config.coordinate_descent_tuning == before, name
        assert inductor_config.coordinate_descent_tuning == before
    # a kernel choice and the flags together: both apply inside the context, neither outside
    both = make_backend(replace(registry.get("compiled-decode"), attention=SDPA_MATH), spec, "fp32", "cpu")
    context = both.generation_context()
    assert inductor_config.coordinate_descent_tuning == before
    with context:
        assert inductor_config.coordinate_descent_tuning is True
        assert torch.backends.cuda.math_sdp_enabled() and not torch.backends.cuda.flash_sdp_enabled()
    assert inductor_config.coordinate_descent_tuning == before


def test_profile_summary_splits_decode_steps_into_kernel_time_and_gaps():
    from arena.bench.profile import summarize
    from arena.bench.tables import quant_verdict as verdict

    ms = 1_000_000
    dev = [("prefill_gemm", 0, 5 * ms), ("Memcpy DtoH (Device -> Pinned)", 5 * ms, 6 * ms)]
    for step in range(3):  # each step: 1 ms idle, two kernels (overlapping 0.5 ms), then its token copy
        t = 6 * ms + step * 4 * ms
        dev += [("gemv", t + ms, t + 3 * ms), ("norm", t + 2 * ms + ms // 2, t + 3 * ms),
                ("Memcpy DtoH (Device -> Pinned)", t + 3 * ms, t + 4 * ms)]
    host = [("cudaGraphLaunch", 6 * ms + step * 4 * ms, 6 * ms + step * 4 * ms + ms // 10) for step in range(3)]
    prof = summarize(dev, host)
    assert prof.steps == 3 and prof.per_step_ms == pytest.approx(4.0)
    # busy: gemv 2 ms + copy 1 ms (norm lies inside gemv) per step
    assert prof.kernel_per_step_ms == pytest.approx(3.0) and prof.gap_per_step_ms == pytest.approx(1.0)
    assert prof.top_kernels[0] == ("gemv", pytest.approx(2.0), 1)
    assert prof.top_host == [("cudaGraphLaunch", pytest.approx(0.1))]
    assert verdict("torchao-int8wo+compiled-decode", 1.3, 0.55) == "PASS"
    assert verdict("torchao-int8wo+compiled-decode", 1.2, 0.55).startswith("MISS")
    assert verdict("torchao-int4wo+compiled-decode", 1.6, 0.30) == "PASS"
    assert verdict("torchao-int4wo+compiled-decode", 1.4, 0.30).startswith("MISS")
    assert verdict("torchao-float8wo+compiled-decode", 1.4, 0.52) == ""
