"""`python -m benchmarks.gpu STAGE [STAGE...]`: the stages of arena/bench/stages.py, run through the
arena's own runners in this process, resumable.

Every row goes to the store (--db) the moment it finishes, and the ledger beside it
(arena/bench/ledger.py) notes it for its stage, part settings, hardware and code version: a row
noted there is skipped on the next call, so a stage cut by its budget continues where it stopped.
The budget (--budget-s per stage, --total-budget-s for the call) stops new rows from starting;
a started row runs to its own time limit, and what was measured stays. A call always finishes at
least one row, so repeated calls under any budget make progress. The baseline of a run or sweep
(eager, or the part's first row) is measured again in a call that has other rows to measure, so
agreement, NLL and speedups always compare rows of one call.

Per stage, into --out: STAGE.json (its rows: Result dicts for run and sweep kinds, the check's
rows otherwise) and STAGE.md (the table, what ran where, the command that reruns it); a sweep also
gets its docs folder (STAGE/: README, CSV and PNG per chart). A stage that fails (bad settings, a
missing package, a crash) is reported and the next one runs. Exit status: 0 every stage complete
(or skipped: too few GPUs), 3 rows left by the budget (run again), 1 a stage failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

from arena.bench import ledger as ledger_mod
from arena.bench.ledger import Key, Ledger
from arena.bench.stages import GROUPS, RUN_KINDS, STAGES, Part, Stage, UnknownStageError, expand
from arena.techniques import registry
from arena.core.ending import Code
from arena.core.errors import one_line

REPO = ledger_mod.PACKAGE.parent


class CallClock:
    """The whole call's deadline (None: none) and the rows it has finished."""

    def __init__(self, seconds: float | None) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.finished = 0


class Budget:
    """When a stage stops starting rows: its own seconds are up and it has finished a row, or the
    call's are up and the call has finished one (so every call makes progress)."""

    def __init__(self, seconds: float | None, call: CallClock) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.call = call
        self.finished = 0

    def finish(self) -> None:
        self.finished += 1
        self.call.finished += 1

    def spent(self) -> bool:
        now = time.monotonic()
        return bool(self.deadline is not None and now >= self.deadline and self.finished
                    or self.call.deadline is not None and now >= self.call.deadline and self.call.finished)


@dataclass
class Context:
    """What every stage of one call shares."""

    db: Path
    out: Path
    hardware: str
    code: str
    gpu_count: int
    fresh: bool = False
    retry_failed: bool = False
    png: bool = True  # sweep charts as PNG too (kaleido + a Chromium); tables and CSV always
    say: Callable[[str], None] = print
    ledger: Ledger = field(init=False)
    store: Any = field(init=False)

    def __post_init__(self) -> None:
        from arena.data.store import Store

        self.store = Store(self.db)
        self.ledger = Ledger(self.db)

    def key(self, stage: Stage, part: Part) -> Key:
        return Key(stage.name, part.key(stage.kind), self.hardware, self.code)

    def done(self, stage: Stage, part: Part) -> dict[str, str]:
        return {} if self.fresh else self.ledger.done(self.key(stage, part), retry_failed=self.retry_failed)


@dataclass
class Tally:
    """One stage's rows in this call."""

    measured: int = 0  # rows finished (any status) in this call
    skipped: int = 0  # done in an earlier call
    left: int = 0  # not started: the budget ran out
    failures: list[str] = field(default_factory=list)  # parts that could not run, with the reason


def _stopped(ending: str | None) -> bool:
    """A row the driver stopped (cancelled, not run, cut by a time limit): not done."""
    return bool(ending) and Code(ending).stopped


def _headline(r: dict[str, Any]) -> str:
    if r.get("status") != "ok":
        return f"{r.get('status')}: {r.get('reason')}"
    bits = [f"decode {r['decode_tokens_per_s']:,.1f} tok/s" if r.get("decode_tokens_per_s") else "",
            f"TTFT {r['ttft_ms']:,.1f} ms" if r.get("ttft_ms") is not None else "",
            f"latency {r['latency_ms']:,.1f} ms" if r.get("latency_ms") is not None and not r.get("ttft_ms") else "",
            f"peak {r['peak_memory_mb']:,.0f} MB" if r.get("peak_memory_mb") is not None else ""]
    return "ok, " + ", ".join(b for b in bits if b)


