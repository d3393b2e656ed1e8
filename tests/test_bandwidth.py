"""The memory-bandwidth yardstick (arena/measure/bandwidth.py, arena/measure/bandwidth_limit.py), measured
for real on CPU."""

import json

import pytest

from arena.core.request import RunRequest
from arena.core.results import TABLE_COLUMNS
from arena.execute import runner
from arena.measure.bandwidth import CACHE_FILE, cached, device_bandwidth
from arena.measure.bandwidth_limit import (
    kv_bytes_per_position,
    limit_tokens_per_s,
)
from arena.models.sources import load_config
from arena.models.spec import ModelSpec

TINY = ModelSpec("synthetic", "tiny-llama")


def test_kv_bytes_per_position_follow_the_architecture():
    def kv(name: str, dtype: str = "bf16") -> int:
        return kv_bytes_per_position(load_config(ModelSpec("synthetic", name)), dtype)

    assert kv("llama-2-7b") == 32 * 2 * 32 * 128 * 2  # 32 layers, K and V, 32 heads of 128, bf16
    assert kv("llama-3.2-1b") == 16 * 2 * 8 * 64 * 2  # grouped-query: 8 KV heads of 64
    assert kv("tiny-llama", "fp32") == 2 * 2 * 2 * 16 * 4
    assert kv("falcon-7b") == 32 * 2 * 1 * 64 * 2  # multi-query: one KV head


def test_limit_is_bandwidth_over_bytes_read_per_step():
    # 13.5 GB of weights at 3000 GB/s, no KV cache: 222.2 tokens/s
    assert limit_tokens_per_s(3000, 13.5e9, 0, 1, 128, 128) == pytest.approx(3000e9 / 13.5e9)
    # the KV term: 128-token prompt, 128 new -> decode steps read 192 positions on average
    one = limit_tokens_per_s(3000, 13.5e9, 524288, 1, 128, 128)
    assert one == pytest.approx(3000e9 / (13.5e9 + 524288 * 192))
    # batch 8 reads the weights once per step for 8 tokens
    eight = limit_tokens_per_s(3000, 13.5e9, 524288, 8, 128, 128)
    assert eight == pytest.approx(8 * 3000e9 / (13.5e9 + 8 * 524288 * 192))
    assert one < eight < 8 * one


def test_bandwidth_is_measured_once_per_device_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ARENA_HOME", str(tmp_path))
    first = device_bandwidth("cpu", "CPU: test")
    assert first.gb_s > 0.1 and ("copy" in first.method or "read" in first.method)
    on_disk = json.loads((tmp_path / CACHE_FILE).read_text())
    assert on_disk["CPU: test"]["gb_s"] == first.gb_s
    # a later call reads the file: an entry written there is what comes back
    on_disk["CPU: test"]["gb_s"] = 123.0
    (tmp_path / CACHE_FILE).write_text(json.dumps(on_disk))
    assert device_bandwidth("cpu", "CPU: test").gb_s == 123.0
    # measured again, the better figure is kept: a higher one stays, a lower one is replaced
    assert device_bandwidth("cpu", "CPU: test", refresh=True).gb_s == 123.0
    on_disk["CPU: test"]["gb_s"] = 0.001
    (tmp_path / CACHE_FILE).write_text(json.dumps(on_disk))
    assert device_bandwidth("cpu", "CPU: test", refresh=True).gb_s > 0.1
    assert cached("another device") is None


def test_every_ok_result_carries_its_limit_and_share(store):
    req = RunRequest(model="synthetic:tiny-llama", prompt="", configs=["eager", "sdpa", "sdpa-flash"],
                     max_new_tokens=6, repeats=1, prompt_tokens=16, isolation="inline")
    results = {r.config: r for r in runner.run(req, store=store)}
    assert results["sdpa-flash"].status == "unavailable"
    assert results["sdpa-flash"].percent_of_bandwidth_limit is None
    for name in ("eager", "sdpa"):
        r = results[name]
        assert r.status == "ok", r.reason
        assert r.memory_bandwidth_gb_s > 0 and r.bandwidth_limit_tokens_per_s > 0
        # By hand from the model's config: each decode step reads every weight once but the untied
        # input embedding (looked up, one row) and the K and V of every cached position of every
        # layer (fp32: 4 bytes); steps see 16 + 6/2 positions on average.
        cfg = load_config(TINY)
        assert not cfg.tie_word_embeddings
        head_dim = cfg.hidden_size // cfg.num_attention_heads
        kv = cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * head_dim * 4
        read = r.weights_mb * 2**20 - cfg.vocab_size * cfg.hidden_size * 4
        expected = r.memory_bandwidth_gb_s * 1e9 / (read + kv * (16 + 6 / 2))
        assert r.bandwidth_limit_tokens_per_s == pytest.approx(expected)
        assert r.percent_of_bandwidth_limit == pytest.approx(
            100 * r.decode_tokens_per_s / r.bandwidth_limit_tokens_per_s)
    stored = {r.config: r for r in store.results()}
    assert stored["sdpa"].percent_of_bandwidth_limit == pytest.approx(results["sdpa"].percent_of_bandwidth_limit)
    assert ("percent_of_bandwidth_limit", "% of BW limit") in TABLE_COLUMNS
