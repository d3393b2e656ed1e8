"""The compiled decode step (arena/backends/compiled_decode.py) and its limit (arena/techniques/
compilation.py), for real on CPU: a tiny synthetic Llama, the embedded default and small saved
Mistrals, in fp32."""

import pytest
import torch

from arena.backends import make_backend
from arena.backends.base import Sampling
from arena.backends.compiled_decode import sample_on_device
from arena.core.request import RunRequest
from arena.execute import runner
from arena.measure.clocks import TokenClock
from arena.models.sources import load_config
from arena.models.spec import ModelSpec
from arena.models.tokenizers import encode_prompt
from arena.techniques import registry
from arena.techniques.attention import SDPA_MATH
from arena.techniques.compilation import rolling_window
from tests.localmodel import small_local_mistral

TINY = ModelSpec("synthetic", "tiny-llama")


def _loaded(spec: ModelSpec):
    backend = make_backend(registry.get("compiled-decode"), spec, "fp32", "cpu")
    backend.load()
    return backend


def test_compiled_decode_streams_every_token_and_reuses_its_cache():
    backend = _loaded(TINY)
    prompt = torch.tensor([encode_prompt(TINY, None, "", prompt_tokens=12)] * 2)
    streamed: list[int] = []
    clock = TokenClock(on_tokens=streamed.extend)
    clock.begin()
    out = backend.generate(prompt, 10, Sampling(), streamer=clock)
    assert out.shape == (2, 10) and torch.equal(out[0], out[1])
    assert streamed == out[0].tolist() and len(clock.stamps) == 10
    assert clock.stamps == sorted(clock.stamps) and clock.stamps[0] > clock.start
    # same shapes again: the same cache, reset; other lengths: a new one, same greedy prefix
    assert torch.equal(backend.generate(prompt, 10, Sampling()), out)
    assert torch.equal(backend.generate(prompt, 4, Sampling()), out[:, :4])


def test_flash_decoding_in_the_compiled_step_decodes_what_sdpa_does():
    """flash-attention-2+compiled-decode: attention through the arena::flash_decode op with the
    cache's filled length (here its CPU reference kernel; flash-attn's on CUDA) inside the compiled
    step, prefill included, gives the compiled step's own SDPA tokens."""
    from arena.backends.compiled_decode import FLASH_DECODE, use_flash_decode

    backend = _loaded(TINY)
    prompt = torch.tensor([encode_prompt(TINY, None, "", prompt_tokens=12)] * 2)
    sdpa = backend.generate(prompt, 10, Sampling())
    use_flash_decode(backend.model)
    backend.flash_decode = True
    backend._steps.clear()  # recompiled over the new attention
    torch._dynamo.reset()
    assert backend.model.config._attn_implementation == FLASH_DECODE
    assert torch.equal(backend.generate(prompt, 10, Sampling()), sdpa)



def test_the_sdpa_kernel_a_row_names_is_the_one_its_compiled_step_is_traced_with():
    """sdpa-flash+compiled-decode (CUDA) fixes SDPA's kernel when the step is traced, through the
    backend's generation context. On the CPU the same row with the math kernel shows it: the
    step's ATen graph (read through an AOT backend that keeps the graph, instead of inductor,
    whose attention pattern matcher would fuse the math back) has the math path's batched
    matmuls and no fused attention, where compiled-decode's has the fused kernel; the tokens
    agree."""
    import dataclasses

    from torch._functorch.aot_autograd import aot_module_simplified

    row = registry.get("sdpa-flash+compiled-decode")
    assert row.sdpa_kernel == "flash" and row.compiled_decode and row.needs_cuda

    def traced_ops(config) -> tuple[set[str], list[int]]:
        ops: set[str] = set()

        def keep_graph(gm, inputs):
            def forward(graph, _):
                ops.update(str(n.target) for n in graph.graph.nodes if n.op == "call_function")
                return graph.forward
            return aot_module_simplified(gm, inputs, fw_compiler=forward)

        backend = make_backend(config, TINY, "fp32", "cpu")
        backend.load()
        backend._greedy_step = torch.compile(backend._greedy_step_eager, fullgraph=True, dynamic=False,
                                             backend=keep_graph)
        prompt = torch.tensor([encode_prompt(TINY, None, "", prompt_tokens=12)])
        return ops, backend.generate(prompt, 6, Sampling())[0].tolist()

    torch._dynamo.reset()
    default_ops, default_tokens = traced_ops(registry.get("compiled-decode"))
    torch._dynamo.reset()
    math_ops, math_tokens = traced_ops(dataclasses.replace(row, attention=SDPA_MATH))
    assert any("scaled_dot_product" in op for op in default_ops)
    assert not any("scaled_dot_product" in op for op in math_ops) and "aten.bmm.default" in math_ops
    assert math_tokens == default_tokens

