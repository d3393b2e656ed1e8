"""Settings -> RunRequest -> validate -> execute, written once for every benchmark script and the
stage driver: the same request, limits and runner as `python -m arena run`, in this process."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from arena.core.limits import ServerLimits
from arena.core.request import RequestError, RunRequest
from arena.execute.prepare import PreparedRun, validate
from arena.core.results import Result

# Every row cold, as one CLI call per table used to be: a warm worker would skip load and warm-up
# for a configuration measured again (a stage's baseline, a fidelity round).
BENCH_LIMITS = ServerLimits(warm_workers=False)

# RunRequest fields a benchmark's command line sets (argparse dest = field name)
_ARGS = ("model", "prompt", "prompt_tokens", "max_new_tokens", "batch_size", "dtype", "repeats", "timeout_s")


def add_run_arguments(parser: argparse.ArgumentParser, **defaults: Any) -> None:
    """--model, --configs, --prompt, --prompt-tokens, --max-new-tokens, --batch-size, --dtype,
    --repeats, --timeout, --db and --json; defaults are RunRequest's unless given here."""
    base = {f.name: f.default for f in fields(RunRequest) if f.name in _ARGS}
    base["configs"] = ",".join(RunRequest().configs)
    base.update(defaults)
    parser.add_argument("--model", default=base["model"], help="default, a Hub id, a local path, or synthetic:NAME")
    parser.add_argument("--configs", "--config", default=base["configs"], help="comma-separated configuration names")
    parser.add_argument("--prompt", default=base["prompt"])
    parser.add_argument("--prompt-tokens", type=int, default=base["prompt_tokens"],
                        help="prompt length for synthetic models")
    parser.add_argument("--max-new-tokens", type=int, default=base["max_new_tokens"])
    parser.add_argument("--batch-size", type=int, default=base["batch_size"])
    parser.add_argument("--dtype", default=base["dtype"])
    parser.add_argument("--repeats", type=int, default=base["repeats"])
    parser.add_argument("--timeout", dest="timeout_s", type=float, default=base["timeout_s"],
                        help="seconds per configuration")
    parser.add_argument("--db", help="also record the results in this SQLite store")
    parser.add_argument("--json", help="write the results as JSON here")


def request_from(args: argparse.Namespace, **overrides: Any) -> RunRequest:
    """The RunRequest of parsed `add_run_arguments` settings, with `overrides` on top."""
    values: dict[str, Any] = {name: getattr(args, name) for name in _ARGS if hasattr(args, name)}
    if getattr(args, "configs", None):
        values["configs"] = [c.strip() for c in args.configs.split(",") if c.strip()]
    values.update(overrides)
    return RunRequest(**values)


@dataclass
class Measured:
    prepared: PreparedRun
    results: list[Result]

    def first_ok(self) -> Result | None:
        return next((r for r in self.results if r.status == "ok"), None)

    def header(self, packages: tuple[str, ...] = ("torch", "transformers")) -> str:
        """Two lines: what ran (model, dtype, lengths, repeats) and where (hardware, versions)."""
        req = self.prepared.request
        lines = [f"model: {self.prepared.spec.display}   dtype: {self.prepared.dtype}   batch: {req.batch_size}   "
                 f"prompt tokens: {len(self.prepared.prompt_ids)}   new tokens: {req.max_new_tokens}   "
                 f"repeats: {req.repeats} (median)"]
        first = self.first_ok() or (self.results[0] if self.results else None)
        if first is not None:
            pk = first.env.get("packages", {})
            bw = first.memory_bandwidth_gb_s
            lines.append(f"hardware: {first.hardware}" + (f"   measured memory bandwidth: {bw:.0f} GB/s" if bw else "")
                         + "   " + ", ".join(f"{name} {pk.get(name)}" for name in packages))
        return "\n".join(lines)

    def write_json(self, path: str | Path | None) -> None:
        if path:
            Path(path).write_text(json.dumps([r.to_dict() for r in self.results], indent=2), encoding="utf-8")


def measure(request: RunRequest, *, db: str | Path | None = None, store: Any = None,
            on_event: Callable[[dict[str, Any]], None] | None = None, cancel: threading.Event | None = None,
            limits: ServerLimits = BENCH_LIMITS) -> Measured:
    """Validate (RequestError, one line, for bad input) and run `request` through the arena's
    runner; results are stored in `store`, or in the SQLite file `db` when given."""
    from arena.data.store import Store
    from arena.execute import runner

    prepared = validate(request, limits=limits)
    if store is None and db:
        store = Store(db)
    return Measured(prepared, runner.execute(prepared, store=store, on_event=on_event, cancel=cancel))


def measure_args(args: argparse.Namespace, **overrides: Any) -> Measured | None:
    """A script's run from its parsed arguments: None, after one line on stderr, for bad input;
    the results go to --db and --json when given."""
    try:
        measured = measure(request_from(args, **overrides), db=getattr(args, "db", None))
    except RequestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    measured.write_json(getattr(args, "json", None))
    return measured
