"""Error wording (arena/core/errors.py): a library's multi-line failure becomes one clear line."""

from __future__ import annotations

import pytest
import torch

from arena.core.errors import kernel_reason


def test_no_available_kernel_becomes_one_clear_line():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(RuntimeError) as err, sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
        torch.nn.functional.scaled_dot_product_attention(q, q, q)  # no such kernel on CPU
    reason = kernel_reason(err.value, "efficient")
    assert reason and reason.startswith("SDPA's efficient kernel cannot run these inputs") and "\n" not in reason
    assert kernel_reason(RuntimeError("something else"), "efficient") is None
