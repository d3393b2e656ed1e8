"""Synthetic models without a checkpoint: built on meta, planned by accelerate, each weight
seeded by its name on its planned device (arena/models/seeded.py, synthetic.build_split)."""

from __future__ import annotations

import copy

import psutil
import pytest
import torch

from arena.core.request import RunRequest
from arena.execute import runner
from arena.execute.prepare import validate
from arena.models import placement, seeded
from arena.models.placement import GiB
from arena.models.sources import load_config
from arena.models.spec import parse_model
from arena.models.synthetic import SYNTHETIC_SEED, build_split, build_synthetic


def _rss() -> int:
    return psutil.Process().memory_info().rss


def test_llama_2_70b_is_built_and_planned_over_two_gpus_without_weights():
    spec = parse_model("synthetic:llama-2-70b")
    cfg = load_config(spec)
    before = _rss()
    model = seeded.build_meta(cfg, torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    assert 68e9 < n < 70e9  # 129 GiB of bf16 weights: none of it allocated
    assert all(p.is_meta for p in model.parameters()) and all(b.is_meta for b in model.buffers())
    device_map = placement.plan_model(model, torch.bfloat16, {0: 75 * GiB, 1: 75 * GiB})
    layers = placement.plan_summary(device_map, cfg.num_hidden_layers)
    assert layers == {"cuda:0": 40, "cuda:1": 40}
    assert device_map["model.embed_tokens"] == 0 and device_map["lm_head"] == 1
    # budgets that cannot hold it: refused with one line before any weight is made
    with pytest.raises(ValueError) as err:
        build_split(spec, torch.bfloat16, {0: 60 * GiB, 1: 60 * GiB}, None)
    assert str(err.value).startswith("the max_memory budgets (0=60GiB,1=60GiB) do not hold the whole model")
    assert "\n" not in str(err.value)
    assert _rss() - before < 1 * GiB


def _logits(model, ids):
    with torch.inference_mode():
        return model(ids).logits


@pytest.mark.parametrize("tie", [False, True])
def test_two_splits_of_one_synthetic_model_compute_identical_logits(tie, monkeypatch):
    spec = parse_model("synthetic:tiny-llama")
    cfg = copy.deepcopy(load_config(spec))  # load_config may hand out a shared object: never mutate it
    cfg.tie_word_embeddings = tie
    monkeypatch.setattr("arena.models.synthetic.load_config", lambda _spec: cfg)
    torch.manual_seed(123)  # must not matter: every weight has its own generator
    ids = torch.tensor([[1, 5, 17, 42, 99, 7]])
    whole = build_synthetic(spec, torch.float32, "cpu", "eager")
    split, device_map = build_split(spec, torch.float32, {"cpu": GiB}, "eager")
    assert set(device_map.values()) == {"cpu"}
    # a per-layer map made in reverse order, with accelerate's hooks on every block
    layered = seeded.build_meta(cfg, torch.float32, "eager")
    per_module = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.norm": "cpu", "lm_head": "cpu",
                  **{f"model.layers.{i}": "cpu" for i in range(cfg.num_hidden_layers)}}
    seeded.materialise(layered, per_module, seed=SYNTHETIC_SEED, reverse=True)
    from accelerate import dispatch_model

    layered = dispatch_model(layered, device_map=per_module, force_hooks=True)
    assert sum(hasattr(m, "_hf_hook") for m in layered.modules()) > cfg.num_hidden_layers
    reference = _logits(whole, ids)
    assert torch.isfinite(reference).all()
    assert torch.equal(_logits(split, ids), reference)
    assert torch.equal(_logits(layered, ids), reference)
    other = seeded.build_meta(cfg, torch.float32, "eager")
    seeded.materialise(other, {"": "cpu"}, seed=SYNTHETIC_SEED + 1)
    assert not torch.equal(_logits(other, ids), reference)
    # tied weights are one tensor; the rotary buffer is what the module's own __init__ computes
    assert (whole.lm_head.weight is whole.model.embed_tokens.weight) == tie
    fresh = type(whole.model.rotary_emb)(cfg)
    assert torch.allclose(fresh.inv_freq, whole.model.rotary_emb.inv_freq)
    # _init_weights' rule: norms 1, linear weights ~ N(0, initializer_range)
    assert torch.equal(whole.model.norm.weight, torch.ones_like(whole.model.norm.weight))
    std = whole.model.layers[0].mlp.up_proj.weight.std().item()
    assert abs(std - cfg.initializer_range) < 0.1 * cfg.initializer_range


def test_budgets_too_small_for_a_synthetic_model_fail_with_one_line():
    req = RunRequest(model="synthetic:llama-3.2-1b", configs=["eager"], prompt_tokens=8, max_new_tokens=2,
                     repeats=1, isolation="inline", max_memory="cpu=64MiB")
    before = _rss()
    [result] = runner.execute(validate(req))
    assert result.status == "failed"
    assert ("the max_memory budgets (cpu=64MiB) do not hold the whole model; the rest would go to disk, which is "
            "not supported" in result.reason), result.reason
    assert "\n" not in result.reason
    assert _rss() - before < 1 * GiB  # refused from the plan: the 1B weights were never made
