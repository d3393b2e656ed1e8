"""Turns `pip install`'s output (on stdin) into a few progress lines: each package as it is
fetched, with the time so far and roughly how long is left; then the unpacking step, with how
much of the environment is written. Every line pip wrote goes to the log file; pip's errors are
printed as they come.

    pip install --progress-bar off ... 2>&1 | python pip_progress.py LOG VENV PACKAGES DOWNLOAD_MB VENV_MB UNPACK_S

PACKAGES, DOWNLOAD_MB, VENV_MB and UNPACK_S describe the pinned stack (measured on a 2-core
machine; see scripts/setup.sh): they only shape the estimates. Standard library only: it runs
before anything is installed.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time

UNITS = {"kB": 1e-3, "MB": 1.0, "GB": 1e3, "B": 1e-6}
# one package's file: fetched, taken from pip's cache, or a local wheel
WHEEL = re.compile(r"(Downloading|Using cached|Processing) (?:\S*/)?([^/\s]+\.(?:whl|tar\.gz|zip)(?:\.metadata)?)")
SIZE = re.compile(r"\(([\d.]+) (kB|MB|GB|B)\)\s*$")
ASSUMED_MB_S = 20.0  # the download's pace until it has one of its own
UNPACK_EVERY_S = 30.0


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def say(text: str) -> None:
    print(f"setup: {text}", flush=True)


def folder_mb(path: str) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total / 1e6


def megabytes(line: str, wheel: re.Match) -> float | None:
    """The file's size: as pip prints it, or that of a local wheel ("Processing /path/x.whl")."""
    size = SIZE.search(line)
    if size:
        return float(size.group(1)) * UNITS[size.group(2)]
    path = line.split()[1]
    if wheel.group(1) == "Processing" and os.path.isfile(path):
        return os.path.getsize(path) / 1e6
    return None


class Progress:
    def __init__(self, venv: str, packages: int, download_mb: float, venv_mb: float, unpack_s: float) -> None:
        self.venv, self.packages, self.download_mb = venv, packages, download_mb
        self.venv_mb, self.unpack_s = venv_mb, unpack_s
        self.t0 = time.monotonic()
        self.count, self.mb = 0, 0.0
        self.unpacked = threading.Event()

    def since(self) -> str:
        return clock(time.monotonic() - self.t0)

    def fetched(self, name: str, size: float | None) -> None:
        self.count += 1
        self.mb += size or 0.0
        elapsed = time.monotonic() - self.t0
        pace = self.mb / elapsed if self.mb > 100 and elapsed > 5 else ASSUMED_MB_S
        left = max(self.download_mb - self.mb, 0.0) / pace + self.unpack_s
        what = name if not size else f"{name} ({size:,.1f} MB)" if size >= 1 else f"{name} ({size * 1000:.0f} kB)"
        say(f"[{self.count}/~{max(self.count, self.packages)}] {what}: {self.since()} so far, about {clock(left)} left")

    def unpacking(self, n: int) -> None:
        say(f"unpacking {n} packages into {self.venv} ({self.since()} so far, about {clock(self.unpack_s)} left)")
        threading.Thread(target=self.watch_unpacking, daemon=True).start()

    def watch_unpacking(self) -> None:
        """pip says nothing while it unpacks (the longest step on a small machine): report how much
        of the environment is written, and the time left at that pace."""
        start, first = time.monotonic(), folder_mb(self.venv)
        while not self.unpacked.wait(UNPACK_EVERY_S):
            done = folder_mb(self.venv)
            pace = (done - first) / (time.monotonic() - start)
            if pace > 0:
                left = max(self.venv_mb - done, 0.0) / pace
            else:  # nothing written yet: the usual duration
                left = max(self.unpack_s - (time.monotonic() - start), 0.0)
            say(f"unpacking: {done / 1000:.1f} of ~{self.venv_mb / 1000:.1f} GB written, {self.since()} so far, "
                f"about {clock(left)} left")


def main() -> int:
    log_path, venv = sys.argv[1], sys.argv[2]
    progress = Progress(venv, int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]))
    warnings, announced = 0, False
    with open(log_path, "w", encoding="utf-8") as log:
        for raw in sys.stdin:
            log.write(raw)
            line = raw.strip()
            wheel = WHEEL.match(line)
            if (wheel or line.startswith("Collecting ")) and not announced:
                announced = True
                say(f"resolving and fetching the pinned stack (~{progress.packages} packages, "
                    f"~{progress.download_mb / 1000:.1f} GB)")
            if wheel and not wheel.group(2).endswith(".metadata"):
                progress.fetched(wheel.group(2).split("-")[0], megabytes(line, wheel))
            elif line.startswith("Installing collected packages:"):
                progress.unpacking(len(line.split(":", 1)[1].split(",")))
            elif line.startswith("Successfully installed"):
                progress.unpacked.set()
                say(f"{len(line.split()) - 2} packages installed in {progress.since()}")
            elif line.startswith(("ERROR", "error:")):
                print(line, file=sys.stderr, flush=True)
            elif line.startswith("WARNING"):
                warnings += 1
    progress.unpacked.set()
    if warnings:
        say(f"pip wrote {warnings} warning(s): see {log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
