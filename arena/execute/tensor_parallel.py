"""Tensor-parallel launcher: one spawned process per rank, each measuring with the same
`run_job` as every other worker (arena/execute/worker.py) on a TensorParallelBackend.

Shaped after optimum-benchmark's torchrun launcher (isolated processes that join
torch.distributed and report back), with plain spawned processes instead of
torch.distributed.elastic so that the parent knows every rank's pid and reads events while the
run goes on:
- the parent picks a free port and passes RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT; a rank
  joins NCCL on its own GPU (gloo on the CPU, developer switch ARENA_TP_CPU_WORLD only);
- each rank leads its own process group (compile workers it starts join it) and dies with the
  parent (PR_SET_PDEATHSIG);
- events come back through one queue: rank 0's status, tokens and metrics, every rank's metrics
  (its own GPU's peak and shard) and errors;
- the launchers' loop (arena/execute/launcher.py) reads them; one failing or dying rank, a
  cancel or the time limit end the run: every rank's whole process
  group is killed (a peer would otherwise wait forever in a collective). No process is left.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as _queue
import signal
import socket
import time
from dataclasses import replace
from typing import Any, Callable

from arena.core import quiet

quiet.silence()  # a rank's library noise off, as a worker's (before torch is imported)

from arena.core.errors import one_line, process_death  # noqa: E402
from arena.core.ending import Code  # noqa: E402
from arena.core.results import over_ranks  # noqa: E402
from arena.execute import hooks  # noqa: E402
from arena.execute.launcher import Launcher, Limit, Outcome, Source  # noqa: E402
from arena.execute.supervisor import add_nll, supervise  # noqa: E402
from arena.execute.worker import Job, run_job  # noqa: E402
from arena.execute.worker_entry import die_with_parent  # noqa: E402

NCCL_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}  # kept as set; never unset
GRACE_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def visible_devices(gpus: list[int]) -> str:
    """CUDA_VISIBLE_DEVICES for the ranks: the chosen GPUs, in this process's own numbering."""
    current = os.environ.get("CUDA_VISIBLE_DEVICES")
    ours = [d.strip() for d in current.split(",")] if current else [str(i) for i in range(max(gpus) + 1)]
    return ",".join(ours[g] for g in gpus)


def rank_main(rank: int, world: int, port: int, job: Job, events: Any, parent_pid: int,
              visible: str | None, threads: int, body: Callable[[Job, Callable], None] = run_job) -> None:
    """Entry of one rank (spawned): join the group, run `body(job, emit)` on this rank's device."""
    die_with_parent(parent_pid)
    hooks.install_from_env()  # the tests' fault hooks, when the test entry point names them
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "TOKENIZERS_PARALLELISM": "false"})
    for key, value in NCCL_ENV.items():
        os.environ.setdefault(key, value)
    if visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
    failed = False

    def emit(event: dict[str, Any]) -> None:
        nonlocal failed
        failed = failed or event["type"] == "error"
        if rank == 0 or event["type"] in ("metrics", "error"):
            events.put({**event, "rank": rank})

    on_cuda = job.device.startswith("cuda")
    try:
        import torch
        import torch.distributed as dist

        if on_cuda:
            device = torch.device("cuda", rank)
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", rank=rank, world_size=world, device_id=device)
        else:
            torch.set_num_threads(threads)
            dist.init_process_group("gloo", rank=rank, world_size=world)
        body(replace(job, device=f"cuda:{rank}" if on_cuda else "cpu", gpus=None, max_memory=None,
                     stream=job.stream and rank == 0), emit)
        events.put({"type": "done", "rank": rank})
        if not failed:  # after an error a peer may be stuck in a collective: the parent kills us
            dist.destroy_process_group()
    except BaseException as exc:  # noqa: BLE001 -- report everything, then leave
        emit({"type": "error", "reason": one_line(exc)})
        failed = True
    finally:
        events.close()
        events.join_thread()  # flush what this rank sent before leaving
        os._exit(1 if failed else 0)


def _kill(procs: list[Any]) -> None:
    """SIGKILL every rank's process group (the rank and whatever it started), then reap."""
    for proc in procs:
        if proc.pid is None:
            continue
        for kill in (lambda pid: os.killpg(pid, signal.SIGKILL), lambda pid: os.kill(pid, signal.SIGKILL)):
            try:
                kill(proc.pid)
            except (ProcessLookupError, PermissionError):
                pass
    for proc in procs:
        proc.join(timeout=5)


def _device_key(key: str, rank: int, gpus: list[int]) -> str:
    """A rank's own device name -> the GPU the user chose ("cuda:0" of rank 1 -> "cuda:3"), or
    "cpu/rankN" for gloo ranks."""
    if key.startswith("cuda") and gpus:
        return f"cuda:{gpus[rank]}"
    return key if "/rank" in key else f"{key}/rank{rank}"