class Pending:
    """The rows of a part still to measure, the baseline measured again when others are, and
    the rule that stops new rows once the budget is spent and this call has finished one."""

    def __init__(self, names: list[str], done: dict[str, str], budget: Budget, baseline: str | None) -> None:
        self.names, self.budget = names, budget
        self.todo = [n for n in names if n not in done]
        self.rerun = baseline if baseline and self.todo and baseline not in self.todo and done.get(baseline) == "ok" \
            else None
        self.finished: list[str] = []  # rows finished in this call (the baseline's rerun apart)
        self.cancel = threading.Event()

    @property
    def request_names(self) -> list[str]:
        return ([self.rerun] if self.rerun else []) + self.todo

    def finish(self, name: str) -> None:
        if name == self.rerun:
            return  # a baseline measured again is for the rows after it: at least one of them runs
        self.finished.append(name)
        self.budget.finish()
        if self.budget.spent():
            self.cancel.set()  # the runners check it before they start a row, never inside one


def _baseline(names: list[str]) -> str | None:
    return registry.BASELINE if registry.BASELINE in names else (names[0] if names else None)


def run_part(stage: Stage, part: Part, ctx: Context, budget: Budget, tally: Tally, tag: str) -> None:
    names = part.configs.names()
    key = ctx.key(stage, part)
    done = ctx.done(stage, part)
    one_by_one = stage.kind in ("fidelity", "profile", "script")
    rows = [part.label or "output"] if stage.kind == "script" else names
    pending = Pending(rows, done, budget, None if one_by_one else _baseline(names))
    tally.skipped += len(rows) - len(pending.todo)
    if not pending.todo:
        ctx.say(f"{tag}all {len(rows)} rows done in the store (this hardware and code): nothing to measure")
        return
    if len(pending.todo) < len(rows):
        ctx.say(f"{tag}{len(rows) - len(pending.todo)} of {len(rows)} rows done already; measuring "
                f"{', '.join(pending.todo)}" + (f" (and {pending.rerun} again: the baseline)" if pending.rerun else ""))
    if stage.kind in RUN_KINDS:
        _run_rows(part, ctx, key, pending, tag)
    elif stage.kind == "sweep":
        _sweep_rows(part, ctx, key, pending, tag)
    else:
        measure_one = {"fidelity": _fidelity_row, "profile": _profile_row, "script": _script_row}[stage.kind]
        for name in pending.todo:
            if pending.budget.spent():
                break
            ctx.say(f"{tag}{name}: starting")
            status, reason, payload = measure_one(stage, part, name, ctx, tag)
            ctx.ledger.record(key, name, status, reason, payload=payload)
            ctx.say(f"{tag}{name}: {status}" + (f": {reason}" if reason else ""))
            pending.finish(name)
    tally.measured += len(pending.finished)
    tally.left += len([n for n in pending.todo if n not in pending.finished])


def _request_settings(part: Part) -> dict[str, Any]:
    return {k: v for k, v in part.settings.items() if k != "argv"}


def _run_rows(part: Part, ctx: Context, key: Key, pending: Pending, tag: str) -> None:
    from arena.bench.runs import measure
    from arena.core.request import RunRequest

    started = time.monotonic()

    def on_event(event: dict[str, Any]) -> None:
        nonlocal started
        if event["type"] == "status" and event.get("stage") == "starting":
            started = time.monotonic()
            ctx.say(f"{tag}{event['config']}: starting")
        elif event["type"] == "result":
            r = event["result"]
            if _stopped(r.get("ending")):
                return
            ctx.ledger.record(key, r["config"], r["status"], r.get("reason") or "", run_id=r["run_id"])
            took = f" ({time.monotonic() - started:.0f} s)" if r["status"] != "unavailable" else ""
            ctx.say(f"{tag}{r['config']}: {_headline(r)}{took}")
            pending.finish(r["config"])

    settings = _request_settings(part)
    measure(RunRequest(**{**settings, "configs": pending.request_names}), store=ctx.store, on_event=on_event,
            cancel=pending.cancel)