def test_sampling_on_the_device_is_seeded_and_honours_top_p():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))
    # top-p so small that only the most likely token survives: sampling equals argmax
    narrow = Sampling(do_sample=True, top_p=1e-6)
    assert torch.equal(sample_on_device(logits, narrow), logits.argmax(dim=-1))
    wide = Sampling(do_sample=True, temperature=5.0)
    draws = set()
    for seed in range(20):
        torch.manual_seed(seed)
        draws.add(tuple(sample_on_device(logits, wide).tolist()))
    assert len(draws) > 1  # it really samples
    backend = _loaded(TINY)
    prompt = torch.tensor([encode_prompt(TINY, None, "", prompt_tokens=8)])
    a = backend.generate(prompt, 8, Sampling(do_sample=True, seed=3))
    b = backend.generate(prompt, 8, Sampling(do_sample=True, seed=3))
    assert torch.equal(a, b)
    # the sampling step feeds each chosen token back and moves the position on: with only the
    # most likely token left it decodes exactly what the greedy step does
    assert torch.equal(backend.generate(prompt, 8, narrow), backend.generate(prompt, 8, Sampling()))


@pytest.mark.parametrize("model,tokens", [("synthetic:tiny-llama", 24), ("default", 24)])
def test_compiled_decode_matches_eager_greedy_in_fp32(store, model, tokens):
    req = RunRequest(model=model, prompt="Name three colours of the rainbow.",
                     configs=["eager", "compiled-decode"], max_new_tokens=tokens, repeats=1,
                     prompt_tokens=20, dtype="fp32", isolation="inline")
    results = {r.config: r for r in runner.run(req, store=store)}
    fast = results["compiled-decode"]
    assert fast.status == "ok", fast.reason
    assert fast.token_agreement == 1.0 and fast.first_divergence is None
    assert fast.token_ids == results["eager"].token_ids and len(fast.token_ids) == tokens
    # and it really went through the compiled step, not a plain generate() that would agree anyway
    assert "scored by the same model uncompiled" in fast.nll_note


def test_compiled_decode_is_refused_past_a_sliding_window(store, tmp_path):
    # Mistral-7B's layers attend through a 4,096-token window; transformers' sliding static cache
    # rolls itself past it with host-side state a captured graph does not replay
    mistral = load_config(ModelSpec("synthetic", "mistral-7b"))
    assert rolling_window(mistral) == 4096
    assert rolling_window(load_config(TINY)) is None

    def why(name: str, positions: int) -> str:
        return registry.availability(registry.get(name), "fp32", model_config=mistral, positions=positions).reason

    assert "4,096-token sliding window" in why("compiled-decode", 4097) and "4,097 positions" in why("compiled-decode", 4097)
    assert why("compiled-decode", 4096) == "" and why("sdpa", 8192) == ""
    # through a real run on a small saved Mistral with a 16-token window: refused with that line
    # before anything loads; sdpa runs
    model = small_local_mistral(tmp_path / "mistral", sliding_window=16)
    req = RunRequest(model=str(model), prompt=" ".join(f"w{i}" for i in range(1, 21)),
                     configs=["sdpa", "compiled-decode"], max_new_tokens=8, repeats=1, dtype="fp32",
                     isolation="inline")
    results = {r.config: r for r in runner.run(req, store=store)}
    assert results["sdpa"].status == "ok"
    refused = results["compiled-decode"]
    assert refused.status == "unavailable" and "16-token sliding window" in refused.reason
    # inside its window the same model decodes through the compiled step exactly as sdpa does
    roomy = small_local_mistral(tmp_path / "mistral-64", sliding_window=64)
    req = RunRequest(model=str(roomy), prompt=req.prompt, configs=["sdpa", "compiled-decode"], max_new_tokens=8,
                     repeats=1, dtype="fp32", isolation="inline")
    results = {r.config: r for r in runner.run(req, store=store)}
    assert results["compiled-decode"].status == "ok", results["compiled-decode"].reason
    assert results["compiled-decode"].token_ids == results["sdpa"].token_ids
