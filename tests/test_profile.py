"""Where a decode step's time goes (arena/bench/profile.py): the split into weight-reading kernels,
attention, short kernels, copies and the two kinds of gaps, on a timeline built here and on the
Chrome trace the H200 run of 2026-12-04 saved (torch 2.11), whose published summary it must
reproduce."""

from pathlib import Path

import pytest

from arena.bench.profile import breakdown_text, chrome_trace_events, summarize

US = 1_000  # ns
TRACE = Path(__file__).resolve().parent.parent / "docs/gpu-h200/2026-12-04/raw/profile-compiled-decode-7b.json.gz"


def test_a_step_splits_into_kernels_attention_short_kernels_and_two_kinds_of_gaps():
    copy = "Memcpy DtoH (Device -> Pinned)"
    dev = [("prefill", 0, 100 * US), (copy, 100 * US, 102 * US)]
    t = 102 * US
    for _ in range(2):  # a step: 20 us gemv, 1 us gap, 8 us cuDNN attention, 1 us gap, 2 us norm named
        # after the attention it feeds (inductor's naming: not an attention kernel), 1 us gap, then
        # 10 us of host before the token's copy (2 us)
        dev += [("triton_red_fused_mm_0", t, t + 20 * US),
                ("cudnn_generated_fort_native_sdpa_sm80_flash_fprop", t + 21 * US, t + 29 * US),
                ("triton_poi_fused__scaled_dot_product_cudnn_attention_1", t + 30 * US, t + 32 * US),
                (copy, t + 43 * US, t + 45 * US)]
        t += 45 * US
    prof = summarize(dev, [])
    assert prof.steps == 2 and prof.per_step_ms == pytest.approx(0.045)
    per = {k: getattr(prof, k) / 2 * 1e3 for k in ("long_ms", "attention_ms", "short_ms", "copy_ms",
                                                      "graph_gap_ms", "host_gap_ms")}  # us a step
    assert per == pytest.approx({"long_ms": 20, "attention_ms": 8, "short_ms": 2, "copy_ms": 2,
                                 "graph_gap_ms": 2, "host_gap_ms": 11})
    assert sum(per.values()) == pytest.approx(45)  # the parts are the whole step
    assert prof.graph_gap_count == 4 and prof.graph_gap_median_us == pytest.approx(1.0)
    text = breakdown_text(prof, weights_gb=0.04, copy_gb_s=4000)  # 40 MB at 4 TB/s: a 10 us limit
    assert "| attention kernels | 0.008 | 17.8% |" in text
    assert "read at 2,000 GB/s (50%) by the kernels of 5 us or more" in text and "at 22% over the whole step" in text


def test_the_saved_h200_trace_reproduces_its_published_profile():
    # docs/gpu-h200/2026-12-04/raw/quant-profile-7b.txt, printed on that machine from the same run
    prof = summarize(*chrome_trace_events(TRACE), top=16)
    assert prof.steps == 20
    assert f"{prof.per_step_ms:.3f}" == "4.540" and f"{prof.kernel_per_step_ms:.3f}" == "4.344"
    assert prof.top_kernels[0][:1] == ("triton_red_fused__unsafe_view_mm_mul_silu_t_view_7",)
    assert f"{prof.top_kernels[0][1]:.4f}" == "0.9416" and prof.top_kernels[0][2] == 32
    parts = prof.long_ms + prof.attention_ms + prof.short_ms + prof.copy_ms + prof.graph_gap_ms + prof.host_gap_ms
    assert parts / prof.steps == pytest.approx(prof.per_step_ms, rel=1e-3)
    assert prof.attention_ms / prof.steps == pytest.approx(0.2257, abs=1e-3)  # the cuDNN kernel, 32 a step
