"""Where a process's time goes, sampled (ARENA_SAMPLE_STACKS=FILE): every `every_s` a daemon
thread notes, for each thread, the innermost frame in the arena's own code and the innermost
frame of all, and writes one JSON line per span during which neither changed:

    {"thread": "...", "from": 1765000000.12, "to": 1765000003.98, "arena": "pool.py:213 make_room",
     "leaf": "nvml.py:40 __init__"}

Times are `time.time()`, so a client on the same machine can lay its own timeline beside them.
A worker started by a sampled server samples itself too (`from_env("worker")`), into its own
file beside the server's. Sampling takes the GIL about every 10 ms: a diagnostic, not for runs
whose speed is compared.
benchmarks/server_e2e.py sets it on the server it starts, to say what the server did in the time
a request spent outside the worker's stages. Spans outside the arena's code are kept where the
thread was busy (not in a wait, select or sleep: Gradio's and uvicorn's idle loops); spans
shorter than `min_span_s` are left out."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO

_ROOT = str(Path(__file__).resolve().parents[2])
# innermost functions of a thread that waits (for a lock, a queue, a socket, a timer)
_IDLE = {"wait", "select", "poll", "sleep", "accept", "recv", "recv_into", "_recv", "readinto", "read", "get",
         "acquire", "run_forever", "_worker", "epoll", "_poll", "_run_once"}


def _where(frame: FrameType | None) -> tuple[str, str]:
    """(innermost frame in the arena's code or app.py, innermost frame), as "file.py:line function"."""
    leaf = arena = ""
    while isinstance(frame, FrameType):  # another thread's stack may change under us: stop there
        code = frame.f_code
        text = f"{os.path.basename(code.co_filename)}:{frame.f_lineno} {code.co_name}"
        leaf = leaf or text
        if not arena and code.co_filename.startswith(_ROOT) and "/.venv/" not in code.co_filename:
            arena = text
            break
        frame = frame.f_back
    return arena, leaf


class StackSampler:
    def __init__(self, out: IO[str], every_s: float = 0.01, min_span_s: float = 0.05, label: str = "") -> None:
        self.out, self.every_s, self.min_span_s, self.label = out, every_s, min_span_s, label
        self.open: dict[int, tuple[str, str, float, float]] = {}  # thread id -> (arena, leaf, from, last seen)
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="arena-stack-sampler", daemon=True)

    def start(self) -> "StackSampler":
        self._thread.start()
        return self

    def _close(self, ident: int) -> None:
        arena, leaf, t0, t1 = self.open.pop(ident)
        busy = arena or leaf.rsplit(" ", 1)[-1] not in _IDLE
        if busy and t1 - t0 >= self.min_span_s:
            name = self.names.get(ident, str(ident))
            self.out.write(json.dumps({"thread": f"{self.label} {name}" if self.label else name, "from": round(t0, 3),
                                       "to": round(t1, 3), "arena": arena, "leaf": leaf}) + "\n")

    def sample(self) -> None:
        now = time.time()
        me = threading.get_ident()
        frames = sys._current_frames()
        for ident, frame in frames.items():
            if ident == me:
                continue
            arena, leaf = _where(frame)
            span = self.open.get(ident)
            if span is not None and (span[0], span[1]) == (arena, leaf):
                self.open[ident] = (arena, leaf, span[2], now)
                continue
            if span is not None:
                self._close(ident)
            self.open[ident] = (arena, leaf, now, now)
        for ident in [i for i in self.open if i not in frames]:  # threads that ended
            self._close(ident)
        self.names = {t.ident: t.name for t in threading.enumerate() if t.ident is not None}

    def _loop(self) -> None:
        last_flush = time.monotonic()
        while not self._stop.wait(self.every_s):
            try:
                self.sample()
            except Exception:  # a stack read while its thread changed it: the next sample is another
                pass
            if time.monotonic() - last_flush > 1.0:  # a killed server keeps all but its last second
                self.out.flush()
                last_flush = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for ident in list(self.open):
            self._close(ident)
        self.out.flush()


def from_env(role: str = "server") -> StackSampler | None:
    """Start sampling when ARENA_SAMPLE_STACKS is set: the server into that file, a worker
    (`role`) into FILE.ROLE-PID beside it (a worker inherits the variable)."""
    path = os.environ.get("ARENA_SAMPLE_STACKS")
    if not path:
        return None
    if role != "server":
        path = f"{path}.{role}-{os.getpid()}"
    return StackSampler(open(path, "a", encoding="utf-8"), label=role).start()


def read(path: str | Path) -> list[dict]:
    """The spans written to `path` and beside it by workers (a last line cut by a kill is skipped)."""
    path = Path(path)
    spans = []
    for file in sorted(path.parent.glob(path.name + "*")):
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                spans.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return spans
