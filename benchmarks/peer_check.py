"""The arena against a peer harness on the same shape and settings: optimum-benchmark 0.6.0
(requirements-peer.txt), the harness behind the LLM-Perf leaderboard. Batch 1, one prompt
length, greedy, min_new_tokens = max_new_tokens, one dtype, each attention implementation;
arena and peer alternate round by round in one sitting (A P A P ...: drift stays out of the
ratio). Compared: TTFT (the peer's prefill latency), decode tokens/s (batch x (new - 1) over the
decode latency, median) and the per-token latency p50, as arena / peer with "within 5%" or not.

    python -m benchmarks.peer_check --make-venv                  # the peer's environment, once
    python -m benchmarks.peer_check --download-wheels peer-wheels   # for a machine without PyPI, then there:
    python -m benchmarks.peer_check --make-venv --wheels peer-wheels
    python -m benchmarks.peer_check --model synthetic:llama-2-7b --dtype bf16 \
        --prompt-tokens 128 --max-new-tokens 64 --attn eager,sdpa --rounds 3
    python -m benchmarks.peer_check --model default --attn sdpa --rounds 2 --max-new-tokens 8   # CPU

The peer runs in its own process with --peer-python (default: ARENA_PEER_PYTHON, else this
interpreter where it imports optimum_benchmark, else the environment --make-venv made under
ARENA_HOME). optimum-benchmark's own requirements (datasets, hydra-core) move fsspec below the
version the pinned stack has, so that environment is a separate venv that sees this one's
packages through a .pth file and holds only what the peer adds (installed with
`-c requirements.txt`: torch, transformers and the rest stay the pinned ones).

The peer's weights: a synthetic model's saved checkpoint (the arena's own copy of the same seeded
weights, --peer-weights checkpoint, the default), or optimum-benchmark's no_weights=True on a
config-only folder (--peer-weights none: optimum-benchmark 0.6.0 fetches that folder's
config.json through hf_hub_download, which refuses a local path with HFValidationError; on the GPU
machine an earlier try did not get past "Loading Transformers model" in 150 s for the 7B shape).
Real models load their own folder.

Without a peer the script still measures the arena side and says why the peer did not run
(exit status 3).
"""

from __future__ import annotations

import argparse
import json
import os
import site
import statistics
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

from arena.bench.runs import measure
from arena.core.paths import arena_home
from arena.core.request import RequestError, RunRequest

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.05
METRICS = (("ttft_ms", "TTFT ms"), ("decode_tokens_per_s", "decode tok/s"), ("token_latency_p50_ms", "per-token p50 ms"))
TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
SENTENCE = "Write a short story about a lighthouse keeper who finds a message in a bottle. "

# Runs under the peer's interpreter: one optimum-benchmark inference scenario, its figures on stdout.
PEER = r"""
import json, statistics, sys
s = json.loads(sys.argv[1])
from optimum_benchmark import Benchmark, BenchmarkConfig, InferenceConfig, InlineConfig, ProcessConfig, PyTorchConfig
backend = PyTorchConfig(model=s["model"], device=s["device"], device_ids=s["device_ids"], torch_dtype=s["torch_dtype"],
                        attn_implementation=s["attn"], no_weights=s["no_weights"], task="text-generation",
                        library="transformers")
n = s["new_tokens"]
scenario = InferenceConfig(latency=True, memory=False, energy=False, iterations=s["repeats"], duration=0,
                           warmup_runs=1, input_shapes={"batch_size": 1, "sequence_length": s["prompt_tokens"]},
                           generate_kwargs={"max_new_tokens": n, "min_new_tokens": n})
launcher = ProcessConfig() if s["launcher"] == "process" else InlineConfig()
report = Benchmark.launch(BenchmarkConfig(name="peer-check", launcher=launcher, scenario=scenario,
                                          backend=backend)).to_dict()
decode = statistics.median(report["decode"]["latency"]["values"])
print("PEER-RESULT " + json.dumps({
    "ttft_ms": 1e3 * report["prefill"]["latency"]["p50"],
    "decode_tokens_per_s": (n - 1) / decode,
    "token_latency_p50_ms": 1e3 * report["per_token"]["latency"]["p50"],
    "iterations": report["decode"]["latency"]["count"]}))
"""


def default_venv() -> Path:
    return arena_home() / "peer-venv"


def make_venv(target: Path, wheels: Path | None = None) -> Path:
    """A venv that sees this environment's packages (a .pth file) and adds the peer's own, pinned
    by requirements-peer.txt within requirements.txt's pins; from PyPI, or, on a machine without
    it, exactly the wheels `download_wheels` gathered (no index, no resolution); returns its python."""
    venv.EnvBuilder(with_pip=True, clear=False).create(target)
    python = target / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "arena-stack.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    if wheels is not None:
        found = sorted(str(w) for w in wheels.glob("*.whl"))
        if not found:
            raise OSError(f"no wheel in {wheels}")
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", *found], check=True)
    else:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements-peer.txt"),
                        "-c", str(ROOT / "requirements.txt")], check=True)
    return python


