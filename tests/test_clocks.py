"""Clocks (arena/measure/clocks.py): TTFT, decode tokens/s and per-token latencies from the
timestamps a streamer takes, the median over repeats, and what the streamer stamps."""

import math

import pytest
import torch

from arena.measure.clocks import TokenClock, median_timing, percentile, timing_from_stamps


def test_ttft_decode_rate_and_latencies_follow_their_definitions():
    # start at 0; first token at 0.5 s (TTFT), then one token every 0.1 s
    stamps = [0.5 + 0.1 * i for i in range(11)]
    t = timing_from_stamps(0.0, stamps, batch=2)
    assert t.ttft_ms == pytest.approx(500)
    assert t.decode_tokens_per_s == pytest.approx(2 * 10 / 1.0)
    assert t.e2e_tokens_per_s == pytest.approx(2 * 11 / 1.5)
    assert t.token_latency_p50_ms == pytest.approx(100)
    assert t.token_latency_p90_ms == pytest.approx(100)


def test_single_token_has_no_decode_rate():
    t = timing_from_stamps(0.0, [0.2], batch=1)
    assert math.isnan(t.decode_tokens_per_s)
    with pytest.raises(ValueError):
        timing_from_stamps(0.0, [], batch=1)


def test_percentiles_interpolate_and_the_median_repeat_is_reported_with_the_spread():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4, 5], 90) == pytest.approx(4.6)
    a = timing_from_stamps(0.0, [0.1, 0.2, 0.3], 1)
    b = timing_from_stamps(0.0, [0.3, 0.4, 0.5], 1)
    c = timing_from_stamps(0.0, [0.2, 0.3, 0.4], 1)
    med, spread = median_timing([a, b, c])
    assert med.ttft_ms == pytest.approx(200)
    assert sorted(spread["ttft_ms"]) == pytest.approx([100, 200, 300])


def test_token_clock_streams_row_zero_only():
    seen: list[int] = []
    clock = TokenClock(on_tokens=seen.extend)
    clock.begin()
    clock.put(torch.tensor([[1, 2, 3], [4, 5, 6]]))  # the prompt: not a step
    clock.put(torch.tensor([7, 8]))  # generate(): one token per row
    clock.put(torch.tensor([[9], [10]]))  # a (batch, 1) column
    assert seen == [7, 9]
    assert len(clock.stamps) == 2


def test_a_step_of_several_tokens_counts_each_token():
    # speculative decoding: the first step (at 0.5 s) emits 3 tokens, then steps of 1 and 4 tokens
    t = timing_from_stamps(0.0, [0.5, 0.6, 1.0], batch=1, counts=[3, 1, 4])
    assert t.ttft_ms == pytest.approx(500)  # the first step, whatever it emitted
    assert t.decode_tokens_per_s == pytest.approx(5 / 0.5)  # tokens after the first step / time after it
    assert t.e2e_tokens_per_s == pytest.approx(8 / 1.0)
    # per-token latencies: 100 ms once, then 400 ms / 4 four times
    assert t.token_latency_p50_ms == pytest.approx(100)
    assert t.token_latency_p90_ms == pytest.approx(100)
    with pytest.raises(ValueError):
        timing_from_stamps(0.0, [0.5, 0.6], batch=1, counts=[1])


def test_token_clock_counts_the_tokens_of_each_step():
    seen: list[int] = []
    clock = TokenClock(on_tokens=seen.extend)
    clock.begin()
    clock.put(torch.tensor([[1, 2, 3]]))  # the prompt
    clock.put(torch.tensor([[7, 8, 9]]))  # assisted generation: three tokens of one step
    clock.put(torch.tensor([10]))
    assert seen == [7, 8, 9, 10] and clock.counts == [3, 1] and clock.tokens == 4
