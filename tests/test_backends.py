"""Backends (arena/backends/): a configuration's techniques applied to a loaded model, and the
teacher-forced NLL every backend scores."""

from __future__ import annotations

import contextlib

import pytest
import torch

from arena.backends import make_backend
from arena.backends.base import Backend
from arena.models.spec import ModelSpec
from arena.techniques import registry

SPEC = ModelSpec("synthetic", "tiny-llama")


def test_backends_apply_the_kernel_choice_and_the_static_cache():
    """The registry's sdpa_kernel and static_cache reach the torch backend (a regression once
    dropped them silently: the sdpa-* configurations ran plain SDPA)."""
    # Inside each configuration's context torch's own switches show the one kernel allowed.
    switches = {"flash": torch.backends.cuda.flash_sdp_enabled, "efficient": torch.backends.cuda.mem_efficient_sdp_enabled,
                "math": torch.backends.cuda.math_sdp_enabled}
    for name, allowed in (("sdpa-flash", "flash"), ("sdpa-efficient", "efficient"), ("sdpa-math", "math")):
        with make_backend(registry.get(name), SPEC, "fp32", "cpu").generation_context():
            assert {k for k, on in switches.items() if on()} == {allowed}, name
    assert all(on() for on in switches.values())  # and the choice ends with the context
    # On CPU there is no memory-efficient kernel: under sdpa-efficient attention cannot run at all.
    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(RuntimeError), make_backend(registry.get("sdpa-efficient"), SPEC, "fp32", "cpu").generation_context():
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    plain = make_backend(registry.get("sdpa"), SPEC, "fp32", "cpu").generation_context()
    assert isinstance(plain, contextlib.nullcontext)
    kwargs = make_backend(registry.get("static-cache"), SPEC, "fp32", "cpu").extra_generate_kwargs(8)
    assert kwargs["cache_implementation"] == "static"
    assert make_backend(registry.get("sdpa"), SPEC, "fp32", "cpu").extra_generate_kwargs(8) == {}


def test_nll_is_chunked_and_equals_one_full_pass():
    backend = make_backend(registry.get("sdpa"), SPEC, "fp32", "cpu")
    backend.load()
    prompt, cont = list(range(5, 17)), list(range(30, 47))
    ids = torch.tensor([prompt + cont])
    with torch.inference_mode():
        logits = backend.model(input_ids=ids).logits[0, len(prompt) - 1:-1]
    full = float(torch.nn.functional.cross_entropy(logits.float(), torch.tensor(cont)))
    rows: list[int] = []
    hook = backend.model.get_output_embeddings().register_forward_hook(
        lambda mod, args, out: rows.append(args[0].reshape(-1, args[0].shape[-1]).shape[0]))
    assert backend.nll(prompt, cont, chunk=4) == pytest.approx(full, rel=1e-5)
    hook.remove()
    assert rows and max(rows) <= 4  # never the whole sequence x vocabulary at once
    # The generic path (through the KV cache, as ONNX Runtime scores) agrees too.
    generic, generic_leads = Backend.scores(backend, prompt, cont, chunk=5)
    assert generic == pytest.approx(full, rel=1e-4)
    # each position's lead: the scored token's logit over the best other one, from the same logits
    top2 = logits.float().topk(2, dim=-1)
    chosen = logits.float()[torch.arange(len(cont)), torch.tensor(cont)]
    best_other = torch.where(top2.indices[:, 0] == torch.tensor(cont), top2.values[:, 1], top2.values[:, 0])
    expected = (chosen - best_other).tolist()
    assert backend.scores(prompt, cont, chunk=4)[1] == pytest.approx(expected, abs=1e-3)
    assert generic_leads == pytest.approx(expected, abs=1e-3)
