"""Tensor parallelism with plain tensors (arena/backends/tp_shard.py), for real: two processes
joined by gloo on the CPU, a tiny random Llama split over them, against the same model whole."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket

import torch

from arena.backends.tp_shard import blocker, local_slice
from arena.models.sources import load_config
from arena.models.spec import ModelSpec

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=256, max_position_embeddings=128, tie_word_embeddings=True)


def _rank(rank: int, world: int, port: int, out) -> None:
    import torch.distributed as dist
    from transformers import LlamaConfig, LlamaForCausalLM

    from arena.backends.tp_shard import join_partial_sums, shard

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        config = LlamaConfig(**TINY)
        whole = LlamaForCausalLM(config).eval()
        split = LlamaForCausalLM(config).eval()  # other random weights: shard() must replace them all
        state = whole.state_dict()
        shard(split, lambda name, _p: state[name], rank, world, "cpu")
        hooks = join_partial_sums(split)
        ids = torch.randint(0, 256, (1, 12), generator=torch.Generator().manual_seed(1))
        kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
        with torch.no_grad():
            out.put((rank, {
                "max_logit_diff": float((whole(ids).logits - split(ids).logits).abs().max()),
                "tokens_equal": whole.generate(ids, **kw).tolist() == split.generate(ids, **kw).tolist(),
                "static_equal": whole.generate(ids, **kw).tolist()
                == split.generate(ids, cache_implementation="static", **kw).tolist(),
                "q_rows": split.model.layers[0].self_attn.q_proj.weight.shape[0],
                "down_cols": split.model.layers[0].mlp.down_proj.weight.shape[1],
                "tied": split.lm_head.weight is split.model.embed_tokens.weight,
                # each rank holds its slice only, not a view that keeps the full tensor alive
                "held_bytes": sum(p.untyped_storage().nbytes() for p in split.parameters()),
                "slice_bytes": sum(p.numel() * p.element_size() for p in split.parameters()),
                "hooks": hooks,
            }))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_compute_what_the_whole_model_computes():
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, 2, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(out.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    for rank in (0, 1):
        r = got[rank]
        assert r["max_logit_diff"] < 1e-4, r
        assert r["tokens_equal"] and r["static_equal"], r
        assert r["q_rows"] == 64 // 2 and r["down_cols"] == 128 // 2  # half the heads, half the MLP
        assert r["tied"] and r["hooks"] == 2 * 2  # o_proj and down_proj of each layer
        assert r["held_bytes"] == r["slice_bytes"], r


def test_slices_follow_the_style():
    w = torch.arange(24.0).view(4, 6)
    assert local_slice(w, "colwise", "weight", 1, 2).tolist() == w[2:].tolist()
    assert local_slice(w, "rowwise", "weight", 1, 2).tolist() == w[:, 3:].tolist()
    bias = torch.ones(4)
    assert local_slice(bias, "rowwise", "bias", 0, 2).sum() == 4  # added once, after the sum
    assert local_slice(bias, "rowwise", "bias", 1, 2).sum() == 0
    assert local_slice(w, None, "weight", 1, 2) is w  # replicated


def test_architectures_without_a_plan_or_uneven_splits_say_why():
    assert blocker(load_config(ModelSpec("synthetic", "llama-2-7b")), 2) is None
    assert "no tensor-parallel plan" in blocker(load_config(ModelSpec("synthetic", "falcon-7b")), 2)
    llama = load_config(ModelSpec("synthetic", "llama-2-7b"))
    assert "do not split evenly over 3 GPUs" in blocker(llama, 3)