def download_wheels(target: Path) -> list[str]:
    """The wheels a --make-venv here would add (what pip resolves against this environment), for a
    machine without PyPI that has this Python version (binary wheels are per version): there,
    `--make-venv --wheels DIR`. A package published as source only is built into a wheel here."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--report", str(report),
                        "-r", str(ROOT / "requirements-peer.txt"), "-c", str(ROOT / "requirements.txt")], check=True)
        names = [f"{i['metadata']['name']}=={i['metadata']['version']}"
                 for i in json.loads(report.read_text(encoding="utf-8"))["install"]]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(target), *names], check=True)
    return names


def find_peer(choice: str | None) -> tuple[str | None, str]:
    """(a python that imports optimum_benchmark, '') or (None, why there is none)."""
    candidates = [choice] if choice else [os.environ.get("ARENA_PEER_PYTHON"), sys.executable,
                                          str(default_venv() / "bin" / "python")]
    why = "optimum-benchmark is not installed (python -m benchmarks.peer_check --make-venv installs it)"
    for python in filter(None, candidates):
        if not Path(python).exists():
            why = f"no python at {python}"
            continue
        probe = subprocess.run([python, "-c", "import optimum_benchmark"], capture_output=True, text=True,
                               timeout=300)
        if probe.returncode == 0:
            return python, ""
        if choice:
            why = f"{python} cannot import optimum_benchmark: {(probe.stderr.strip().splitlines() or ['?'])[-1]}"
    return None, why


def peer_folder(model: str, dtype: str, device: str, weights: str, spec: Any) -> tuple[str, bool]:
    """(the folder optimum-benchmark loads, no_weights) for the arena's model."""
    from arena.models.sources import load_config, pretrained_path
    from arena.models.synthetic import synthetic_checkpoint

    if not spec.synthetic:
        return pretrained_path(spec), False
    if weights == "checkpoint":
        folder = synthetic_checkpoint(spec, dtype, device)  # built on the device once, then cached
        if device == "cuda":
            import torch

            torch.cuda.empty_cache()  # this process keeps no 7B of cached blocks beside the measured ones
        return str(folder), False
    folder = Path(tempfile.mkdtemp(prefix="peer-config-"))
    load_config(spec).save_pretrained(folder)  # config only: optimum-benchmark makes the weights
    return str(folder), True