def _sweep_rows(part: Part, ctx: Context, key: Key, pending: Pending, tag: str) -> None:
    from arena.bench.runs import BENCH_LIMITS
    from arena.sweep.plan import SweepRequest, validate_sweep
    from arena.sweep.runner import run_sweep

    prepared = validate_sweep(SweepRequest(**{**_request_settings(part), "attn": pending.request_names}),
                              limits=BENCH_LIMITS)
    per_group = len(prepared.points)
    seen: dict[str, list[Any]] = {}
    runs: list[str] = []

    def on_point(r: Any) -> None:
        # stored here, not by run_sweep: the points of groups the budget did not start are no results
        if _stopped(r.ending):
            return
        if not runs:
            runs.append(r.run_id)
            ctx.store.start_run(r.run_id, {"sweep": prepared.request.to_dict(), "stage": key.stage})
        ctx.store.add(r)
        points = seen.setdefault(r.config, [])
        points.append(r)
        if len(points) < per_group:
            return
        ok = [p for p in points if p.status == "ok"]
        status = "ok" if ok else points[0].status
        reason = next((p.reason for p in points if p.reason), "")
        ctx.ledger.record(key, r.config, status, reason, run_id=r.run_id)
        ctx.say(f"{tag}{r.config}: {len(ok)} of {per_group} points measured" + (f"; {reason}" if reason else ""))
        pending.finish(r.config)

    ctx.say(f"{tag}{len(prepared.groups)} implementations x {per_group} points")
    run_sweep(prepared, on_point=on_point, cancel=pending.cancel)
    if runs:
        ctx.store.finish_run(runs[0], "cancelled" if pending.cancel.is_set() else "complete")


def _fidelity_row(stage: Stage, part: Part, name: str, ctx: Context, tag: str) -> tuple[str, str, Any]:
    from arena.bench import fidelity
    from arena.core.request import RunRequest

    row = fidelity.compare(RunRequest(**_request_settings(part)), name, rounds=int(stage.options.get("rounds", 2)),
                           store=ctx.store, say=lambda line: ctx.say(f"{tag}{line}"))
    return row["status"], row.get("reason") or fidelity.met(row), row


def _call_into(queue: Any, fn: Callable[..., Any], args: tuple) -> None:
    try:
        queue.put(("ok", fn(*args)))
    except Exception as exc:
        queue.put(("error", one_line(exc)))


def in_spawned(fn: Callable[..., Any], args: tuple, timeout_s: float) -> Any:
    """fn(*args) in a fresh spawned process; RuntimeError with its one line when it raises, dies
    or passes `timeout_s` (then it is killed)."""
    mp = get_context("spawn")
    queue = mp.Queue()
    proc = mp.Process(target=_call_into, args=(queue, fn, args), daemon=True)
    proc.start()
    try:
        kind, value = queue.get(timeout=timeout_s)
    except Exception:
        kind, value = "error", (f"timed out after {timeout_s:.0f} s" if proc.is_alive()
                                else f"its process died (exit code {proc.exitcode})")
    finally:
        if proc.is_alive():
            proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if kind != "ok":
        raise RuntimeError(value)
    return value


def _profile_row(stage: Stage, part: Part, name: str, ctx: Context, tag: str) -> tuple[str, str, Any]:
    """In a spawned process: a profile loads its model in the caller, and the driver's own
    process keeps no model or CUDA memory between stages."""
    from arena.bench.profile import profile_config
    from arena.models.dtypes import resolve_dtype

    s = part.settings
    args = (name, s["model"], resolve_dtype(s.get("dtype", "auto")), s.get("prompt", ""), s.get("prompt_tokens", 128),
            int(stage.options.get("tokens", 21)), ctx.out / "traces")
    text = in_spawned(profile_config, args, float(s.get("timeout_s", 600)))
    status = "unavailable" if ": unavailable:" in text.splitlines()[0] else "ok"
    return status, text.splitlines()[0].split(": unavailable: ")[-1] if status != "ok" else "", {"text": text}


