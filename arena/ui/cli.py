"""`python -m arena configs|run|leaderboard|sweep|plan|env`: the command line over the same core as the page."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from arena.techniques import registry
from arena.core.limits import DEFAULT_TIMEOUT_S
from arena.core.results import Result, flat_row, headings, result_fields, table_columns as declared_columns
from arena.models.dtypes import DTYPES, resolve_dtype

EXIT_BAD_INPUT = 2
EXPORT_NOTE_S = 1.0  # an ONNX export this long was a real one (a cached export takes ~0 s)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def format_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    def cell(r: dict[str, Any], k: str) -> str:  # a share of the limit above it is flagged (docs/trust.md)
        return _fmt(r.get(k)) + (" (over its limit)" if k == "percent_of_bandwidth_limit" and r.get("over_limit") else "")

    cells = [[h for _, h in columns]] + [[cell(r, k) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table_columns(results: list[Result]) -> tuple[tuple[str, str], ...]:
    """The run table's columns, with the ONNX export's seconds after "load s" when a row has an
    export (load_s never includes it)."""
    columns = declared_columns()
    if not any(r.export_s is not None for r in results):
        return columns
    at = [key for key, _ in columns].index("load_s") + 1
    return columns[:at] + (("export_s", headings()["export_s"]),) + columns[at:]


def write_outputs(results: list[Result], json_path: str | None, csv_path: str | None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps([r.to_dict() for r in results], indent=2), encoding="utf-8")
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as fh:
            keys = result_fields()
            writer = csv.DictWriter(fh, fieldnames=list(keys))
            writer.writeheader()
            for r in results:
                writer.writerow({k: flat_row(r).get(k) for k in keys})


def cmd_configs(args: argparse.Namespace) -> int:
    rows = registry.availability_table(args.dtype)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, [("config", "configuration"), ("family", "family"),
                                  ("available", "available"), ("reason", "reason")]))
    return 0


def _prompts(args: argparse.Namespace) -> list[str] | None:
    """--prompts FILE: one prompt per non-empty line; None with one clear line on stderr when unreadable."""
    if not args.prompts:
        return [args.prompt]
    try:
        lines = Path(args.prompts).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read --prompts {args.prompts}: {exc}", file=sys.stderr)
        return None
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        print(f"error: --prompts {args.prompts} holds no prompt (one per line)", file=sys.stderr)
        return None
    return prompts


def cmd_run(args: argparse.Namespace) -> int:
    from arena.core.limits import LimitsError, ServerLimits

    try:
        limits = ServerLimits.from_env()
    except LimitsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    prompts = _prompts(args)
    if prompts is None:
        return EXIT_BAD_INPUT
    pool = None
    if not args.inline:
        from arena.execute.pool import shared_pool

        # a spare worker imports torch and transformers while this process checks the request
        pool = shared_pool(limits)
        pool.prestart()
    try:
        return _run_prompts(args, prompts, limits, pool)
    finally:
        if pool is not None:
            pool.close()


def run_request(args: argparse.Namespace, prompt: str | None) -> Any:
    """The RunRequest of `run`'s options; those not given take RunRequest's defaults."""
    from arena.ui.forms import request_from

    return request_from(
        model=args.model, prompt=prompt, configs=args.configs.split(","), max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size, dtype=args.dtype, repeats=args.repeats, do_sample=args.sample,
        seed=args.seed, temperature=args.temperature, top_p=args.top_p, prompt_tokens=args.prompt_tokens,
        isolation="inline" if args.inline else "process", timeout_s=args.timeout, gpus=args.gpus,
        max_memory=args.max_memory, draft_model=args.draft_model,
    )


def _run_prompts(args: argparse.Namespace, prompts: list[str], limits: Any, pool: Any) -> int:
    from arena.core.request import RequestError
    from arena.execute.prepare import validate
    from arena.data.store import Store
    from arena.execute import runner

    prepared_runs = []
    for prompt in prompts:
        try:
            prepared_runs.append(validate(run_request(args, prompt), limits=limits))
        except RequestError as exc:
            where = f" (prompt {len(prepared_runs) + 1} of {args.prompts})" if args.prompts else ""
            print(f"error: {exc}{where}", file=sys.stderr)
            if exc.advice:
                print(f"hint: {exc.advice}", file=sys.stderr)
            return EXIT_BAD_INPUT

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "status" and not args.quiet:
            extra = f" {event['repeat']}/{event['repeats']}" if "repeat" in event else ""
            if event["stage"] == "exporting":  # a no-op when the cache has it
                extra = " to ONNX (once per model and dtype, then cached)"
            print(f"[{event['config']}] {event['stage']}{extra}", file=sys.stderr, flush=True)
        elif event["type"] == "result" and not args.quiet:
            r = event["result"]
            exported = r.get("export_s") or 0.0
            print(f"[{r['config']}] {r['status']}" + (f": {r['reason']}" if r["reason"] else "")
                  + (" (warm)" if r.get("warm") else "")
                  + (f" (ONNX export {exported:.1f} s, cached for next time)" if exported >= EXPORT_NOTE_S else ""),
                  file=sys.stderr, flush=True)

    store = None if args.no_store else Store(args.db)
    everything: list[Result] = []
    for number, prepared in enumerate(prepared_runs, 1):
        request = prepared.request
        results = runner.execute(prepared, store=store, on_event=on_event, pool=pool)
        everything += results
        if len(prepared_runs) > 1:
            print(f"\n=== prompt {number} of {len(prepared_runs)}: {request.prompt[:60]!r}")
        print(f"model: {prepared.spec.display}   dtype: {prepared.dtype}   prompt tokens: "
              f"{len(prepared.prompt_ids)}   new tokens: {request.max_new_tokens}   batch: {request.batch_size}   "
              f"repeats: {request.repeats} (median)")
        if results:
            print(f"hardware: {results[0].hardware}")
        print(format_table([r.to_dict() for r in results], table_columns(results)))
        print("wall time by stage, s: " + "; ".join(
            f"{r.config}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.stage_s.items()) for r in results if r.stage_s))
        if args.show_text:
            for r in results:
                if r.status == "ok":
                    after = f"\n[{r.tokens_after_eos} tokens generated after end-of-text, not shown]" if r.tokens_after_eos else ""
                    print(f"\n--- {r.config} ---\n{r.text}{after}")
        methods = sorted({r.memory_method for r in results if r.memory_method})
        print("peak MB: " + " | ".join(methods) if len(methods) == 1 else
              "peak MB: " + "; ".join(sorted({f"{r.config}: {r.memory_method}" for r in results if r.memory_method})))
        for note in sorted({r.quality_note for r in results if r.quality_note}):
            print(f"agree: {note}")
        for r in results:
            # a GPU run without an energy figure says why (a CPU has no energy counter to explain)
            if r.status == "ok" and r.energy_j_per_token is None and r.energy_note and r.device != "cpu":
                print(f"J/token ({r.config}): {r.energy_note}")
        if prepared.placement.asked:
            from arena.models.placement import describe

            print(f"placement ({prepared.placement.text()}):")
            for r in results:
                if r.status == "ok":
                    print(f"  {r.config}: {describe(r.placement, r.device_peak_memory_mb)}")
    write_outputs(everything, args.json, args.csv)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from arena.core.limits import LimitsError, ServerLimits
    from arena.core.request import RequestError
    from arena.data.store import Store
    from arena.sweep.plan import SweepRequest, validate_sweep
    from arena.sweep.runner import run_sweep, sweep_columns

    request = SweepRequest(
        model=args.model, attn=args.attn, batch_sizes=args.batch_sizes, seq_lens=args.seq_lens,
        padding=args.padding, mode=args.mode, quant=args.quant, dtype=args.dtype, repeats=args.repeats,
        warmup=args.warmup, new_tokens=args.new_tokens, isolation="inline" if args.inline else "process",
        timeout_s=args.timeout, prompt_lens=args.prompt_lens, length_seed=args.length_seed,
    )
    try:
        prepared = validate_sweep(request, limits=ServerLimits.from_env())
    except (RequestError, LimitsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    padded = request.mode == "generate-padded"

    def on_point(r: Result) -> None:
        if not args.quiet:
            detail = f"{r.latency_ms:.1f} ms" if r.latency_ms is not None else r.reason
            if padded and r.decode_tokens_per_s is not None:
                detail += f", TTFT {r.ttft_ms:.1f} ms, decode {r.decode_tokens_per_s:.1f} tok/s"
            print(f"[{r.config}] batch {r.batch_size} seq {r.prompt_tokens} pad {r.padding:g}: {r.status} {detail}",
                  file=sys.stderr, flush=True)

    store = None if args.no_store else Store(args.db)
    results = run_sweep(prepared, store=store, on_point=on_point)
    print(f"model: {prepared.spec.display}   dtype: {prepared.dtype}   mode: {request.mode}   "
          f"repeats: {request.repeats} (median)" + (f"   new tokens: {request.new_tokens}" if request.mode != "forward" else "")
          + (f"   prompt lengths: {request.prompt_lens} (seed {request.length_seed})" if padded else ""))
    if results:
        print(f"hardware: {results[0].hardware}")
    for quant in request.quant:
        rows = [r.to_dict() for r in results if r.settings.get("quant") == quant]
        if len(request.quant) > 1:
            print(f"\nweights: {quant}")
        print(format_table(rows, sweep_columns(request.mode)))
        if padded:
            print("row lengths: " + "; ".join(f"batch {r['batch_size']}: {r['settings'].get('row_lengths')}"
                                              for r in rows if r["config"] == rows[0]["config"]))
    print("memory: " + "; ".join(sorted({r.memory_method for r in results if r.memory_method})))
    if registry.BASELINE not in request.attn:
        print(f"note: speedups are against {registry.BASELINE}; add it to --attn to get them")
    write_outputs(results, args.json, args.csv)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from arena.data.store import Store

    filters = {"model_id": args.model} if args.model else {}
    if args.mode:
        filters["mode"] = args.mode
    results = Store(args.db).results(**filters)
    rows = [r.to_dict() for r in results if r.status == "ok"]
    rows.sort(key=lambda r: -(r.get("decode_tokens_per_s") or 0))
    cols = [("model_id", "model"), ("hardware", "hardware")] + list(declared_columns()[:-1])
    if any(str(r.get("mode")).startswith("sweep") for r in rows):
        cols[2:2] = [("mode", "mode"), ("batch_size", "batch"), ("prompt_tokens", "prompt"),
                     ("padding", "pad"), ("latency_ms", "latency ms"),
                     ("speedup", "speedup (run: decode tok/s ÷ baseline's; sweep: eager latency ÷ this)")]
    print(format_table(rows, cols))
    write_outputs([r for r in results if r.status == "ok"], args.json, args.csv)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """The split device_map="auto" would make of a model under --max-memory, from its config
    alone (the model is built on the meta device): no weights, no GPU needed."""
    from arena.models import placement
    from arena.models.dtypes import torch_dtype
    from arena.models.sources import load_config
    from arena.models.spec import ModelError, parse_model

    try:
        spec = parse_model(args.model)
        budgets = placement.parse_max_memory(args.max_memory)
        config = load_config(spec)
        dtype = resolve_dtype(args.dtype)
    except (ModelError, placement.PlacementError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not budgets:
        print("error: --max-memory is needed, e.g. 0=8GiB,1=40GiB", file=sys.stderr)
        return EXIT_BAD_INPUT
    max_memory = {int(k) if k != "cpu" else k: v for k, v in budgets.items()}
    device_map = placement.plan(config, torch_dtype(dtype), max_memory)
    layers = placement.plan_summary(device_map, config.num_hidden_layers)
    summary = {"model": spec.id, "dtype": dtype, "max_memory": args.max_memory, "layers": layers,
               "device_map": {k: placement.device_name(v) for k, v in device_map.items()}}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"{spec.display} in {dtype} under max_memory {args.max_memory}: decoder layers per device "
          + ", ".join(f"{d} {n}" for d, n in layers.items()))
    if "disk" in layers:
        print("note: the budgets do not hold the whole model (the rest would go to disk, which runs refuse)")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    from arena.core.env import collect_env

    print(json.dumps(collect_env(), indent=2))
    return 0


class _HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help where X says something (not None, not False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unsaid = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if not unsaid and "%(default)" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def outputs(p: argparse.ArgumentParser, what: str, *, measures: bool = False) -> None:
    """--json, --csv and --db of a command that writes `what`; with `measures`, also --no-store
    and --quiet."""
    p.add_argument("--json", metavar="FILE", help=f"write the {what} as JSON here")
    p.add_argument("--csv", metavar="FILE", help=f"write the {what} as CSV here")
    p.add_argument("--db", metavar="FILE", help="SQLite store (default: ARENA_DB or ARENA_HOME/arena.sqlite)")
    if measures:
        p.add_argument("--no-store", action="store_true", help=f"do not record the {what}")
        p.add_argument("--quiet", action="store_true", help="no progress lines, only the results")


def _model_help() -> str:
    from arena.models.spec import DEFAULT_NAME, architectures

    return (f"default (the embedded {DEFAULT_NAME}, no Hub needed), a Hub id (org/name), a local model "
            f"folder, or synthetic:NAME (random weights at a real size; NAME: {', '.join(architectures())})")


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """`run`'s options; their defaults are RunRequest's (arena/core/request.py), as on the page and in /run."""
    from arena.core.limits import (
        MAX_BATCH,
        MAX_NEW_TOKENS,
        MAX_PROMPT_CHARS,
        MAX_REPEATS,
        MAX_SEED,
        MAX_SYNTHETIC_PROMPT_TOKENS,
        MAX_TEMPERATURE,
        MAX_TIMEOUT_S,
        MIN_TIMEOUT_S,
    )
    from arena.core.request import RunRequest
    from arena.ui.forms import DEFAULT_CONFIGS

    run_defaults, model_help = RunRequest(), _model_help()
    p.add_argument("--model", default=run_defaults.model, help=model_help)
    p.add_argument("--configs", default=DEFAULT_CONFIGS,
                   help="comma-separated configuration names; `python -m arena configs` lists them and whether "
                        "each can run here (the first is the baseline the others are compared with)")
    p.add_argument("--prompt", default=run_defaults.prompt,
                   help=f"the prompt (through the model's chat template where it has one): at most "
                        f"{MAX_PROMPT_CHARS:,} characters, and shorter than the model's context in tokens")
    p.add_argument("--prompts", metavar="FILE", help="one prompt per line: each runs in turn on the same warm "
                                                      "workers (a configuration loads once); replaces --prompt")
    p.add_argument("--max-new-tokens", type=int, default=run_defaults.max_new_tokens, metavar="N",
                   help=f"tokens to generate per row, 1..{MAX_NEW_TOKENS} (prompt + N within the model's context)"
                       )
    p.add_argument("--batch-size", type=int, default=run_defaults.batch_size, metavar="N",
                   help=f"rows generated together (the prompt repeated), 1..{MAX_BATCH}")
    p.add_argument("--dtype", default=run_defaults.dtype, metavar="|".join(DTYPES),
                   help="weights and compute dtype; auto: bf16 on a GPU that supports it, else fp16; fp32 on CPU")
    p.add_argument("--repeats", type=int, default=run_defaults.repeats, metavar="N",
                   help=f"timed generations after the warm-up, the median reported, 1..{MAX_REPEATS}")
    p.add_argument("--sample", action="store_true", help="sample (seeded) instead of greedy decoding")
    p.add_argument("--seed", type=int, default=run_defaults.seed, help=f"sampling seed, 0..{MAX_SEED}")
    p.add_argument("--temperature", type=float, default=run_defaults.temperature,
                   help=f"sampling temperature, in (0, {MAX_TEMPERATURE:g}]")
    p.add_argument("--top-p", type=float, default=run_defaults.top_p, help="nucleus sampling share, in (0, 1]")
    p.add_argument("--prompt-tokens", type=int, default=run_defaults.prompt_tokens, metavar="N",
                   help=f"synthetic models only: length of the random prompt, 1..{MAX_SYNTHETIC_PROMPT_TOKENS}")
    p.add_argument("--inline", action="store_true",
                   help="measure in this process instead of one worker process per configuration")
    p.add_argument("--timeout", type=float, default=run_defaults.timeout_s, metavar="S",
                   help=f"seconds per configuration (load, ONNX export, warm-up and repeats), "
                        f"{MIN_TIMEOUT_S:g}..{MAX_TIMEOUT_S:g}")
    p.add_argument("--gpus", help="GPU indices to use, e.g. 0,1 (several: the model is split with device_map='auto')")
    p.add_argument("--max-memory", help="memory budget per device, e.g. 0=20GiB,1=20GiB (also MiB/GB/MB, cpu=SIZE): "
                                        "PyTorch configurations are split with device_map='auto' within it")
    p.add_argument("--draft-model", default=run_defaults.draft_model, metavar="MODEL",
                   help="the draft model of assisted configurations, named as --model is (default: the embedded "
                        "model, a sanity draft)")
    outputs(p, "results", measures=True)
    p.add_argument("--show-text", action="store_true", help="print each configuration's generated text")


def _sweep_arguments(p: argparse.ArgumentParser) -> None:
    from arena.core.limits import MAX_BATCH, MAX_REPEATS, SWEEP_MAX_NEW_TOKENS, SWEEP_MAX_PADDING, SWEEP_MAX_SEQ
    from arena.sweep.plan import MODES

    model_help = _model_help()
    p.add_argument("--model", default="synthetic:llama-2-7b", help=model_help)
    p.add_argument("--attn", default="eager,sdpa", help="attention implementations, comma-separated")
    p.add_argument("--batch-sizes", default="1,2,4,8", help=f"comma-separated, each 1..{MAX_BATCH}")
    p.add_argument("--seq-lens", default="512,1024,2048,4096",
                   help=f"tokens per row, padding included, each 1..{SWEEP_MAX_SEQ} (forward, generate)")
    p.add_argument("--padding", default="0,0.3",
                   help=f"shares of padding tokens in the batch, each 0..{SWEEP_MAX_PADDING:g} (forward, generate)")
    p.add_argument("--mode", default="forward", choices=MODES,
                   help="time one forward pass (prefill), or one generate() of --new-tokens; generate-padded: "
                        "prompts of mixed lengths (--prompt-lens) in one left-padded batch, TTFT and decode tok/s")
    p.add_argument("--prompt-lens", default="64..1024",
                   help="generate-padded: each row's prompt length is drawn from LO..HI (the first row is HI)")
    p.add_argument("--length-seed", type=int, default=0, help="generate-padded: seed of the length mix")
    p.add_argument("--quant", default="none", help="none and/or bitsandbytes configurations, comma-separated")
    p.add_argument("--dtype", default="auto", metavar="|".join(DTYPES), help="as for run")
    p.add_argument("--repeats", type=int, default=3, help=f"timed passes per point (median), 1..{MAX_REPEATS}")
    p.add_argument("--warmup", type=int, default=1, help=f"untimed passes per point, 0..{MAX_REPEATS}")
    p.add_argument("--new-tokens", type=int, default=32, help=f"generate modes: tokens per row, 1..{SWEEP_MAX_NEW_TOKENS}")
    p.add_argument("--inline", action="store_true", help="measure in this process instead of one per implementation")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help="seconds per implementation (all its points)")
    outputs(p, "points", measures=True)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="show the libraries' own warnings and progress too (as ARENA_VERBOSE=1 does)")

    parser = argparse.ArgumentParser(
        prog="python -m arena", formatter_class=_HelpFormatter,
        description="The command line over the same core as the web page: configurations, runs, sweeps, "
                    "placement plans, the stored leaderboard and this machine's environment. "
                    "`python -m arena COMMAND --help` tells more.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, epilog=epilog, parents=[common],
                              formatter_class=_HelpFormatter)

    p = command("configs", "every configuration and whether it can run here (with the reason when not)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="check availability for this dtype")
    p.set_defaults(func=cmd_configs)

    p = command("run", "run one prompt through several configurations, side by side",
                "The ranges are the request format's own; ARENA_* variables (ARENA_LIMITS=public, "
                "ARENA_MAX_NEW_TOKENS, ARENA_MAX_BATCH, ARENA_MAX_REPEATS...; see arena/core/limits.py) may lower "
                "them. Bad input exits with code 2 and one line saying what is wrong.")
    _run_arguments(p)
    p.set_defaults(func=cmd_run)

    p = command("leaderboard", "stored results, fastest decode first")
    p.add_argument("--model", help="only this model (as given to run: default, org/name, synthetic:NAME...)")
    p.add_argument("--mode", help="arena, sweep-forward, sweep-generate or sweep-generate-padded (default: all)")
    outputs(p, "rows")
    p.set_defaults(func=cmd_leaderboard)

    p = command("sweep", "attention speedup and memory over batch sizes, lengths and padding")
    _sweep_arguments(p)
    p.set_defaults(func=cmd_sweep)

    p = command("plan", "the split device_map='auto' would make under --max-memory (no GPU needed)")
    p.add_argument("--model", default="synthetic:llama-2-7b", help=_model_help())
    p.add_argument("--max-memory", required=True, help="budget per device, e.g. 0=8GiB,1=40GiB")
    p.add_argument("--dtype", default="bf16", choices=[d for d in DTYPES if d != "auto"])
    p.add_argument("--json", metavar="FILE", help="write the plan as JSON here")
    p.set_defaults(func=cmd_plan)

    p = command("env", "hardware and library versions, as JSON")
    p.set_defaults(func=cmd_env)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import os

    from arena.core import quiet

    args = build_parser().parse_args(argv)
    if args.verbose:
        os.environ[quiet.VERBOSE_ENV] = "1"  # workers inherit it
    quiet.silence()
    return args.func(args)
