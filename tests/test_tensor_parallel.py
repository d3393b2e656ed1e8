"""tensor-parallel: availability and its reasons, and the real launcher on the CPU (gloo, world
size 2, real spawned ranks, real collectives) under the developer switch ARENA_TP_CPU_WORLD."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import psutil
import pytest

from arena.core.env import platform
from arena.core.request import RunRequest
from arena.execute import runner
from arena.execute.pool import Pool, PoolSettings
from arena.execute.prepare import validate
from arena.models.placement import Placement
from arena.models.sources import load_config
from arena.models.spec import parse_model
from arena.techniques import registry

TP = registry.get("tensor-parallel")
cpu_only = pytest.mark.skipif(platform().has_cuda, reason="runs the gloo ranks of a machine without a GPU")


@pytest.fixture
def pool():
    """A pool without a spare worker: `_children()` then sees only what a run leaves behind."""
    p = Pool(PoolSettings(spare=False))
    yield p
    p.close()


def _gpus(n: int):
    return replace(platform(), has_cuda=n > 0, gpu_count=n, bf16_supported=True, capability=(9, 0))


def test_tensor_parallel_says_why_it_cannot_run(monkeypatch):
    monkeypatch.delenv(registry.TP_CPU_WORLD_ENV, raising=False)
    assert registry.availability(TP, "fp32", _gpus(0)).reason == (
        "needs at least 2 CUDA GPUs (one process per GPU through NCCL); this machine has none")
    assert registry.availability(TP, "bf16", _gpus(1)).reason.endswith("this machine has 1")
    assert registry.availability(TP, "bf16", _gpus(2)).ok
    assert registry.tensor_parallel_world(_gpus(4), Placement((1, 3))) == 2
    assert registry.availability(TP, "bf16", _gpus(2), Placement((1,))).reason == "needs at least 2 GPUs in gpus (got 1)"
    budget = registry.availability(TP, "bf16", _gpus(2), Placement((0, 1), {"0": 2**30}))
    assert budget.reason.startswith("tensor parallel shards every layer over the GPUs in gpus")
    assert registry.availability(registry.get("tensor-parallel+static-cache"), "bf16", _gpus(2), Placement((0, 1))).ok
    monkeypatch.setenv(registry.TP_CPU_WORLD_ENV, "2")
    assert registry.availability(TP, "fp32", _gpus(0)).ok
    # Falcon has no tensor-parallel plan in transformers
    falcon, llama = (load_config(parse_model(f"synthetic:{name}")) for name in ("falcon-7b", "llama-2-70b"))
    assert registry.availability(TP, "fp32", _gpus(0), model_config=falcon).reason == (
        "falcon has no tensor-parallel plan (base_model_tp_plan) in this transformers version")
    assert registry.availability(TP, "fp32", _gpus(0), model_config=llama).ok


@cpu_only
def test_falcon_is_unavailable_with_its_reason(monkeypatch, pool):
    monkeypatch.setenv(registry.TP_CPU_WORLD_ENV, "2")
    req = RunRequest(model="synthetic:falcon-7b", configs=["tensor-parallel"], max_new_tokens=2, repeats=1)
    [result] = runner.execute(validate(req), pool=pool)
    assert result.status == "unavailable" and result.reason.startswith("falcon has no tensor-parallel plan")


def _children(before: set[int] = frozenset()) -> list[psutil.Process]:
    """Processes this test started that are still alive: children of this process not in
    `before` (what earlier tests left, such as the shared pool's spare worker), the
    multiprocessing resource tracker aside."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if (child.pid not in before and child.status() != psutil.STATUS_ZOMBIE
                    and "resource_tracker" not in " ".join(child.cmdline())):
                alive.append(child)
        except psutil.NoSuchProcess:
            pass
    return alive