def _script_row(stage: Stage, part: Part, name: str, ctx: Context, tag: str) -> tuple[str, str, Any]:
    """A benchmark that is its own program (a server, one process per GPU): run from the checkout,
    its output streamed and kept."""
    configs = ",".join(part.configs.names())
    argv = [a.replace("{configs}", configs).replace("{out}", str(ctx.out)) for a in part.settings["argv"]]
    timeout = float(part.settings.get("timeout_s", 600))
    proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        os.killpg(proc.pid, signal.SIGKILL)  # the script's own children (a server, ranks) too

    timer = threading.Timer(timeout, kill)
    timer.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            ctx.say(f"{tag}  {line.rstrip()}")
        rc = proc.wait()
    finally:
        timer.cancel()
    command = "python " + " ".join(argv)
    payload = {"command": command, "output": lines}
    if rc == 0 and not timed_out.is_set():
        return "ok", "", payload
    why = f"timed out after {timeout:.0f} s" if timed_out.is_set() else f"exit status {rc}"
    return "failed", f"{why}: {lines[-1] if lines else ''}"[:300], payload


# ----------------------------------------------------------------------------- a stage


def run_stage(stage: Stage, ctx: Context, budget: Budget) -> Tally:
    tally = Tally()
    tag = f"[{stage.name}] "
    if stage.gpus > 1 and ctx.gpu_count < stage.gpus:
        ctx.say(f"{tag}skipped: needs {stage.gpus} GPUs, this machine has {ctx.gpu_count}")
        return tally
    if budget.spent():
        tally.left = len(stage.names()) or len(stage.parts)
        ctx.say(f"{tag}not started: the call's budget is spent")
        return tally
    ctx.say(f"{tag}{stage.about} (expected about {stage.minutes:g} min on one H200)")
    for number, part in enumerate(stage.parts, 1):
        ptag = tag + (f"({part.label}) " if part.label and len(stage.parts) > 1 else "")
        if budget.spent():
            tally.left += len(part.configs.names()) or 1
            continue
        try:
            run_part(stage, part, ctx, budget, tally, ptag)
        except Exception as exc:  # bad settings, a missing package, a crash: report it, go on
            reason = one_line(exc)
            tally.failures.append(f"{part.label or f'part {number}'}: {reason}")
            ctx.say(f"{ptag}failed: {reason}")
    write_outputs(stage, ctx, tally)
    return tally


def stage_rows(stage: Stage, ctx: Context) -> list[tuple[Part, list[dict[str, Any]]]]:
    """Each part's rows for this hardware and code, newest per row, in the part's order: Result
    dicts (run and sweep kinds: a sweep row is all its points) or the check's own rows."""
    out = []
    for part in stage.parts:
        latest = ctx.ledger.latest(ctx.key(stage, part))
        order = [part.label or "output"] if stage.kind == "script" else part.configs.names()
        rows: list[dict[str, Any]] = []
        for name in order:
            entry = latest.get(name)
            if entry is None:
                continue
            if entry["run_id"]:
                rows += [r.to_dict() for r in ctx.store.results(run_id=entry["run_id"], config=name)]
            else:
                rows.append({"config": name, "status": entry["status"], "reason": entry["reason"],
                             **(entry["payload"] or {})})
        out.append((part, rows))
    return out


def _table(stage: Stage, rows: list[dict[str, Any]]) -> str:
    from arena.bench import tables

    if not rows:
        return "(no row measured yet)"
    if stage.kind == "bandwidth":
        return tables.bandwidth_table(rows)
    if stage.kind == "quant":
        return tables.quant_table(rows)
    if stage.kind == "speculative":
        return tables.speculative_table(rows)
    if stage.kind == "fidelity":
        from arena.bench.fidelity import table

        return table(rows)
    if stage.kind == "profile":
        return "\n\n".join(r.get("text") or f"### {r['config']}: {r['status']}: {r['reason']}" for r in rows)
    if stage.kind == "script":
        return "\n\n".join(f"`{r.get('command', '')}`: {r['status']}" + (f" ({r['reason']})" if r.get("reason") else "")
                           + "\n\n```\n" + "\n".join(r.get("output") or []) + "\n```" for r in rows)
    if stage.gpus > 1:
        return tables.placement_table(rows)
    return tables.run_table(rows)


