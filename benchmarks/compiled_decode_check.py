"""A quick check of compiled-decode's own CUDA graph (and of the same step on CPU) on the tiny synthetic
Llama: the first generation (compile + capture), a repeat gives the same tokens, agreement with the
same weights decoded uncompiled through generate(), decode tok/s (at this size: the fixed cost of a
step), and seeded sampling repeatable. bf16 on CUDA (random weights: agreement with the uncompiled
model ends at the first near-tied logits), fp32 on CPU.

    python -m benchmarks.compiled_decode_check
"""

from __future__ import annotations

import time

import torch

from arena.backends import make_backend
from arena.backends.base import Sampling
from arena.techniques import registry
from arena.measure.clocks import TokenClock, timing_from_stamps
from arena.models.spec import parse_model

CONFIGS = ("compiled-decode", "torchao-int8wo+compiled-decode")
PROMPT, NEW = 32, 48


def check(name: str, device: str, dtype: str) -> str:
    spec = parse_model("synthetic:tiny-llama")
    ids = torch.randint(3, 1000, (1, PROMPT), generator=torch.Generator().manual_seed(0))
    backend = make_backend(registry.get(name), spec, dtype, device)
    backend.load()
    t0 = time.perf_counter()
    first = backend.generate(ids, NEW, Sampling(), streamer=TokenClock()).cpu()
    first_s = time.perf_counter() - t0
    clock = TokenClock()
    clock.begin()
    again = backend.generate(ids, NEW, Sampling(), streamer=clock).cpu()
    speed = timing_from_stamps(clock.start, clock.stamps, 1).decode_tokens_per_s
    ref = backend.model.generate(input_ids=ids.to(device), attention_mask=torch.ones_like(ids).to(device),
                                 max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, eos_token_id=None,
                                 pad_token_id=0)[0, PROMPT:].cpu()
    sampling = Sampling(do_sample=True, temperature=0.8, top_p=0.9, seed=1)
    repeatable = torch.equal(backend.generate(ids, 24, sampling).cpu(), backend.generate(ids, 24, sampling).cpu())
    agreement = (first[0] == ref).float().mean().item()
    return (f"{name}: first generate {first_s:.1f} s (compile+capture); repeat identical {torch.equal(first, again)}; "
            f"agreement with uncompiled greedy {agreement:.3f}; decode {speed:,.0f} tok/s ({1000 / speed:.3f} ms/step); "
            f"seeded sampling repeatable {repeatable}")


def main() -> None:
    device, dtype = ("cuda", "bf16") if torch.cuda.is_available() else ("cpu", "fp32")
    for name in CONFIGS:
        print(check(name, device, dtype), flush=True)


if __name__ == "__main__":
    main()
