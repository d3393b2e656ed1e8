"""Peak memory on the CPU (arena/measure/memory.py): the kernel's high-water mark, reset per phase,
and the headline as the model's share above the worker's idle baseline."""

from __future__ import annotations

import threading
from pathlib import Path

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


LOAD_THEN_READ = """
import sys
from arena.execute import worker_entry
worker_entry.prepare()
from arena.execute.worker import Job, load_phase
job = Job(config=sys.argv[1], model_kind="default", model_ref="default", dtype="bf16", device="cpu",
          prompt_ids=[1, 2, 3], batch_size=1, max_new_tokens=2, repeats=1)
loaded = load_phase(job, lambda event: None)
loaded.memory.reset_peak()  # the next phase starts here: resident memory now, above the idle baseline
print(loaded.memory.report(torch_backend=True).peak_memory_mb, loaded.backend.weights_bytes() / 2**20)
"""


def test_after_loading_the_worker_holds_what_its_model_holds():
    """bitsandbytes quantizes while loading and frees the bf16 originals, and glibc keeps freed
    pages resident: without the heap trim after loading, the next phase's high-water mark would
    start with them (the embedded default, bf16, bnb-4bit: about 700 MB resident for 111 MB of
    weights right after loading without the trim, about 170 MB with it). A fresh process: the
    test process's own heap is not the worker's."""
    import subprocess
    import sys

    from arena.models.sources import pretrained_path
    from arena.models.spec import parse_model

    pretrained_path(parse_model("default"))  # converted once, here, as the app's validation does
    out = subprocess.run([sys.executable, "-c", LOAD_THEN_READ, "bnb-4bit"], capture_output=True, text=True,
                         timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    resident, weights = map(float, out.stdout.split()[-2:])
    assert weights < 150
    assert resident < weights + 128, (resident, weights)  # the bf16 originals alone are 256 MB
