"""Peak memory on the CPU (arena/measure/memory.py): the kernel's high-water mark, reset per phase,
and the headline as the model's share above the worker's idle baseline."""

from __future__ import annotations

import threading

import torch  # noqa: F401  (loaded, as in a worker: the process peak counts its libraries, the headline not)

from arena.measure.memory import MemoryTracker, RssPeak


def fresh_pages(n: int):
    """n bytes of new resident pages, every one written, straight from the kernel (an anonymous
    map), so the test does not depend on what the heap of a long test process already holds."""
    import mmap

    block = mmap.mmap(-1, n)
    page = b"\x01" * 2**20
    for _ in range(n // 2**20):  # a megabyte at a time: no n-byte temporary beside the map
        block.write(page)
    return block


def test_rss_peak_is_the_kernels_high_water_mark_reset_per_phase():
    rss = RssPeak()
    rss.reset()
    block = fresh_pages(40 * 2**20)  # 40 MB, every page written, then given back
    block.close()
    high = rss.peak()
    assert high - rss.now() > 30 * 2**20  # the peak outlives the freed block
    rss.reset()
    assert rss.peak() - rss.now() < 10 * 2**20  # a new phase forgets it
    rss.close()


def test_cpu_headline_is_the_models_share_above_the_idle_baseline():
    threads = threading.active_count()
    tracker = MemoryTracker("cpu")
    assert threading.active_count() == threads  # no sampler thread: the high-water mark needs none
    tracker.reset_peak()
    block = fresh_pages(64 * 2**20)  # "the model": 64 MB
    report = tracker.report(torch_backend=True)
    block.close()
    assert 60 <= report.peak_memory_mb < 120  # libraries and Python are not in the headline
    assert report.process_peak_memory_mb > report.peak_memory_mb + 100  # but are in the detail
    assert "above the worker's idle baseline" in report.memory_method
    tracker.close()


def test_in_place_quantization_does_not_count_the_freed_originals():
    """bitsandbytes quantizes while loading and frees the bf16 originals; glibc would keep those
    pages resident, and the first phase's high-water mark would count them as the configuration's
    memory (the embedded default in bf16: 416 MB for bnb-4bit's 108 MB of weights without the
    trim after load, 242 MB with it)."""
    from arena.core.request import RunRequest
    from arena.execute import runner

    eager, q4 = runner.run(RunRequest(model="default", prompt="What is the capital of France?",
                                      configs=["eager", "bnb-4bit"], max_new_tokens=2, repeats=1, dtype="bf16"),
                           store=None)
    assert eager.status == q4.status == "ok", (eager.reason, q4.reason)
    assert q4.weights_mb < 0.5 * eager.weights_mb
    # what the 4-bit run holds beyond its weights stays well under the originals it freed
    assert q4.peak_memory_mb - q4.weights_mb < 0.75 * eager.weights_mb, (q4.peak_memory_mb, q4.weights_mb)
