"""The memory-bandwidth yardstick: how fast decoding could possibly be on this device.

Decoding one step at batch B reads every weight once and each row's KV cache once, so decode
tokens/s can never pass

    B x bandwidth / (weights bytes + B x KV-cache bytes read per step)

with the bandwidth measured by arena/measure/bandwidth.py. The KV-cache term is averaged over
the decode positions (prompt + 1 .. prompt + new - 1 entries per layer). The weights term is the
bytes a step reads: an input embedding table that is not tied to the output projection is looked
up (B rows), not read whole, so it is left out (counting it put a limit below what a backend
reached). A result above its limit is flagged by arena/measure/trust.py.
"""

from __future__ import annotations

from typing import Any

from arena.measure.bandwidth import Bandwidth
from arena.models.dtypes import DTYPE_BYTES


def kv_bytes_per_position(model_config: Any, dtype: str) -> int:
    """Bytes of K and V one cached position holds across all layers (one row)."""
    cfg = model_config
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", 0)
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", 1)
    if getattr(cfg, "multi_query", False) and not getattr(cfg, "new_decoder_architecture", False):
        kv_heads = 1  # Falcon-7B style multi-query attention (its num_kv_heads says otherwise)
    else:
        kv_heads = getattr(cfg, "num_key_value_heads", None) or getattr(cfg, "num_kv_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return int(layers) * 2 * int(kv_heads) * int(head_dim) * DTYPE_BYTES.get(dtype, 2)


def unread_embedding_bytes(model_config: Any, dtype: str) -> int:
    """Bytes of an untied input embedding table, which a decode step does not read whole; 0 when
    it is tied to the output projection (then read whole by that projection, counted once)."""
    cfg = model_config
    if getattr(cfg, "tie_word_embeddings", True):
        return 0
    vocab, hidden = getattr(cfg, "vocab_size", 0) or 0, getattr(cfg, "hidden_size", 0) or 0
    return int(vocab) * int(hidden) * DTYPE_BYTES.get(dtype, 2)


def bytes_read(weights_bytes: float, model_config: Any, dtype: str) -> float:
    """The weight bytes one decode step reads: all but an untied input embedding table."""
    read = weights_bytes - unread_embedding_bytes(model_config, dtype)
    return read if read > weights_bytes / 2 else weights_bytes  # a table stored otherwise (quantized): all


def limit_tokens_per_s(bandwidth_gb_s: float, weights_bytes: float, kv_bytes_per_pos: float,
                       batch: int, prompt_tokens: int, new_tokens: int) -> float:
    """The decode tokens/s that reading the weights and the KV cache at full bandwidth allows.
    Decode step k (k = 1 .. new-1) attends to prompt + k positions; their mean is used."""
    mean_positions = prompt_tokens + new_tokens / 2 if new_tokens > 1 else prompt_tokens + 1
    per_step = weights_bytes + batch * kv_bytes_per_pos * mean_positions
    return batch * bandwidth_gb_s * 1e9 / per_step


def result_fields(bw: Bandwidth, *, weights_bytes: float, model_config: Any, dtype: str, batch: int,
                  prompt_tokens: int, new_tokens: int, decode_tokens_per_s: float | None) -> dict[str, Any]:
    """The three result fields for one measured configuration."""
    limit = limit_tokens_per_s(bw.gb_s, bytes_read(weights_bytes, model_config, dtype),
                               kv_bytes_per_position(model_config, dtype),
                               batch, prompt_tokens, new_tokens)
    percent = (100 * decode_tokens_per_s / limit
               if decode_tokens_per_s is not None and decode_tokens_per_s == decode_tokens_per_s else None)
    return {"memory_bandwidth_gb_s": bw.gb_s, "bandwidth_limit_tokens_per_s": limit,
            "percent_of_bandwidth_limit": percent}


def fields_for(bw: Bandwidth | None, spec: Any, **kwargs: Any) -> dict[str, Any]:
    """result_fields() for a worker's model spec; empty when the bandwidth or the model's
    config is unknown."""
    if bw is None:
        return {}
    try:
        from arena.models.sources import load_config

        return result_fields(bw, model_config=load_config(spec), **kwargs)
    except Exception:
        return {}
