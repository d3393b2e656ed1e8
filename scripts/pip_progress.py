"""Turns `pip install`'s output (on stdin) into a few progress lines: each package as it is
collected, with the time so far and roughly how long is left; then the install step. Every line
pip wrote goes to the log file given as the first argument; pip's errors are printed as they come.

    pip install --progress-bar off ... 2>&1 | python pip_progress.py LOG EXPECTED_PACKAGES EXPECTED_MB INSTALL_S

The expected package count, download size and install seconds are those of the pinned stack
(measured by scripts/setup.sh's author on a 2-core machine); they only shape the estimate.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
import time

UNITS = {"kB": 1e-3, "MB": 1.0, "GB": 1e3, "B": 1e-6}
# one package's file: fetched, taken from pip's cache, or a local wheel
WHEEL = re.compile(r"(Downloading|Using cached|Processing) (?:\S*/)?([^/\s]+\.(?:whl|tar\.gz|zip)(?:\.metadata)?)")
ASSUMED_MB_S = 20.0  # until the download has a pace of its own
SIZE = re.compile(r"\(([\d.]+) (kB|MB|GB|B)\)\s*$")


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def main() -> int:
    log_path, expected, expected_mb, install_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    t0 = time.monotonic()
    count, mb, warnings, announced = 0, 0.0, 0, False
    with open(log_path, "w", encoding="utf-8") as log:
        for raw in sys.stdin:
            log.write(raw)
            line = raw.strip()
            wheel = WHEEL.match(line)
            if line.startswith("Collecting ") and not announced:
                announced = True
                print(f"setup: resolving the pinned stack (~{expected} packages, ~{expected_mb / 1000:.1f} GB "
                      f"to download)", flush=True)
            elif wheel and not wheel.group(2).endswith(".metadata"):
                count += 1
                size = SIZE.search(line)
                if size:
                    mb += float(size.group(1)) * UNITS[size.group(2)]
                report(count, expected, wheel.group(2).split("-")[0], size, mb, expected_mb, install_s, t0)
            elif line.startswith("Installing collected packages:"):
                n = len(line.split(":", 1)[1].split(","))
                print(f"setup: unpacking {n} packages into .venv ({clock(time.monotonic() - t0)} so far, "
                      f"about {clock(install_s)} left)", flush=True)
            elif line.startswith("Successfully installed"):
                n = len(line.split()) - 2
                print(f"setup: {n} packages installed in {clock(time.monotonic() - t0)}", flush=True)
            elif line.startswith(("ERROR", "error:")):
                print(line, file=sys.stderr, flush=True)
            elif line.startswith("WARNING"):
                warnings += 1
    if warnings:
        print(f"setup: pip wrote {warnings} warning(s): see {log_path}", flush=True)
    return 0


def report(count: int, expected: int, name: str, size: re.Match | None, mb: float, expected_mb: float,
           install_s: float, t0: float) -> None:
    elapsed = time.monotonic() - t0
    # the rest of the download at the pace so far, then the install step
    pace = mb / elapsed if mb > 1 and elapsed > 5 else ASSUMED_MB_S
    left = max(expected_mb - mb, 0.0) / pace + install_s
    what = f"{name} ({size.group(1)} {size.group(2)})" if size else name
    print(f"setup: [{count}/~{max(count, expected)}] {what}: {clock(elapsed)} so far, about {clock(left)} left",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
