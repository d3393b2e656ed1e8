"""Start the real app (`python app.py`) in a subprocess on a free port, for API and browser tests and
the benchmarks that drive the server (benchmarks/server_e2e.py, load_test.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    def __init__(self, db: Path, env: dict[str, str | None] | None = None, log: Path | None = None) -> None:
        self.db, self.port = db, free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        # env: variables to set; one given as None is left unset
        merged = {**os.environ, "ARENA_DB": str(db), "GRADIO_SERVER_PORT": str(self.port),
                  "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        self.env = {k: v for k, v in merged.items() if v is not None}
        self.log = log or db.with_suffix(".log")
        self.proc: subprocess.Popen | None = None
        self.up_s: float | None = None  # seconds from start to the first answer

    def start(self, timeout_s: float = 180) -> "AppServer":
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=self.env,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "gradio_api/info", timeout=2)
                self.up_s = time.monotonic() - t0
                return self
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"app not up after {timeout_s} s: {self.log.read_text()[-2000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


@contextmanager
def running_app(db: Path, env: dict[str, str | None] | None = None) -> Iterator[AppServer]:
    server = AppServer(db, env).start()
    try:
        yield server
    finally:
        server.kill()
