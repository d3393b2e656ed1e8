"""The arena's own server, end to end, driven as the page drives it.

Starts `python app.py` (once in local mode, once as a Space starts it: SPACE_ID set, public
limits), and talks to it only through gradio_client, the page's API: `/run` streaming, `/cancel`,
`/workers`, `/leaderboard`, `/ratings`, `/blind_pair`. For every request it records, on the
client's clock, the time from submit to the first streamed text, to each card's metrics, and to
the end, beside the server's own stage breakdown per configuration (start, imports, load,
warm-up, timed, after) and, from the local server and its workers sampling their own stacks
(ARENA_SAMPLE_STACKS, arena/core/stack_sampler.py), what their threads did meanwhile: the time
no stage accounts for, named by function. Phases, in this order on one local server, then the
public one:

  quick     sdpa cold (the spare worker ready) then warm; compiled-decode twice (the second
            skips compile and capture); a six-configuration run cold then warm (wall time
            against the sum of timed generations plus loads)
  cancel    /cancel while a configuration streams: seconds until its card says cancelled, and
            the configurations measured before it kept
  families  every configuration of the registry in one run: each ok, or refused before it
            starts with one line (none "failed")
  memory    GPU memory (NVML, per process: the server and each worker) sampled through the
            phases above; the warm pool against its budget (--warm-budget-mb); a large model
            (--big-model) after the six embedded-default configurations
  load      the public server: --sessions browser-like sessions and one hostile client for
            --load-s seconds (benchmarks/load_test.py's soak); nothing lost or stored twice, and
            no prompt visible through the public endpoints

    python -m benchmarks.server_e2e --out out/server            # GPU sizes
    python -m benchmarks.server_e2e --ci --out /tmp/server      # CPU, CI-sized (2 configurations, 20 s load)

Writes server-e2e.json (everything) and server-e2e.md (the tables) under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from gradio_client import Client

from arena.bench import load as load_test
from arena.testing.appserver import AppServer


PROMPT = "What is the capital of France?"
FINAL = {"done", "unavailable", "failed", "cancelled"}


def say(text: str) -> None:
    print(f"[server-e2e {time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---------------------------------------------------------------- one request, timed on the client

@dataclass
class Request:
    """One /run request as the page sees it: seconds after submit."""
    label: str
    configs: str
    first_text_s: float | None = None
    metrics_s: dict[str, float] = field(default_factory=dict)  # config -> its card got metrics
    end_s: float = 0.0
    results: list[dict] = field(default_factory=list)
    error: str = ""
    snapshots: int = 0
    # each card's stages as the page saw them: config -> [[status, seconds after submit on the page,
    # when the worker sent it, when the server got it], ...] (the last two None where not stamped)
    timeline: dict[str, list] = field(default_factory=dict)
    # the latest arrival on the page after the worker sent it (else after the server got it), seconds
    worst_lag_s: float | None = None
    worst_lag_at: str = ""
    # each snapshot: [when the server yielded it, when it arrived here], seconds after submit
    transport: list = field(default_factory=list)
    submitted_at: float = 0.0  # time.time(), to lay the server's sampled stacks beside this timeline
    # what the server's threads were doing meanwhile (arena/core/stack_sampler.py), seconds after submit
    server_spans: list[dict] = field(default_factory=list)

    def row(self, name: str) -> dict | None:
        return next((r for r in self.results if r["config"] == name), None)


def run_request(client: Client, label: str, configs: str, *, on_snapshot=None, **settings: Any) -> Request:
    req = Request(label, configs)
    kw = dict(prompt=PROMPT, model="default", configs=configs, max_new_tokens=32, repeats=3)
    kw.update(settings)
    t0 = time.monotonic()
    req.submitted_at = time.time()
    try:
        for snap in client.submit(**kw, api_name="/run"):
            now = time.monotonic() - t0
            req.snapshots += 1
            if snap.get("yielded_at"):  # how long the transport took: yielded by the server -> here
                req.transport.append([round(snap["yielded_at"] - req.submitted_at, 3), round(now, 3)])
            if req.first_text_s is None and any((p.get("text") or "").strip() for p in snap["panels"]):
                req.first_text_s = now
            for p in snap["panels"]:
                if p.get("metrics") and p["config"] not in req.metrics_s:
                    req.metrics_s[p["config"]] = now
                seen = req.timeline.setdefault(p["config"], [])
                stage = f"{p['status']} {p.get('repeat') or ''}".strip()
                if not seen or seen[-1][0] != stage:
                    sent, got = (_after(req.submitted_at, p.get(k)) for k in ("sent_at", "server_at"))
                    seen.append([stage, round(now, 3), sent, got])
                    origin = sent if sent is not None else got
                    if origin is not None and (req.worst_lag_s is None or now - origin > req.worst_lag_s):
                        req.worst_lag_s, req.worst_lag_at = round(now - origin, 3), f"{p['config']}: {stage}"
            req.results = snap["results"]
            if on_snapshot is not None:
                on_snapshot(snap, now)
    except Exception as exc:  # recorded: the report says what went wrong
        req.error = f"{type(exc).__name__}: {exc}"
    req.end_s = time.monotonic() - t0
    say(f"{label}: {configs} in {req.end_s:.1f} s, first text {fmt(req.first_text_s)} s"
        + (f", ERROR {req.error}" if req.error else ""))
    return req


def _after(t0: float, stamp: float | None) -> float | None:
    """A time.time() stamp as seconds after submit (None where the event carried none)."""
    return round(stamp - t0, 3) if stamp else None


def worst_lag(node: Any) -> tuple[float | None, str]:
    """The latest event on the page (after its worker sent it) over every request in `node`."""
    found: list[tuple[float, str]] = []

    def walk(item: Any, where: str) -> None:
        if isinstance(item, dict):
            if item.get("worst_lag_s") is not None:
                found.append((item["worst_lag_s"], f"{item.get('label', where)}: {item.get('worst_lag_at')}"))
            for key, value in item.items():
                walk(value, key)
        elif isinstance(item, list):
            for value in item:
                walk(value, where)

    walk(node, "")
    return max(found) if found else (None, "")


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def wait_spare(client: Client, timeout_s: float = 180) -> float | None:
    """Seconds until the pool's spare worker (imports done) is ready; None if it never is."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if any(w.get("spare") and w.get("ready") for w in client.predict(api_name="/workers")):
            return time.monotonic() - t0
        time.sleep(0.25)
    return None


