"""The inductor settings every compiled configuration compiles under (bf16 and quantized alike).

`coordinate_descent_tuning` is the one that matters for decoding: with it, inductor rewrites a
matmul with one row (batch-1 decode) into a Triton reduction and tunes its block sizes, so a
bf16 GEMV, or an int8 / float8 weight-only GEMV with its dequantization fused in, reads the
weights near copy bandwidth (gpt-fast's and torchao's setting). torchao would set these flags
process-wide on every quantize_ call; arena/techniques/torchao.py turns that off and the
compiled backends apply this one set, scoped to their generation, instead.

A GPU generation may add flags that measured faster there (GENERATION_FLAGS, each entry with the
figures that earned it); `ARENA_GENERATION_FLAGS=0` compiles with FLAGS alone. Results record
what was added in their environment (`generation_flags`).
"""

from __future__ import annotations

import contextlib
import json
import os

# Developer switch for A/B runs of the flags (benchmarks/fast_path.py, side by side in one call): a JSON object merged
# over FLAGS, e.g. '{"max_autotune": true}'. Results carry it in their settings when set.
FLAGS_ENV = "ARENA_INDUCTOR_FLAGS"
GENERATION_ENV = "ARENA_GENERATION_FLAGS"  # "0": no generation flags

FLAGS: dict[str, object] = {
    "coordinate_descent_tuning": True,
    "triton.unique_kernel_names": True,  # readable kernel names in profiles
    "fx_graph_cache": True,
}

# GPU major compute capability -> flags merged over FLAGS there.
GENERATION_FLAGS: dict[int, dict[str, object]] = {}


def known(flags: dict[str, object]) -> dict[str, object]:
    """The flags of `flags` this torch's inductor config has (a flag of a later release is left out)."""
    from torch._inductor import config

    def has(key: str) -> bool:
        node = config
        for part in key.split("."):
            if not hasattr(node, part):
                return False
            node = getattr(node, part)
        return True

    return {k: v for k, v in flags.items() if has(k)}


def generation_flags(capability: tuple[int, int] | None) -> dict[str, object]:
    """What the GPU generation of `capability` adds over FLAGS ({} off CUDA or when switched off)."""
    if capability is None or os.environ.get(GENERATION_ENV, "1") == "0":
        return {}
    return known(GENERATION_FLAGS.get(capability[0], {}))


def _capability() -> tuple[int, int] | None:
    import torch

    return tuple(torch.cuda.get_device_capability()) if torch.cuda.is_available() else None


def flags() -> contextlib.AbstractContextManager:
    """A context in which torch.compile compiles with FLAGS, the GPU generation's flags and the
    developer switch's, in that order (compilation happens at first call)."""
    from torch._inductor import config

    return config.patch({**FLAGS, **generation_flags(_capability()), **json.loads(os.environ.get(FLAGS_ENV) or "{}")})


def environment(capability: tuple[int, int] | None) -> dict[str, str]:
    """What a result records of the flags its compiled configurations got on this GPU."""
    return {} if capability is None else {"generation_flags": json.dumps(generation_flags(capability), sort_keys=True)}
