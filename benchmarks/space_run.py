"""One public-limits run through the real server, as a Space visitor makes it: starts
`python app.py` with ARENA_LIMITS=public on a free port, submits one configuration
of each family on the embedded default through gradio_client, and prints each configuration's
wall-time breakdown (process start and imports, load, warm-up/compile, timed repeats, the rest)
against the public run limit.

    python -m benchmarks.space_run [--configs eager,sdpa,...] [--max-new-tokens 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# As many configurations as a public run may hold (max_configs 8), one of each family.
DEFAULT_SET = "eager,sdpa,sdpa-flash,flash-attention-2,bnb-8bit,bnb-4bit,static-cache,compiled-decode"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="", help="default: the page's default selection")
    ap.add_argument("--prompt", default="Explain in two sentences why the KV cache speeds up text generation.")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    from gradio_client import Client

    from arena.core.limits import ServerLimits

    limits = ServerLimits.public()
    configs = args.configs or DEFAULT_SET
    port = _free_port()
    env = {**os.environ, "ARENA_LIMITS": "public", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1", "ARENA_DB": str(Path(os.environ.get("ARENA_HOME", "/tmp")) / "space-run.sqlite")}
    t_start = time.monotonic()
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = None
        while time.monotonic() - t_start < 180:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                time.sleep(1)
        if client is None:
            raise SystemExit("the server did not come up in 180 s")
        up_s = time.monotonic() - t_start
        t0 = time.monotonic()
        first_text = None
        final = None
        for snapshot in client.submit(args.prompt, "default", configs, args.max_new_tokens, 1, "auto",
                                      args.repeats, api_name="/run"):
            final = snapshot
            if first_text is None and any((p.get("text") or "").strip() for p in (snapshot.get("panels") or [])):
                first_text = time.monotonic() - t0
        wall = time.monotonic() - t0
    finally:
        os.killpg(server.pid, 9)
    results = (final or {}).get("results") or []
    print(f"server up in {up_s:.1f} s; run of {configs} on the embedded default: {wall:.1f} s wall "
          f"(public run limit {limits.max_run_s:g} s, {100 * wall / limits.max_run_s:.0f}% of it); "
          f"first text after {first_text or float('nan'):.1f} s")
    stages = sorted({k for r in results for k in (r.get("stage_s") or {})})
    print("configuration   status  decode tok/s  " + "  ".join(f"{s:>9}" for s in stages))
    for r in results:
        cells = "  ".join(f"{(r.get('stage_s') or {}).get(s, float('nan')):9.2f}" for s in stages)
        print(f"{r['config']:<15} {r['status']:<7} {r.get('decode_tokens_per_s') or float('nan'):12.1f}  {cells}")
    if args.json:
        Path(args.json).write_text(json.dumps({"configs": configs, "wall_s": wall, "server_up_s": up_s,
                                               "first_text_s": first_text, "max_run_s": limits.max_run_s,
                                               "results": results}, indent=2))


if __name__ == "__main__":
    main()
