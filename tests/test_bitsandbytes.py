"""bitsandbytes (arena/techniques/bitsandbytes.py), for real on CPU: its weights footprint counts the
quantization constants each weight keeps beside its packed data."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

from arena.backends import make_backend
from arena.measure.footprint import weights_bytes
from arena.models.spec import ModelSpec
from arena.techniques import registry
from arena.techniques.bitsandbytes import BitsAndBytes
from tests.localmodel import small_local_model


def test_bitsandbytes_weights_count_their_quantization_constants(tmp_path):
    small_local_model(tmp_path)
    q4 = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.bfloat16)
    for config, constants in ((q4, lambda w: 4 * w.quant_state.absmax.numel() + 4 * w.quant_state.code.numel()),
                              (BitsAndBytesConfig(load_in_8bit=True), lambda w: 4 * w.SCB.numel())):
        model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16, device_map={"": "cpu"},
                                                     quantization_config=config)
        linears = [m for n, m in model.named_modules() if "proj" in n and hasattr(m, "weight")]
        extra = sum(constants(m.weight) for m in linears)
        assert extra > 0 and weights_bytes(model, BitsAndBytes("nf4").state_bytes) == model.get_memory_footprint() + extra


def test_a_bitsandbytes_configuration_reports_its_quantization_state_in_its_weights():
    spec = ModelSpec("synthetic", "tiny-llama")
    full = make_backend(registry.get("sdpa"), spec, "fp32", "cpu")
    full.load()
    linear = sum(m.weight.numel() for n, m in full.model.named_modules()
                 if isinstance(m, torch.nn.Linear) and "lm_head" not in n)
    q4 = make_backend(registry.get("bnb-nf4"), spec, "fp32", "cpu")
    q4.load()
    packed = int(q4.model.get_memory_footprint())
    # nf4 keeps one fp32 absmax per 64 weights beside the packed 4-bit weights (plus a 16-entry code each)
    assert q4.weights_bytes() - packed >= linear // 64 * 4
