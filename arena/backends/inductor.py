"""The inductor settings every compiled configuration compiles under (bf16 and quantized alike).

`coordinate_descent_tuning` is the one that matters for decoding: with it, inductor rewrites a
matmul with one row (batch-1 decode) into a Triton reduction and tunes its block sizes, so a
bf16 GEMV, or an int8 / float8 weight-only GEMV with its dequantization fused in, reads the
weights near copy bandwidth (gpt-fast's and torchao's setting). torchao would set these flags
process-wide on every quantize_ call; arena/techniques/torchao.py turns that off and the
compiled backends apply this one set, scoped to their generation, instead.
"""

from __future__ import annotations

import contextlib
import json
import os

# Developer switch for A/B runs of the flags (benchmarks/fast_path.py, side by side in one call): a JSON object merged
# over FLAGS, e.g. '{"max_autotune": true}'. Results carry it in their settings when set.
FLAGS_ENV = "ARENA_INDUCTOR_FLAGS"

FLAGS: dict[str, object] = {
    "coordinate_descent_tuning": True,
    "triton.unique_kernel_names": True,  # readable kernel names in profiles
    "fx_graph_cache": True,
}


def flags() -> contextlib.AbstractContextManager:
    """A context in which torch.compile compiles with FLAGS (compilation happens at first call)."""
    from torch._inductor import config

    return config.patch({**FLAGS, **json.loads(os.environ.get(FLAGS_ENV) or "{}")})
