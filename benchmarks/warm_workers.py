"""Warm workers against cold ones, side by side in one run (issue 18's targets).

Through the real server (`python app.py`, started here) with gradio_client, embedded default,
one configuration, 32 new tokens, 1 repeat:
  1. the first run, a spare worker ready (imports done): first text after submit, completion;
  2. the same request again (warm worker): first text, completion, and the ratio to run 1;
  3. decode tok/s and peak memory of the warm run against the cold one.
Then the CLI, cold: wall time per configuration beyond load + generate (the stages it reports).

    python -m benchmarks.warm_workers [--config sdpa] [--model default] [--tokens 32]
    python -m benchmarks.warm_workers --url http://HOST:7860/ --configs sdpa,static-cache,compiled-decode
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gradio_client import Client

ROOT = Path(__file__).resolve().parents[1]


def start_server(db: Path) -> tuple[subprocess.Popen, str]:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "ARENA_DB": str(db), "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "gradio_api/info", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not start")


def wait_spare(client: Client, timeout_s: float = 120) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if any(r.get("spare") and r.get("ready") for r in client.predict(api_name="/workers")):
            return True
        time.sleep(0.5)
    return False


def timed_run(client: Client, **kw) -> dict:
    """Submit one run; seconds to the first streamed text and to completion, and its results."""
    t0 = time.monotonic()
    job = client.submit(**kw, api_name="/run")
    first = None
    while not job.done():
        if first is None:
            outs = job.outputs()
            if outs and any(p.get("text") for p in outs[-1]["panels"]):
                first = time.monotonic() - t0
        time.sleep(0.01)
    final = job.result()
    total = time.monotonic() - t0
    if first is None:
        first = total
    return {"first_text_s": first, "total_s": total, "results": final["results"]}


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.3f}" if a and b else "-"


def server_part(client: Client, args: argparse.Namespace) -> None:
    print("spare worker ready:", wait_spare(client))
    req = {"prompt": "What is the capital of France?", "model": args.model, "configs": args.configs,
               "max_new_tokens": args.tokens, "repeats": 1}
    cold = timed_run(client, **req)
    warm = timed_run(client, **req)
    print(f"\nserver, {args.model}, {args.configs}, {args.tokens} new tokens, 1 repeat")
    print(f"{'':28}{'cold (spare ready)':>20}{'warm':>12}{'cold/warm':>12}")
    print(f"{'first text after submit, s':28}{cold['first_text_s']:>20.2f}{warm['first_text_s']:>12.2f}"
          f"{ratio(cold['first_text_s'], warm['first_text_s']):>12}")
    print(f"{'complete, s':28}{cold['total_s']:>20.2f}{warm['total_s']:>12.2f}{ratio(cold['total_s'], warm['total_s']):>12}")
    for c, w in zip(cold["results"], warm["results"]):
        print(f"\n[{c['config']}] status {c['status']}/{w['status']}  warm {c['warm']}/{w['warm']}  "
              f"load_s {c['load_s']}/{w['load_s']}  same tokens: {c['token_ids'] == w['token_ids']}")
        for key in ("decode_tokens_per_s", "ttft_ms", "peak_memory_mb"):
            print(f"  {key:22} cold {c[key] or 0:10.2f}  warm {w[key] or 0:10.2f}  warm/cold {ratio(w[key], c[key])}")
        print(f"  stages cold: {c['stage_s']}\n  stages warm: {w['stage_s']}")
        if "warmup" in c["stage_s"]:
            print(f"  warm run skipped a warm-up (compile) of {c['stage_s']['warmup']:.2f} s: "
                  f"{'warmup' not in w['stage_s']}")
    print(f"\nTARGETS: warm first text <= 1 s: {warm['first_text_s'] <= 1.0}; complete >= 5x faster: "
          f"{cold['total_s'] / warm['total_s'] >= 5}; cold first text (spare ready) <= 4 s: {cold['first_text_s'] <= 4.0}")


def cli_part(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "arena", "run", "--model", args.model, "--configs", args.configs,
                        "--max-new-tokens", str(args.tokens), "--repeats", "1", "--no-store", "--quiet",
                        "--json", str(out)], cwd=ROOT, check=True, capture_output=True)
        wall = time.monotonic() - t0
        results = json.loads(out.read_text())
    print(f"\nCLI, cold: {wall:.2f} s for {len(results)} configuration(s)")
    in_configs = 0.0
    for r in results:
        stages = r["stage_s"]
        spent = sum(stages.values())
        in_configs += spent
        overhead = spent - (r["load_s"] or 0) - stages.get("timed", 0)
        print(f"  [{r['config']}] stages {stages}  load_s {r['load_s']:.2f}  overhead beyond load + generate "
              f"{overhead:.2f} s  (target <= 3 s: {overhead <= 3})")
    print(f"  once per command (process start, imports, checks, exit): {wall - in_configs:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--configs", default="sdpa")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--url", help="a running server (default: start `python app.py` here)")
    parser.add_argument("--no-cli", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures are only "
          "comparable on an otherwise idle machine)")
    proc = None
    if args.url:
        url = args.url
    else:
        tmp = Path(tempfile.mkdtemp(prefix="arena-warm-"))
        proc, url = start_server(tmp / "arena.sqlite")
    try:
        server_part(Client(url, verbose=False), args)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
    if not args.no_cli:
        cli_part(args)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