# ---------------------------------------------------------------- GPU and host memory, sampled

class MemorySampler:
    """Every `every_s`: each GPU process's NVML memory (the server, its workers by pid) and the
    server's resident memory, with markers for what was happening."""

    def __init__(self, server_pid: int, every_s: float = 0.25) -> None:
        import psutil

        self.server = psutil.Process(server_pid)
        self.every_s = every_s
        self.samples: list[dict[str, Any]] = []
        self.marks: list[tuple[float, str]] = []
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._nvml = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = (pynvml, [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())])
        except Exception:
            self._nvml = None
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @property
    def gpu(self) -> bool:
        return self._nvml is not None

    def start(self) -> "MemorySampler":
        self._thread.start()
        return self

    def mark(self, text: str) -> None:
        self.marks.append((round(time.monotonic() - self.t0, 2), text))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.read())
            self._stop.wait(self.every_s)

    def read(self) -> dict[str, Any]:
        try:
            family = {self.server.pid} | {c.pid for c in self.server.children(recursive=True)}
            rss = self.server.memory_info().rss / 2**20
        except Exception:
            family, rss = set(), float("nan")
        sample: dict[str, Any] = {"t": round(time.monotonic() - self.t0, 2), "server_rss_mb": round(rss, 1)}
        if self._nvml is not None:
            pynvml, handles = self._nvml
            procs: dict[int, float] = {}
            used = 0.0
            for h in handles:
                try:
                    used += pynvml.nvmlDeviceGetMemoryInfo(h).used / 2**20
                    for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
                        procs[p.pid] = procs.get(p.pid, 0.0) + (p.usedGpuMemory or 0) / 2**20
                except Exception:
                    pass
            sample["device_used_mb"] = round(used, 1)
            sample["server_gpu_mb"] = round(procs.get(self.server.pid, 0.0), 1)
            sample["workers_gpu_mb"] = round(sum(mb for pid, mb in procs.items() if pid in family
                                                 and pid != self.server.pid), 1)
            sample["others_gpu_mb"] = round(sum(mb for pid, mb in procs.items() if pid not in family), 1)
            sample["gpu_processes"] = len([p for p in procs if p in family])
        return sample

    def summary(self) -> dict[str, Any]:
        key = "workers_gpu_mb" if self.gpu else "server_rss_mb"
        values = [s.get(key, 0.0) for s in self.samples] or [0.0]
        rss = [s["server_rss_mb"] for s in self.samples] or [0.0]
        return {"gpu": self.gpu, "samples": len(self.samples), "peak_workers_gpu_mb": max(values) if self.gpu else None,
                "server_rss_start_mb": rss[0], "server_rss_max_mb": max(rss), "server_rss_end_mb": rss[-1],
                "server_gpu_max_mb": max((s.get("server_gpu_mb", 0.0) for s in self.samples), default=None)}