@cpu_only
def test_two_gloo_ranks_generate_the_single_process_tokens(monkeypatch, store):
    before = {c.pid for c in _children()}
    monkeypatch.setenv(registry.TP_CPU_WORLD_ENV, "2")
    req = RunRequest(model="synthetic:tiny-llama", configs=["eager", "tensor-parallel"], prompt_tokens=8,
                     max_new_tokens=6, repeats=1, isolation="inline")
    events: list[dict] = []
    results = {r.config: r for r in runner.execute(validate(req), store=store, on_event=events.append)}
    one, tp = results["eager"], results["tensor-parallel"]
    assert one.status == "ok" and tp.status == "ok", (one.reason, tp.reason)
    assert tp.token_ids == one.token_ids and len(tp.token_ids) == 6 and tp.token_agreement == 1.0
    assert tp.nll == pytest.approx(one.nll, abs=1e-4)
    assert tp.decode_tokens_per_s > 0 and tp.ttft_ms > 0
    # every rank's shard and peak: each holds part of each layer; the headline is their sum
    assert set(tp.placement) == set(tp.device_peak_memory_mb) == {"cpu/rank0", "cpu/rank1"}
    shards = [tp.placement[k]["weights_mb"] for k in ("cpu/rank0", "cpu/rank1")]
    assert all(0 < mb < one.weights_mb for mb in shards) and sum(shards) > one.weights_mb
    assert tp.peak_memory_mb == pytest.approx(sum(tp.device_peak_memory_mb.values()))
    assert tp.weights_mb == pytest.approx(one.weights_mb)
    streamed = "".join(e["text"] for e in events if e.get("config") == "tensor-parallel" and e["type"] == "token")
    assert streamed.split() == [str(t) for t in tp.token_ids]
    assert [r.config for r in store.results()] == ["eager", "tensor-parallel"]
    # the GPU session's comparison table: tensor-parallel against one device, from these rows
    from arena.bench.tables import parallel_comparison as comparison

    row = comparison([one.to_dict(), tp.to_dict()]).splitlines()[-1].split(" | ")
    assert row[2:5] == [f"{one.decode_tokens_per_s:.1f}", "", f"{tp.decode_tokens_per_s:.1f}"]
    assert row[-1] == f"{tp.decode_tokens_per_s / one.decode_tokens_per_s:.2f}x |"
    assert _children(before) == []


@cpu_only
@pytest.mark.parametrize("end", ["cancel", "time limit"])
def test_a_cancel_or_the_time_limit_ends_every_rank(monkeypatch, end, pool):
    before = {c.pid for c in _children()}
    monkeypatch.setenv(registry.TP_CPU_WORLD_ENV, "2")
    cancel = threading.Event()

    def on_event(event: dict) -> None:
        if end == "cancel" and event.get("config") == "tensor-parallel" and event["type"] == "token":
            cancel.set()

    req = RunRequest(model="synthetic:tiny-llama", configs=["tensor-parallel"], prompt_tokens=8, max_new_tokens=100 if end == "cancel" else 1000,
                     repeats=5, timeout_s=600 if end == "cancel" else 12)
    start = time.monotonic()
    [result] = runner.execute(validate(req), on_event=on_event, cancel=cancel, pool=pool)
    assert result.status == "failed"
    expected = "cancelled by the user" if end == "cancel" else "timed out after 12 s (time limit per configuration)"
    assert result.reason.startswith(expected), result.reason
    assert time.monotonic() - start < 60
    assert _children(before) == []


@cpu_only
def test_a_failing_rank_ends_the_run_with_its_reason(monkeypatch):
    """Past the runner's own check: every rank refuses Falcon (no plan) while loading; the run
    ends with that one line and no rank is left."""
    before = {c.pid for c in _children()}
    from arena.execute.tensor_parallel import run_ranks
    from arena.execute.worker import Job

    job = Job(config="tensor-parallel", model_kind="synthetic", model_ref="falcon-7b", dtype="fp32", device="cpu",
              prompt_ids=[1, 2, 3], batch_size=1, max_new_tokens=2, repeats=1)
    seen: list[dict] = []
    metrics, reason = run_ranks(job, 2, seen.append, timeout_s=120, timeout_reason="timed out")
    assert metrics is None
    assert reason.removeprefix("rank 1: ") == "ValueError: falcon has no tensor-parallel plan in transformers " \
        "(base_model_tp_plan)", reason
    assert [e["stage"] for e in seen if e["type"] == "status"] == ["loading"]
    assert _children(before) == []
