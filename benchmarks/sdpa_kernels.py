"""Which attention kernel actually runs: one forward pass of a Llama-2-7B-shaped model cut to
2 layers (random weights, bf16), with and without left padding, under each forced SDPA kernel,
profiled; prints the attention kernels CUDA launched (or the error). GPU only.

    python -m benchmarks.sdpa_kernels [--seq 4096] [--batch 2] [--model synthetic:llama-2-7b]
"""

from __future__ import annotations

import argparse
import contextlib


import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from arena.models.sources import load_config
from arena.models.spec import parse_model
from arena.sweep.plan import pad_lengths
from arena.sweep.worker import padded_batch

KERNELS = {"sdpa": None, "sdpa-flash": SDPBackend.FLASH_ATTENTION,
           "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION, "sdpa-math": SDPBackend.MATH}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="synthetic:llama-2-7b")
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM

    conf = load_config(parse_model(args.model)).__class__.from_dict(
        load_config(parse_model(args.model)).to_dict())
    for key in ("num_hidden_layers", "n_layer"):
        if hasattr(conf, key):
            setattr(conf, key, 2)  # attention kernels are the same in every layer
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(conf, dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    vocab = model.config.vocab_size
    for fraction in (0.0, 0.3):
        pads = pad_lengths(args.batch, args.seq, fraction)
        ids, mask, pos = (t.cuda() for t in padded_batch(args.batch, args.seq, pads, vocab, 0))
        for name, backend in KERNELS.items():
            ctx = sdpa_kernel(backend) if backend is not None else contextlib.nullcontext()
            try:
                with torch.inference_mode(), ctx, torch.profiler.profile(
                        activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                    model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
                    torch.cuda.synchronize()
                names = sorted({e.name for e in prof.events() if any(
                    k in e.name.lower() for k in ("flash", "fmha", "attention", "efficient", "cudnn", "softmax"))})
                print(f"padding {fraction:.1f}  {name:15s} ok: {'; '.join(n[:80] for n in names) or '(none matched)'}")
            except Exception as exc:
                print(f"padding {fraction:.1f}  {name:15s} error: {str(exc).splitlines()[0][:150]}")


if __name__ == "__main__":
    main()
