"""A configuration is a composition of technique choices (arena/techniques/registry.py): every pair
of choices from two families either runs through a backend that applies both, or is refused with
its reason when the row is built, before anything starts; none is silently reduced."""

from __future__ import annotations

import itertools

import pytest

from arena.backends import backend_class
from arena.bench import stages
from arena.techniques import attention, registry
from arena.techniques.base import Quantizer
from arena.techniques.bitsandbytes import BitsAndBytes
from arena.techniques.compilation import COMPILED_DECODE, STATIC_CACHE
from arena.techniques.onnxruntime import OnnxRuntime
from arena.techniques.parallel import TENSOR_PARALLEL
from arena.techniques.torchao import TorchAo

CHOICES = {  # Config field -> the choices of its family
    "attention": [attention.EAGER, attention.SDPA, attention.SDPA_FLASH, attention.SDPA_EFFICIENT,
                  attention.SDPA_MATH, attention.FLASH_ATTENTION_2, attention.FLASH_ATTENTION_3,
                  attention.BETTERTRANSFORMER],
    "quant": [BitsAndBytes("int8"), BitsAndBytes("nf4"), TorchAo("int8wo")],
    "compile": [STATIC_CACHE, COMPILED_DECODE],
    "parallel": [TENSOR_PARALLEL],
    "runtime": [OnnxRuntime("CPUExecutionProvider"), OnnxRuntime("CUDAExecutionProvider")],
}


def label(choice: object) -> str:
    if choice is attention.BETTERTRANSFORMER:
        return "bettertransformer"
    if isinstance(choice, attention.Attention):
        return "attention"
    return getattr(choice, "mode", None) or choice.kind  # a compile mode by its name


# The impossible pairs (by label), and nothing else.
IMPOSSIBLE = {
    *(frozenset({"runtime", other}) for other in ("attention", "bettertransformer", "quantization",
                                                  "static-cache", "compiled-decode", "parallel")),
    frozenset({"parallel", "quantization"}),
    frozenset({"parallel", "compiled-decode"}),
    frozenset({"parallel", "bettertransformer"}),
    frozenset({"compiled-decode", "bettertransformer"}),
}


def pairs():
    for (field_a, family_a), (field_b, family_b) in itertools.combinations(CHOICES.items(), 2):
        for a, b in itertools.product(family_a, family_b):
            choices = {field_a: a, field_b: b}
            if "attention" not in choices and "runtime" in choices:
                choices["attention"] = None  # the pair alone: no default attention beside a runtime
            yield frozenset({label(a), label(b)}), choices


def composed(choices: dict) -> registry.Config | str:
    """The row, or the reason it is refused."""
    try:
        return registry.Config("x", "x", "combination", "x", **choices)
    except registry.ImpossibleCombination as exc:
        return str(exc)


def test_every_pair_of_choices_is_run_whole_or_refused_with_its_reason():
    refused, silently_reduced = set(), []
    for key, choices in pairs():
        row = composed(choices)
        if isinstance(row, str):
            assert row.startswith("x: ") and len(row) > 40, row  # a reason, not just a refusal
            refused.add(key)
            continue
        applies = backend_class(row).applies  # the one backend that runs the row
        if any(choice.kind not in applies for choice in row.choices):
            silently_reduced.append((sorted(key), backend_class(row).__name__))
    assert silently_reduced == []
    assert refused == IMPOSSIBLE


def test_reasons_name_what_would_be_lost():
    assert "would be loaded unquantized" in composed({"parallel": TENSOR_PARALLEL, "quant": TorchAo("int8wo")})
    assert "static-cache" in composed({"parallel": TENSOR_PARALLEL, "compile": COMPILED_DECODE})
    assert "quantization choice would not apply" in composed(
        {"attention": None, "runtime": OnnxRuntime("CPUExecutionProvider"), "quant": BitsAndBytes("int8")})
    assert "names its attention" in composed({"attention": None})


def test_the_registry_refuses_an_impossible_row_before_anything_starts():
    with pytest.raises(registry.ImpossibleCombination, match="tensor-parallel\\+compiled-decode: tensor parallel"):
        registry.add(registry.Config("tensor-parallel+compiled-decode", "x", "combination", "x",
                                     parallel=TENSOR_PARALLEL, compile=COMPILED_DECODE))
    assert "tensor-parallel+compiled-decode" not in registry.REGISTRY


def test_every_row_is_run_by_the_loop_its_choices_name():
    loops = {name: backend_class(row).__name__ for name, row in registry.REGISTRY.items()}
    assert loops["tensor-parallel+static-cache"] == "TensorParallelBackend"
    assert loops["sdpa-flash+compiled-decode"] == loops["torchao-int4wo+compiled-decode"] == "CompiledDecodeBackend"
    assert loops["ort-cpu"] == "OrtBackend" and loops["bnb-4bit+sdpa-flash"] == "TorchBackend"
    for row in registry.REGISTRY.values():
        assert all(choice.kind in backend_class(row).applies for choice in row.choices), row.name


def test_a_row_needs_what_its_choices_need():
    fa2_4bit = registry.get("bnb-4bit+flash-attention-2").requirements()
    assert fa2_4bit.packages == ("bitsandbytes", "flash-attn") and fa2_4bit.cuda and fa2_4bit.half
    assert registry.get("ort-cpu").requirements().packages == ("optimum-onnx",)
    assert not registry.get("ort-cpu").needs_cuda and registry.get("ort-cuda").needs_cuda
    assert registry.get("sdpa-efficient").requirements().cuda and not registry.get("sdpa-efficient").requirements().half


def test_a_new_quantization_library_is_its_own_fidelity_key():
    """The fidelity stage keys a row by its quantizer's own measuring path: bitsandbytes by bits, any
    other library by its name (never labelled bitsandbytes)."""

    class Other(Quantizer):
        library = "other-lib"

    row = registry.Config("other-int4", "x", "quantization", "x", quant=Other("int4"))
    assert stages.technique(row) == "other-lib"
    assert stages.technique(registry.get("torchao-int8wo")) == "torchao"
    assert stages.technique(registry.get("bnb-8bit")) == "bitsandbytes 8-bit"
    assert stages.technique(registry.get("bnb-nf4")) == "bitsandbytes 4-bit"


def test_every_row_has_what_the_technique_modules_read():
    """base.Row (what attention, compilation, parallel and onnxruntime read of a row, typed without
    importing the registry) names only what every registry row has, its choices included."""
    from arena.techniques.base import Row

    members = [n for n in vars(Row) if not n.startswith("_")]
    assert {"attention", "runtime", "choices", "quant", "parallel", "compiled_decode"} <= set(members)
    missing = {cfg.name: [n for n in members if not hasattr(cfg, n)] for cfg in registry.REGISTRY.values()}
    assert {name: m for name, m in missing.items() if m} == {}
    for cfg in registry.REGISTRY.values():
        assert all(isinstance(choice.kind, str) and choice.requirements() is not None for choice in cfg.choices)
        if cfg.runtime is not None:
            assert isinstance(cfg.runtime.provider, str) and isinstance(cfg.runtime.on_gpu, bool)