def run_peer(python: str, settings: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    proc = subprocess.run([python, "-c", PEER, json.dumps(settings)], capture_output=True, text=True,
                          timeout=timeout_s, cwd=tempfile.gettempdir())
    for line in proc.stdout.splitlines():
        if line.startswith("PEER-RESULT "):
            return json.loads(line[len("PEER-RESULT "):])
    tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
    raise RuntimeError(f"optimum-benchmark gave no result (exit status {proc.returncode}): {' / '.join(tail)}")


def summary(rounds: list[dict[str, Any]], attns: list[str]) -> list[dict[str, Any]]:
    """Per attention and metric: the arena's and the peer's medians over the rounds, their ratio."""
    rows = []
    for attn in attns:
        for key, label in METRICS:
            a = [r["arena"][attn][key] for r in rounds if r["arena"].get(attn, {}).get(key) is not None]
            p = [r["peer"][attn][key] for r in rounds if r.get("peer", {}).get(attn, {}).get(key) is not None]
            row: dict[str, Any] = {"attn": attn, "metric": label, "arena": statistics.median(a) if a else None,
                                   "peer": statistics.median(p) if p else None}
            row["ratio"] = row["arena"] / row["peer"] if row["arena"] and row["peer"] else None
            row["within"] = None if row["ratio"] is None else abs(row["ratio"] - 1) <= TARGET
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def fmt(v: float | None, d: int) -> str:
        return "-" if v is None else f"{v:,.{d}f}"

    lines = ["| attention | metric | arena | optimum-benchmark | arena / peer | within 5% |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        within = "-" if r["within"] is None else ("yes" if r["within"] else "no")
        lines.append(f"| {r['attn']} | {r['metric']} | {fmt(r['arena'], 2)} | {fmt(r['peer'], 2)} | "
                     f"{fmt(r['ratio'], 3)} | {within} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="synthetic:llama-2-7b")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--attn", default="eager,sdpa", help="attention implementations, comma-separated")
    p.add_argument("--prompt-tokens", type=int, default=128,
                   help="prompt length (a synthetic model's exactly; a real model's about as long, chat template "
                        "included: the peer gets the arena's length)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5, help="timed generations per side and round")
    p.add_argument("--rounds", type=int, default=3, help="alternating arena / peer rounds")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per side and round")
    p.add_argument("--peer-python", help="an interpreter that imports optimum_benchmark")
    p.add_argument("--peer-launcher", choices=("process", "inline"), default="process",
                   help="optimum-benchmark's launcher (process: its recommended one)")
    p.add_argument("--peer-weights", choices=("checkpoint", "none"), default="checkpoint",
                   help="synthetic models: the arena's saved checkpoint, or no_weights=True on a config-only folder")
    p.add_argument("--make-venv", nargs="?", const=str(default_venv()), metavar="DIR",
                   help="make the peer's environment (default ARENA_HOME/peer-venv) and exit")
    p.add_argument("--wheels", type=Path, help="with --make-venv: install these wheels only, no index")
    p.add_argument("--download-wheels", type=Path, metavar="DIR",
                   help="gather the wheels --make-venv adds into DIR, for a machine without PyPI (same Python "
                        "version), and exit")
    p.add_argument("--db", help="also record the arena's results in this SQLite store")
    p.add_argument("--json", help="write every round and the summary as JSON here")
    args = p.parse_args(argv)

    if args.download_wheels:
        try:
            print("\n".join(download_wheels(args.download_wheels)))
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"error: could not gather the peer's wheels: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.make_venv:
        try:
            print(make_venv(Path(args.make_venv), args.wheels))
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"error: could not make the peer's environment in {args.make_venv}: {exc}", file=sys.stderr)
            return 1
        return 0

    attns = [a.strip() for a in args.attn.split(",") if a.strip()]
    prompt = SENTENCE * max(1, args.prompt_tokens // 16)
    request = RunRequest(model=args.model, prompt=prompt, configs=attns, max_new_tokens=args.max_new_tokens,
                         dtype=args.dtype, repeats=args.repeats, prompt_tokens=args.prompt_tokens,
                         timeout_s=args.timeout)
    python, no_peer = find_peer(args.peer_python)
    rounds: list[dict[str, Any]] = []
    setup: dict[str, Any] | None = None
    peer_error = ""
    for number in range(1, args.rounds + 1):
        try:
            measured = measure(request, db=args.db)
        except RequestError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        prepared = measured.prepared
        arena = {r.config: {k: getattr(r, k) for k, _ in METRICS} for r in measured.results if r.status == "ok"}
        for r in measured.results:
            if r.status != "ok":
                print(f"round {number} arena {r.config}: {r.status}: {r.reason}", flush=True)
        this: dict[str, Any] = {"round": number, "arena": arena, "peer": {}}
        rounds.append(this)
        if setup is None:
            device = "cuda" if measured.results and measured.results[0].device.startswith("cuda") else "cpu"
            setup = {"model": args.model, "dtype": prepared.dtype, "prompt_tokens": len(prepared.prompt_ids),
                     "new_tokens": args.max_new_tokens, "repeats": args.repeats, "device": device,
                     "hardware": measured.results[0].hardware if measured.results else ""}
            print(measured.header(("torch", "transformers")), flush=True)
            if python:
                try:
                    folder, no_weights = peer_folder(args.model, prepared.dtype, device, args.peer_weights,
                                                     prepared.spec)
                    setup.update(peer_model=folder, no_weights=no_weights, peer_python=python)
                except Exception as exc:  # a checkpoint that cannot be saved: the arena side still runs
                    python, no_peer = None, f"no folder for the peer: {exc}"
        for attn, figures in arena.items():
            print(f"round {number} arena {attn}: " + ", ".join(f"{label} {figures[k]:.2f}" for k, label in METRICS
                                                               if figures[k] is not None), flush=True)
        if python is None:
            continue
        for attn in attns:
            settings = {"model": setup["peer_model"], "device": setup["device"], "device_ids": "0",
                        "torch_dtype": TORCH_DTYPES[prepared.dtype], "attn": attn, "no_weights": setup["no_weights"],
                        "new_tokens": args.max_new_tokens, "prompt_tokens": setup["prompt_tokens"],
                        "repeats": args.repeats, "launcher": args.peer_launcher}
            try:
                this["peer"][attn] = run_peer(python, settings, args.timeout)
                print(f"round {number} peer {attn}: " + ", ".join(f"{label} {this['peer'][attn][k]:.2f}"
                                                                 for k, label in METRICS), flush=True)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"round {number} peer {attn}: {exc}", flush=True)
                peer_error = str(exc)
    if python and not any(r["peer"] for r in rounds):
        no_peer = peer_error  # installed, but it measured nothing: say why, as when it is missing
    rows = summary(rounds, attns)
    assert setup is not None
    print(f"\n{setup['model']} on {setup['hardware']}: {setup['dtype']}, batch 1, {setup['prompt_tokens']}-token "
          f"prompt, {setup['new_tokens']} new tokens, {args.repeats} timed generations per side and round, "
          f"{args.rounds} alternating rounds (medians)")
    print(table(rows))
    if no_peer:
        print(f"peer: not run: {no_peer}")
    else:
        misses = [f"{r['attn']} {r['metric']}" for r in rows if r["within"] is False]
        print("within 5% of the peer: " + ("all" if not misses else "all but " + ", ".join(misses)))
    if args.json:
        Path(args.json).write_text(json.dumps({"setup": setup, "peer": no_peer or "optimum-benchmark 0.6.0",
                                               "rounds": rounds, "summary": rows}, indent=1), encoding="utf-8")
    return 3 if no_peer else 0


if __name__ == "__main__":
    sys.exit(main())