def merge(per_rank: dict[int, dict[str, Any]], gpus: list[int]) -> dict[str, Any]:
    """Rank 0's measurement with every rank's peak memory and shard (device_peak_memory_mb,
    placement); the other fields combine over the ranks by their declared `ranks` rule
    (arena/core/results.py: memory and energy summed, the rest rank 0's)."""
    metrics = dict(per_rank[0])
    peaks: dict[str, float] = {}
    where: dict[str, Any] = {}
    for rank, m in sorted(per_rank.items()):
        for key, mb in (m.get("device_peak_memory_mb") or {}).items():
            peaks[_device_key(key, rank, gpus)] = mb
        for key, value in (m.get("placement") or {}).items():
            where[_device_key(key, rank, gpus)] = value
    metrics["device_peak_memory_mb"], metrics["placement"] = peaks, where
    metrics.update(over_ranks([per_rank[r] for r in sorted(per_rank)]))
    metrics["memory_method"] = (f"sum over {len(per_rank)} ranks of {metrics.get('memory_method', '')} "
                                "(per rank in device_peak_memory_mb)")
    return metrics


class _RanksSource(Source):
    """Every rank's events from their one queue, as one job's: rank 0's events pass, the
    ranks' metrics (and NLL) are held and sent merged once every rank is done, an error names
    its rank, and a death is any rank's."""

    def __init__(self, procs: list[Any], events: Any, gpus: list[int]) -> None:
        self.procs, self.events, self.gpus = procs, events, gpus
        self.world = len(procs)
        self.done: set[int] = set()
        self.metrics: dict[int, dict[str, Any]] = {}
        self.pending: list[dict[str, Any]] = []

    def get(self, timeout: float) -> dict[str, Any] | None:
        if self.pending:
            return self.pending.pop(0)
        try:
            event = self.events.get(timeout=timeout)
        except _queue.Empty:
            return None
        rank = event.pop("rank", 0)
        kind = event["type"]
        if kind == "done":
            self.done.add(rank)
            if len(self.done) < self.world:
                return None
            if len(self.metrics) < self.world:
                self.pending = [{"type": "done"}]
                return {"type": "error", "reason": "a tensor-parallel rank ended without a result",
                        "code": Code.NO_RESULT.value}
            self.pending = [{"type": "done"}]
            return {"type": "metrics", "metrics": merge(self.metrics, self.gpus)}
        if kind == "error":
            return {"type": "error", "reason": event["reason"] if rank == 0 else f"rank {rank}: {event['reason']}",
                    "code": event.get("code", Code.ERROR.value)}
        if kind == "metrics":
            self.metrics[rank] = event["metrics"]
        elif kind == "nll":  # its own step, after the timings
            if rank in self.metrics:
                add_nll(self.metrics[rank], event)
        elif rank == 0:
            return event
        return None

    def death(self) -> str | None:
        dead = [(r, p.exitcode) for r, p in enumerate(self.procs) if r not in self.done and p.exitcode is not None]
        if not dead:
            return None
        rank, code = dead[0]
        return f"tensor-parallel rank {rank} died: {process_death(code)}"


class RanksLauncher(Launcher):
    """A tensor-parallel job over `world` ranks (one spawned process each); never kept warm."""

    def __init__(self, world: int, *, grace_s: float = GRACE_S,
                 body: Callable[[Job, Callable], None] = run_job) -> None:
        self.world, self.grace_s, self.body = world, grace_s, body

    def launch(self, job: Job, on_event: Callable[[dict[str, Any]], None], limit: Limit) -> Outcome:
        """Rank 0's events (but metrics and errors) go to `on_event`; the metrics are every
        rank's merged. Every rank is gone on return."""
        world = self.world
        ctx = mp.get_context("spawn")
        events = ctx.Queue()
        on_cuda = job.device.startswith("cuda")
        gpus = list(job.gpus or range(world)) if on_cuda else []
        visible = visible_devices(gpus) if on_cuda else None
        threads = max(1, (os.cpu_count() or 1) // world)
        port = free_port()
        procs = [ctx.Process(target=rank_main, name=f"arena-{job.config}-rank{r}", daemon=False,
                             args=(r, world, port, job, events, os.getpid(), visible, threads, self.body))
                 for r in range(world)]
        source = _RanksSource(procs, events, gpus)
        try:
            for proc in procs:
                proc.start()
            # the first error ends the run: a peer may be waiting in a collective for the failed rank
            out = supervise(source, on_event, limit, end_on_error=True)
            if out.ending.kind != "done" or out.ending.reason is not None:
                out.metrics = None
            return out
        finally:
            if len(source.done) == world:  # all finished: let them leave on their own first
                end = time.monotonic() + self.grace_s
                for proc in procs:
                    proc.join(timeout=max(0.0, end - time.monotonic()))
            _kill(procs)
            events.close()


def run_ranks(job: Job, world: int, handle: Callable[[dict[str, Any]], None], *, timeout_s: float,
              timeout_reason: str, cancel: Any = None, grace_s: float = GRACE_S,
              body: Callable[[Job, Callable], None] = run_job) -> tuple[dict | None, str | None]:
    """Run `job` over `world` ranks; returns (merged metrics, None) or (None, one-line reason)."""
    out = RanksLauncher(world, grace_s=grace_s, body=body).launch(job, handle, Limit(timeout_s, timeout_reason, cancel))
    return out.metrics, out.failure()