def _sweep_docs(stage: Stage, points: list[dict[str, Any]], ctx: Context) -> str:
    """The sweep's docs folder (README, CSV, PNG) under --out; its README's text for STAGE.md."""
    from arena.bench.sweep_docs import write_report

    docs = ctx.out / stage.name
    note = ""
    try:
        write_report(points, docs, png=ctx.png)
    except Exception as exc:  # kaleido or a Chromium missing: tables and CSV still
        write_report(points, docs, png=False)
        note = f"(no PNG: {one_line(exc)})\n\n"
    text = (docs / "README.md").read_text(encoding="utf-8").split("\n", 1)[-1]
    return note + re.sub(r"\]\((?!https?:)([^)]+)\)", rf"]({stage.name}/\1)", text)


def write_outputs(stage: Stage, ctx: Context, tally: Tally) -> None:
    from arena.core.env import collect_env

    ctx.out.mkdir(parents=True, exist_ok=True)
    parts = stage_rows(stage, ctx)
    every = [r for _, rows in parts for r in rows]
    (ctx.out / f"{stage.name}.json").write_text(json.dumps(every, indent=1, default=str), encoding="utf-8")
    env = collect_env()
    pk = env.get("packages") or {}
    versions = ", ".join(f"{n} {pk[n]}" for n in ("torch", "transformers", "flash-attn", "bitsandbytes", "torchao",
                                                    "onnxruntime-gpu") if pk.get(n))
    git = ledger_mod.git_label()
    md = [f"# {stage.name}: {stage.about}", "",
          f"Hardware: {ctx.hardware}" + (f", driver {env['driver']}, CUDA {env['cuda']}" if env.get("driver") else "")
          + f". {versions}. Arena code {ctx.code}" + (f" ({git})" if git else "") + ".", "",
          f"Rerun: `python -m benchmarks.gpu {stage.name}` (rows already in the store for this hardware and code "
          "are kept; `--fresh` measures them again).", ""]
    if tally.left:
        md += [f"**Incomplete**: {tally.left} rows not measured yet (budget); run the command again.", ""]
    for failure in tally.failures:
        md += [f"**Failed**: {failure}", ""]
    for part, rows in parts:
        if len(parts) > 1 or part.label:
            md += [f"## {part.label or 'part'}", ""]
        settings = {k: v for k, v in part.settings.items() if k not in ("argv",)}
        if stage.kind != "script":
            md += [f"Settings: {json.dumps(settings, default=str)}; configurations: {part.configs.text}.", ""]
        md += [_table(stage, rows), ""]
    if stage.kind == "sweep" and every:
        md += [_sweep_docs(stage, every, ctx), ""]
    if stage.gpus > 1 and every:
        from arena.bench.tables import parallel_comparison, placement_kind

        if any(placement_kind(r) != "one GPU" for r in every if r.get("status") == "ok"):
            md += ["## One GPU, device_map split, tensor parallel", "", parallel_comparison(every), ""]
    (ctx.out / f"{stage.name}.md").write_text("\n".join(md), encoding="utf-8")
    ctx.say(f"[{stage.name}] wrote {ctx.out / stage.name}.md and .json: {len(every)} rows")


# ----------------------------------------------------------------------------- the call