# ---------------------------------------------------------------- phases

def phase_quick(client: Client, quick: str, six: str, tokens: int, only_first: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"spare_ready_after_s": wait_spare(client)}
    cold = run_request(client, "quick cold", quick, max_new_tokens=tokens, repeats=1)
    warm = run_request(client, "quick warm", quick, max_new_tokens=tokens, repeats=1)
    out["sdpa"] = {"cold": asdict(cold), "warm": asdict(warm)}
    out["targets"] = {
        "first text cold (spare ready) <= 1.5 s": _le(cold.first_text_s, 1.5),
        "first text warm <= 0.3 s": _le(warm.first_text_s, 0.3),
        "a warm run's end <= its timed generation + 0.5 s": _le(
            warm.end_s, _stage(warm, quick.split(",")[0], "timed") + 0.5),
    }
    if only_first:  # --quick-sdpa-only: the cold and warm sdpa requests alone
        return out
    first = run_request(client, "compiled cold", "compiled-decode", max_new_tokens=tokens, repeats=1)
    again = run_request(client, "compiled warm", "compiled-decode", max_new_tokens=tokens, repeats=1)
    w1 = _stage(first, "compiled-decode", "warmup")
    w2 = _stage(again, "compiled-decode", "warmup") or 0.0
    out["compiled_decode"] = {"cold": asdict(first), "warm": asdict(again), "warmup_cold_s": w1, "warmup_warm_s": w2}
    out["targets"]["compiled-decode's second run: warm-up <= 10% of the first's"] = (
        None if not w1 else w2 <= 0.1 * w1)
    cold6 = run_request(client, "six cold", six, max_new_tokens=tokens, repeats=1)
    warm6 = run_request(client, "six warm", six, max_new_tokens=tokens, repeats=1)
    work = sum(_stage(warm6, r["config"], "timed") + (r.get("load_s") or 0.0) for r in warm6.results)
    out["six"] = {"cold": asdict(cold6), "warm": asdict(warm6), "warm_wall_s": warm6.end_s,
                  "warm_timed_plus_loads_s": work, "ratio": warm6.end_s / work if work else None}
    out["targets"][f"{len(six.split(','))}-configuration warm run wall <= 2x (timed + loads)"] = (
        None if not work else warm6.end_s <= 2 * work)
    return out


def _stage(req: Request, config: str, stage: str) -> float:
    row = req.row(config)
    return float(((row or {}).get("stage_s") or {}).get(stage, 0.0))


