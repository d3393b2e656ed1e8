"""Per-configuration overhead of the CLI, with and without the next worker prepared during the
current configuration's untimed stages, side by side in one run.

Runs `python -m arena run` (the CLI path, its shared pool and spare worker) on the embedded
default with 4 configurations, once per mode:
  old: no worker is made during a run; the spare made at the start serves the first
       configuration, every later one waits for a fresh worker's imports (~9 s on 2 cores);
  new: the pool makes the next worker during warm-up and NLL scoring, paused while anything is
       timed (arena/execute/pool.py, UNTIMED_STAGES).
For each configuration: its wall time (from its "starting" line to its result line on stderr)
minus what the issue counts as the work itself, load + warm-up + timed + after (its stage_s);
what is left ("overhead") is start, imports and NLL scoring, each also printed (the rest is
events, the runner's comparison and the store). Target: <= 3 s for every configuration after
the first. The whole command's wall time is printed too: the spare's imports share the CPU
with the warm-up, so the overhead alone does not tell the whole story.

    python -m benchmarks.next_worker [--configs eager,sdpa,sdpa-math,ort-cpu] [--tokens 32] [--repeats 3] [--rounds 1]

With --rounds N the two modes alternate N times and each figure is the median over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ("load", "warmup", "timed", "after")  # what a configuration's own work is, in stage_s
# The old behaviour: no stage counts as untimed, so the spare is never made or resumed during a run.
OLD = "import arena.execute.pool as pool; pool.UNTIMED_STAGES = frozenset()"
LINE = re.compile(r"^\[(?P<config>[^\]]+)\] (?P<what>starting|ok|failed|unavailable)\b")


def run_cli(mode: str, args: argparse.Namespace, out: Path) -> tuple[float, dict[str, float]]:
    """The CLI's wall time, and each configuration's from its "starting" line to its result."""
    code = (OLD + "; " if mode == "old" else "") + "import sys; from arena.ui.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "run", "--model", args.model, "--configs", args.configs,
           "--max-new-tokens", str(args.tokens), "--repeats", str(args.repeats), "--no-store", "--json", str(out)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started: dict[str, float] = {}
    walls: dict[str, float] = {}
    for line in proc.stderr:
        match = LINE.match(line)
        if match is None:
            continue
        name, what = match["config"], match["what"]
        if what == "starting":
            started[name] = time.monotonic()
        elif name in started:
            walls[name] = time.monotonic() - started[name]
    if proc.wait() != 0:
        raise SystemExit(f"the {mode} run failed (exit {proc.returncode})")
    return time.monotonic() - t0, walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--configs", default="eager,sdpa,sdpa-math,ort-cpu")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures are only "
          "comparable on an otherwise idle machine)")
    seen: dict[str, dict[str, list[dict]]] = {}  # config -> mode -> one figure set per round
    totals: dict[str, list[float]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for mode in ("old", "new"):
                out = Path(tmp) / f"{mode}.json"
                total, walls = run_cli(mode, args, out)
                totals[mode].append(total)
                for r in json.loads(out.read_text()):
                    if r["status"] != "ok":
                        raise SystemExit(f"[{r['config']}] {r['status']}: {r['reason']}")
                    stages = r["stage_s"]
                    figures = {"wall": walls[r["config"]], "work": sum(stages.get(k, 0.0) for k in WORK),
                               **{k: stages.get(k, 0.0) for k in ("warmup", "imports", "start", "scoring")}}
                    figures["overhead"] = figures["wall"] - figures["work"]
                    seen.setdefault(r["config"], {}).setdefault(mode, []).append(figures)
    print(f"\nCLI, {args.model}, {args.configs}, {args.tokens} new tokens, {args.repeats} repeats, "
          f"median of {args.rounds} round(s)")
    columns = ("wall", "work", "warmup", "overhead", "imports", "start", "scoring")
    print(f"{'configuration':16}{'':>4}" + "".join(f"{c + ' s':>11}" for c in columns))
    worst = {"old": 0.0, "new": 0.0}
    beyond_scoring = {"old": 0.0, "new": 0.0}
    for position, (config, modes) in enumerate(seen.items()):
        for mode in ("old", "new"):
            m = {c: statistics.median(f[c] for f in modes[mode]) for c in columns}
            if position > 0:
                worst[mode] = max(worst[mode], m["overhead"])
                beyond_scoring[mode] = max(beyond_scoring[mode], m["overhead"] - m["scoring"])
            print(f"{config if mode == 'old' else '':16}{mode:>4}" + "".join(f"{m[c]:>11.2f}" for c in columns))
    old, new = statistics.median(totals["old"]), statistics.median(totals["new"])
    print(f"\nwhole command, s: old {old:.1f}, new {new:.1f} (new/old {new / old:.2f})")
    print(f"worst overhead after the first configuration, s: old {worst['old']:.2f}, new {worst['new']:.2f}")
    print(f"  of which not NLL scoring (a measuring step of each configuration, stage_s scoring): "
          f"old {beyond_scoring['old']:.2f}, new {beyond_scoring['new']:.2f}")
    print(f"TARGET overhead <= 3 s after the first configuration (new): {worst['new'] <= 3.0}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