def listing(ctx: Context, stages: dict[str, Stage] = STAGES, groups: dict[str, tuple[str, ...]] = GROUPS) -> str:
    lines = [f"{'stage':<18}{'kind':<11}{'min':>5}{'GPUs':>6}{'done':>10}  about",
             "-" * 100]
    for stage in stages.values():
        total = done = 0
        for part in stage.parts:
            rows = [part.label or "output"] if stage.kind == "script" else part.configs.names()
            total += len(rows)
            done += len(set(rows) & set(ctx.ledger.done(ctx.key(stage, part))))
        lines.append(f"{stage.name:<18}{stage.kind:<11}{stage.minutes:>5g}{stage.gpus:>6}{f'{done}/{total}':>10}  "
                     f"{stage.about}")
    lines += ["", "groups: " + "; ".join(f"{g} = {' '.join(m)}" for g, m in groups.items()), "",
              f"done: rows in {ctx.db} for this hardware ({ctx.hardware}) and code ({ctx.code})"]
    return "\n".join(lines)


def run_stages(stages: list[Stage], ctx: Context, *, budget_s: float | None = None,
               total_budget_s: float | None = None) -> dict[str, Tally]:
    call = CallClock(total_budget_s)
    ctx.out.mkdir(parents=True, exist_ok=True)  # scripts write into it too ({out})
    tallies = {}
    for stage in stages:
        try:
            tallies[stage.name] = run_stage(stage, ctx, Budget(budget_s, call))
        except Exception as exc:  # the outputs themselves failed: say so, go on
            tallies[stage.name] = Tally(failures=[one_line(exc)])
            ctx.say(f"[{stage.name}] failed: {one_line(exc)}")
    return tallies


def make_context(db: str | Path, out: str | Path, *, fresh: bool = False, retry_failed: bool = False,
                 png: bool = True, say: Callable[[str], None] | None = None) -> Context:
    from arena.core.env import collect_env, platform

    env = collect_env()
    t0 = time.monotonic()
    return Context(Path(db), Path(out), env["hardware"], ledger_mod.code_version(), platform().gpu_count,
                   fresh=fresh, retry_failed=retry_failed, png=png,
                   say=say or (lambda line: print(f"[{time.monotonic() - t0:6.0f}s] {line}", flush=True)))


def main(argv: list[str] | None = None) -> int:
    from arena.core.paths import arena_home

    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stages", nargs="*", help="stage or group names (see --list)")
    p.add_argument("--list", action="store_true", help="the stages, expected minutes and rows already done")
    p.add_argument("--db", default=None, help="SQLite store (default: ARENA_HOME/gpu.sqlite)")
    p.add_argument("--out", default=os.environ.get("OUT") or "out", help="folder for STAGE.json / STAGE.md")
    p.add_argument("--budget-s", type=float, help="seconds each stage may start rows in")
    p.add_argument("--total-budget-s", type=float, help="seconds the whole call may start rows in")
    p.add_argument("--fresh", action="store_true", help="measure rows already in the store again")
    p.add_argument("--retry-failed", action="store_true", help="measure rows that failed again (not the refused)")
    p.add_argument("--no-png", action="store_true", help="sweep docs without PNG charts (tables and CSV)")
    args = p.parse_args(argv)
    from arena.core import quiet

    quiet.silence()  # the libraries' known noise off, as in the workers (ARENA_VERBOSE=1 keeps it)
    try:
        chosen = expand(args.stages)
    except UnknownStageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not chosen and not args.list:
        print("error: name a stage or a group (python -m benchmarks.gpu --list shows them)", file=sys.stderr)
        return 2
    ctx = make_context(args.db or arena_home() / "gpu.sqlite", args.out, fresh=args.fresh,
                       retry_failed=args.retry_failed, png=not args.no_png)
    if args.list:
        print(listing(ctx))
        return 0
    ctx.say(f"store {ctx.db}; out {ctx.out}; hardware {ctx.hardware}; code {ctx.code}; "
            f"stages {', '.join(s.name for s in chosen)} (about {sum(s.minutes for s in chosen):g} min)")
    tallies = run_stages(chosen, ctx, budget_s=args.budget_s, total_budget_s=args.total_budget_s)
    for name, t in tallies.items():
        state = "failed: " + "; ".join(t.failures) if t.failures else (
            f"{t.left} rows left (budget): run again" if t.left else "complete")
        ctx.say(f"[{name}] {t.measured} measured, {t.skipped} done before; {state}")
    if any(t.failures for t in tallies.values()):
        return 1
    return 3 if any(t.left for t in tallies.values()) else 0