def _le(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


def phase_cancel(client: Client, configs: str, tokens: int) -> dict[str, Any]:
    """Cancel the second configuration while it streams its timed text."""
    target = configs.split(",")[-1]
    sent: dict[str, float] = {}

    def on_snapshot(snap: dict, now: float) -> None:
        panel = next(p for p in snap["panels"] if p["config"] == target)
        # as soon as the card says it is timing (a short answer's text may arrive with its result)
        if "at" not in sent and panel["status"] == "running":
            sent["at"] = now
            sent["answered"] = client.predict(api_name="/cancel")
            sent["answer_s"] = time.monotonic() - t0 - now
        if "at" in sent and "seen" not in sent and panel["status"] == "cancelled":
            sent["seen"] = now

    t0 = time.monotonic()
    req = run_request(client, "cancel", configs, on_snapshot=on_snapshot, max_new_tokens=tokens, repeats=3)
    latency = sent["seen"] - sent["at"] if "seen" in sent and "at" in sent else None
    kept = [r["config"] for r in req.results if r["status"] == "ok"]
    return {"request": asdict(req), "cancelled_config": target, "cancel_accepted": sent.get("answered"),
            "cancel_to_card_s": latency, "kept": kept,
            "targets": {"cancel request to card 'cancelled' <= 0.5 s": _le(latency, 0.5),
                        "configurations measured before it kept": kept == configs.split(",")[:-1]}}


def phase_families(client: Client, configs: str, tokens: int) -> dict[str, Any]:
    req = run_request(client, "families", configs, max_new_tokens=tokens, repeats=3)
    failed = [(r["config"], r["reason"]) for r in req.results if r["status"] == "failed"]
    return {"request": asdict(req), "failed": failed,
            "targets": {"every configuration ok or refused before it starts (none failed)": not failed and not req.error}}


def phase_memory(client: Client, sampler: MemorySampler, six: str, big: str, tokens: int,
                 budget_mb: float) -> dict[str, Any]:
    """Six embedded-default configurations, the warm pool read after each run, then a large model."""
    listings = []
    for name in six.split(","):
        sampler.mark(f"memory: {name}")
        run_request(client, f"memory {name}", name, max_new_tokens=tokens, repeats=1)
        workers = [w for w in client.predict(api_name="/workers") if not w.get("spare")]
        held = sum(float(w["gpu_mb"]) for w in workers if isinstance(w.get("gpu_mb"), (int, float)))
        listings.append({"after": name, "warm": [(w["config"], w.get("gpu_mb")) for w in workers], "held_gpu_mb": held})
    big_req = None
    if big:
        sampler.mark(f"memory: {big}")
        big_req = run_request(client, "memory big", "sdpa", model=big, max_new_tokens=tokens, repeats=1,
                              prompt_tokens=128)
        workers = [w for w in client.predict(api_name="/workers") if not w.get("spare")]
        listings.append({"after": big, "warm": [(w["config"], w.get("gpu_mb")) for w in workers]})
    over = [item for item in listings if item.get("held_gpu_mb", 0) > budget_mb]
    big_ok = None if big_req is None else bool(big_req.results) and big_req.results[0]["status"] == "ok"
    return {"after_each": listings, "big": asdict(big_req) if big_req else None, "budget_mb": budget_mb,
            "targets": {"warm pool within its GPU budget after every run": not over if sampler.gpu else None,
                        "large model after six warm configurations runs (no OOM)": big_ok}}


def public_leaks(url: str, needles: Iterable[str]) -> list[str]:
    """Any of `needles` (prompts) found in what the public endpoints return to a new client."""
    client = Client(url, verbose=False)
    found = []
    seen = json.dumps([client.predict(page=p, page_size=1000, include_failed=True, api_name="/leaderboard")
                       for p in (1, 2, 3)]) + json.dumps(client.predict(api_name="/ratings")) \
        + json.dumps(client.predict(api_name="/workers"))
    try:
        seen += json.dumps(client.predict(api_name="/blind_pair"))
    except Exception:
        pass  # refused: this client ran nothing
    for needle in needles:
        if needle in seen:
            found.append(needle)
    return found


def phase_load(server: AppServer, sampler: MemorySampler, duration_s: float, sessions: int, configs: str,
               tokens: int) -> dict[str, Any]:
    soak = load_test.soak_test(server.url, server.db, server.proc.pid, duration_s, sessions, configs, tokens)
    leaks = public_leaks(server.url, ["what is the capital of France", "Cancel me at once", "x" * 200])
    peak = sampler.summary()
    return {"duration_s": duration_s, "sessions": sessions, "configs": configs,
            "runs_completed": soak.finished, "runs_cancelled_in_store": soak.cancelled,
            "refused_busy": soak.refused_busy, "hostile_refused": soak.hostile, "problems": soak.problems,
            "rss_growth_after_warmup_mb": load_test.rss_growth(soak), "leaks": leaks, "memory": peak,
            "targets": {"every accepted run completed or refused in our words; none lost or stored twice":
                        not soak.problems,
                        "no prompt visible through the public endpoints": not leaks,
                        "server RSS growth after warm-up <= 300 MB": load_test.rss_growth(soak) <= 300}}


# ---------------------------------------------------------------- driver

PRESETS = {
    # GPU sizes: every family once, the 7B shape after six small ones, a 3-minute soak
    "gpu": dict(quick="sdpa", six="eager,sdpa,sdpa-flash,static-cache,compiled-decode,bnb-4bit", cancel="eager,sdpa",
                cancel_tokens=512, families="all", big="synthetic:llama-2-7b", load_s=180.0, sessions=4,
                load_configs="eager,sdpa", load_tokens=16, warm_budget_mb=8192),
    # CI on a 2-core CPU: two configurations, a 20-second soak
    "ci": dict(quick="sdpa", six="eager,sdpa", cancel="eager,sdpa", cancel_tokens=64, families="eager,sdpa",
               big="", load_s=20.0, sessions=2, load_configs="eager,sdpa", load_tokens=4, warm_budget_mb=4096),
}


def all_configs() -> str:
    from arena.techniques.registry import REGISTRY

    return ",".join(REGISTRY)


def start(db: Path, env: dict[str, str], log: Path) -> AppServer:
    t0 = time.monotonic()
    server = AppServer(db, env=env, log=log).start(timeout_s=600)
    say(f"server up in {time.monotonic() - t0:.1f} s at {server.url} ({env.get('ARENA_LIMITS') or 'public: SPACE_ID'})")
    return server


def attach_server_spans(node: Any, spans: list[dict], min_s: float = 0.1) -> None:
    """Give every request in `node` (a report, walked) the sampled server spans within its
    submit..end, in seconds after submit, that lasted at least `min_s` there."""
    if isinstance(node, list):
        for item in node:
            attach_server_spans(item, spans, min_s)
        return
    if not isinstance(node, dict):
        return
    if node.get("submitted_at"):
        t0 = node["submitted_at"]
        t1 = t0 + node.get("end_s", 0.0)
        inside = [{**s, "from": round(max(s["from"], t0) - t0, 2), "to": round(min(s["to"], t1) - t0, 2)}
                  for s in spans if s["to"] > t0 and s["from"] < t1]
        node["server_spans"] = sorted((s for s in inside if s["to"] - s["from"] >= min_s),
                                      key=lambda s: s["from"])[:60]
        return
    for value in node.values():
        attach_server_spans(value, spans, min_s)


def run_phases(args: argparse.Namespace) -> dict[str, Any]:
    p = {**PRESETS["ci" if args.ci else "gpu"]}
    for key in list(p):
        value = getattr(args, key, None)
        if value not in (None, ""):
            p[key] = value
    if p["families"] == "all":
        p["families"] = all_configs()
    phases = args.phases.split(",")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="arena-e2e-"))
    home.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"settings": p, "phases": phases, "env": _env()}
    # As a Space image does at build time (Dockerfile): the embedded model converted before the
    # server starts, so a cold run measures the server, not the one-time conversion.
    from arena.models.gguf import default_model_dir

    t0 = time.monotonic()
    default_model_dir()
    report["embedded_model_ready_s"] = round(time.monotonic() - t0, 2)
    base_env = {"ARENA_WARM_MEMORY_MB": str(int(p["warm_budget_mb"])), "PYTHONUNBUFFERED": "1"}
    if args.max_run_s:  # a run that would outlast it ends itself, its remaining configurations marked
        base_env["ARENA_MAX_RUN_S"] = str(args.max_run_s)

    def save() -> None:  # after every phase: a cut-off call keeps what was measured
        (out_dir / "server-e2e.json").write_text(json.dumps(report, indent=1, default=str))
        (out_dir / "server-e2e.md").write_text(markdown(report))

    if {"quick", "cancel", "families", "memory"} & set(phases):
        stacks = out_dir / "stacks-local.jsonl"
        for old in out_dir.glob(stacks.name + "*"):
            old.unlink()
        server = start(home / "local.sqlite", {**base_env, "ARENA_LIMITS": "local", "ARENA_SAMPLE_STACKS": str(stacks)},
                       out_dir / "server-local.log")
        sampler = MemorySampler(server.proc.pid).start()
        client = Client(server.url, verbose=False)
        try:
            report["server_up_s"] = server.up_s
            for name in ("quick", "cancel", "families", "memory"):
                if name not in phases:
                    continue
                sampler.mark(name)
                if name == "quick":
                    report["quick"] = phase_quick(client, p["quick"], p["six"], args.tokens, args.quick_sdpa_only)
                elif name == "cancel":
                    report["cancel"] = phase_cancel(client, p["cancel"], p["cancel_tokens"])
                elif name == "families":
                    report["families"] = phase_families(client, p["families"], args.tokens)
                else:
                    report["memory"] = phase_memory(client, sampler, p["six"], p["big"], args.tokens,
                                                    p["warm_budget_mb"])
                report["local_memory"] = {"summary": sampler.summary(), "marks": sampler.marks}
                save()
            # positive control for the leak check: the local preset shares prompts, so it must see them
            report["local_shares_prompts_seen"] = bool(public_leaks(server.url, [PROMPT]))
        finally:
            sampler.stop()
            server.kill()
            if stacks.exists():
                from arena.core.stack_sampler import read

                attach_server_spans({k: report.get(k) for k in phases}, read(stacks))
        report["local_memory"] = {"summary": sampler.summary(), "marks": sampler.marks,
                                  "samples": sampler.samples[:: max(1, len(sampler.samples) // 400)]}
    if "load" in phases:
        env = {**base_env, "SPACE_ID": "arena/e2e-check"}  # as on a Space: public limits
        env.pop("ARENA_WARM_MEMORY_MB")
        server = start(home / "public.sqlite", env, out_dir / "server-public.log")
        sampler = MemorySampler(server.proc.pid).start()
        try:
            report["load"] = phase_load(server, sampler, p["load_s"], p["sessions"], p["load_configs"],
                                        p["load_tokens"])
        finally:
            sampler.stop()
            server.kill()
        report["load"]["memory"] = sampler.summary()
    lag, where = worst_lag({k: report.get(k) for k in phases})
    report["event_lag"] = {"worst_s": lag, "where": where,
                           "target: every event on the page within 0.3 s of its worker": _le(lag, 0.3)}
    report["tracebacks_in_server_logs"] = [str(f.name) for f in out_dir.glob("server-*.log")
                                           if "Traceback" in f.read_text(errors="replace")]
    save()
    return report


def _env() -> dict[str, Any]:
    try:
        from arena.core.env import collect_env

        env = collect_env()
        return {k: env.get(k) for k in ("hardware", "device", "packages", "driver", "cuda") if k in env}
    except Exception as exc:
        return {"error": str(exc)}


def targets(report: dict[str, Any]) -> list[tuple[str, str, Any]]:
    out = []
    for phase in ("quick", "cancel", "families", "memory", "load"):
        for name, ok in (report.get(phase) or {}).get("targets", {}).items():
            out.append((phase, name, ok))
    return out


def page_timeline(req: dict[str, Any]) -> list[str]:
    """Each card's stages with the second (after submit) the page first showed them and, in
    brackets, when its worker sent it (w) and the server got it (s)."""
    def one(stage: str, page: float, sent: float | None = None, got: float | None = None) -> str:
        stamps = ", ".join(f"{k} {v:.2f}" for k, v in (("w", sent), ("s", got)) if v is not None)
        return f"{stage} {page:.2f}" + (f" ({stamps})" if stamps else "")

    return [f"- {config}: " + ", ".join(one(*item) for item in stages)
            for config, stages in (req.get("timeline") or {}).items()]


def server_lines(req: dict[str, Any]) -> list[str]:
    """The server's threads meanwhile (sampled): where in the arena's code, and the innermost frame."""
    spans = req.get("server_spans") or []
    if not spans:
        return []
    return ["", "The server and its workers meanwhile (sampled stacks, spans of 0.1 s or more, seconds after "
                "submit; `server`/`worker` thread, innermost frame in the arena's code <- innermost frame):",
            *(f"- {s['from']:.2f}-{s['to']:.2f} {s['thread']}: {s['arena'] or '(outside the arena)'}"
              f" <- {s['leaf']}" for s in spans)]


def stage_rows(req: dict[str, Any]) -> list[str]:
    rows = []
    for r in req["results"]:
        st = r.get("stage_s") or {}
        cells = [fmt(st.get(k)) for k in ("start", "imports", "load", "warmup", "timed", "after", "scoring")]
        rows.append(f"| {r['config']} | {r['status']} | {fmt(req['metrics_s'].get(r['config']))} | "
                    + " | ".join(cells) + f" | {fmt(r.get('load_s'))} | {fmt(r.get('export_s'))} | "
                    f"{fmt(r.get('ttft_ms'), 1)} | {fmt(r.get('decode_tokens_per_s'), 1)} | "
                    f"{fmt(r.get('peak_memory_mb'), 0)} | {'yes' if r.get('warm') else ''} | "
                    f"{(r.get('reason') or '').replace('|', '/')[:140]} |")
    return rows


HEAD = ("| configuration | status | metrics on card, s after submit | start | imports | load | warm-up | timed | "
        "after | scoring | load_s | export_s | TTFT ms | decode tok/s | peak MB | warm | reason |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")


def markdown(report: dict[str, Any]) -> str:
    lines = ["# The arena's server, end to end", "",
             f"Environment: {json.dumps(report.get('env'))}", "", "## Targets", "",
             "| phase | target | met |", "|---|---|---|"]
    for phase, name, ok in targets(report):
        lines.append(f"| {phase} | {name} | {'yes' if ok else 'n/a' if ok is None else '**no**'} |")
    lag = report.get("event_lag") or {}
    if lag.get("worst_s") is not None:
        lines += ["", f"Latest event on the page: {fmt(lag['worst_s'])} s after its worker sent it "
                  f"({lag['where']})."]
    q = report.get("quick")
    if q:
        lines += ["", "## Quick checks", "", f"Spare worker ready {fmt(q['spare_ready_after_s'])} s after the page "
                  "asked.", "", "| request | first text, s | end, s |", "|---|---:|---:|"]
        keys = [k for k in ("sdpa", "compiled_decode", "six") if k in q]  # --quick-sdpa-only: sdpa alone
        for key in keys:
            for kind in ("cold", "warm"):
                r = q[key][kind]
                lines.append(f"| {r['label']} ({r['configs']}) | {fmt(r['first_text_s'])} | {fmt(r['end_s'])} |")
        if "six" in q:
            lines += ["", f"compiled-decode warm-up: {fmt(q['compiled_decode']['warmup_cold_s'])} s cold, "
                      f"{fmt(q['compiled_decode']['warmup_warm_s'])} s warm. Six-configuration warm run: "
                      f"{fmt(q['six']['warm_wall_s'])} s wall against {fmt(q['six']['warm_timed_plus_loads_s'])} s "
                      f"of timed generation plus loads (ratio {fmt(q['six']['ratio'])})."]
        for key, kind in ((k, kind) for k in keys for kind in ("cold", "warm")):
            lines += ["", f"Stages, {q[key][kind]['label']}:", "", HEAD, *stage_rows(q[key][kind]), "",
                      "As the page saw it (seconds after submit):", *page_timeline(q[key][kind]),
                      *server_lines(q[key][kind])]
    c = report.get("cancel")
    if c:
        lines += ["", "## Cancel", "", f"/cancel while {c['cancelled_config']} streamed: its card said cancelled "
                  f"{fmt(c['cancel_to_card_s'])} s later; kept: {', '.join(c['kept']) or 'none'}."]
    f = report.get("families")
    if f:
        lines += ["", "## Every configuration in one run", "", f"{f['request']['configs'].count(',') + 1} "
                  f"configurations, {fmt(f['request']['end_s'], 1)} s; first text "
                  f"{fmt(f['request']['first_text_s'])} s.", "", HEAD, *stage_rows(f["request"]), "",
                  "As the page saw it (seconds after submit):", *page_timeline(f["request"])]
    m = report.get("memory")
    if m:
        lines += ["", "## GPU memory", "", f"Warm budget {m['budget_mb']:g} MB.", "",
                  "| after | warm workers (configuration, GPU MB) | held MB |", "|---|---|---:|"]
        for item in m["after_each"]:
            lines.append(f"| {item['after']} | {item['warm']} | {fmt(item.get('held_gpu_mb'), 0)} |")
        lines += ["", f"Sampled: {json.dumps(report.get('local_memory', {}).get('summary'))}"]
    ld = report.get("load")
    if ld:
        lines += ["", "## Public server under load", "", f"{ld['sessions']} sessions + 1 hostile client for "
                  f"{ld['duration_s']:g} s: {ld['runs_completed']} runs completed, {ld['refused_busy']} refused "
                  f"as busy, hostile requests refused: {ld['hostile_refused']}; problems: {ld['problems'] or 'none'}; "
                  f"prompts seen through public endpoints: {ld['leaks'] or 'none'}; server RSS growth after warm-up "
                  f"{fmt(ld['rss_growth_after_warmup_mb'], 0)} MB; memory {json.dumps(ld['memory'])}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", "out/server"))
    ap.add_argument("--ci", action="store_true", help="CPU sizes: 2 configurations, a 20-second soak")
    ap.add_argument("--phases", default="quick,cancel,families,memory,load")
    ap.add_argument("--quick-sdpa-only", action="store_true", help="quick: the cold and warm sdpa requests alone")
    ap.add_argument("--tokens", type=int, default=32, help="new tokens of the quick, families and memory runs")
    ap.add_argument("--families", help="configurations of the families phase (default: every one; 'all')")
    ap.add_argument("--six", help="the six-configuration run (comma-separated)")
    ap.add_argument("--big", help="the large model run after six (default synthetic:llama-2-7b on GPU)")
    ap.add_argument("--load-s", type=float, dest="load_s")
    ap.add_argument("--sessions", type=int)
    ap.add_argument("--home", help="where the servers keep their stores (default: a new temporary folder)")
    ap.add_argument("--max-run-s", type=float, help="ARENA_MAX_RUN_S of the local server")
    ap.add_argument("--warm-budget-mb", type=float, dest="warm_budget_mb",
                    help="ARENA_WARM_MEMORY_MB of the local server (GPU default 8192: six workers of the embedded "
                         "default, about 1 GB each with their CUDA context)")
    args = ap.parse_args(argv)
    report = run_phases(args)
    say("targets:")
    for phase, name, ok in targets(report):
        print(f"  {phase:9} {'met' if ok else 'n/a' if ok is None else 'MISSED'}  {name}")
    print(f"tables: {Path(args.out) / 'server-e2e.md'}")
    lost = [t for t in targets(report) if t[0] == "load" and t[2] is False]
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
