"""Where a process's time goes, sampled (ARENA_SAMPLE_STACKS=FILE): every `every_s` (20 ms) a
daemon thread reads every thread's stack (by faulthandler: read_stacks), notes for each the
innermost frame in the arena's own code and the innermost frame of all, and writes one JSON line
per span during which neither changed:

    {"thread": "...", "from": 1765000000.12, "to": 1765000003.98, "arena": "pool.py:213 make_room",
     "leaf": "nvml.py:40 __init__"}

benchmarks/server_e2e.py sets it on the server it starts, to say what the server did in the time
a request spent outside the worker's stages; a worker started by a sampled server samples itself
too (`from_env("worker")`), into its own file beside the server's. Times are `time.time()`, so a
client on the same machine can lay its own timeline beside them. Spans outside the arena's code
are kept where the thread was busy (not in a wait, select or sleep: Gradio's and uvicorn's idle
loops); spans shorter than `min_span_s` are left out. Each reading holds the GIL for a moment: a
diagnostic, not for runs whose speed is compared."""

from __future__ import annotations

import faulthandler
import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

_ROOT = str(Path(__file__).resolve().parents[2])
# innermost functions of a thread that waits (for a lock, a queue, a socket, a timer)
_IDLE = {"wait", "select", "poll", "sleep", "accept", "recv", "recv_into", "_recv", "readinto", "read", "get",
         "acquire", "run_forever", "_worker", "epoll", "_poll", "_run_once"}


_THREAD = re.compile(r"^(?:Current thread|Thread) 0x([0-9a-f]+)")
_FRAME = re.compile(r'^  File "(.*)", line (\d+) in (.*)$')


def read_stacks(scratch: IO[str]) -> dict[int, list[tuple[str, int, str]]]:
    """Every thread's stack, innermost frame first: thread id -> [(file, line, function), ...].

    Read by faulthandler, in C under the GIL, not by walking sys._current_frames()'s frame
    objects: on CPython 3.11 reading f_back of another thread's frame can crash the process
    (python/cpython#111363), which a sampler running beside a measured job must never do."""
    scratch.seek(0)
    scratch.truncate()
    faulthandler.dump_traceback(scratch, all_threads=True)
    scratch.flush()
    scratch.seek(0)
    stacks: dict[int, list[tuple[str, int, str]]] = {}
    current: list[tuple[str, int, str]] | None = None
    for line in scratch.read().splitlines():
        if (m := _THREAD.match(line)) is not None:
            current = stacks.setdefault(int(m[1], 16), [])
        elif current is not None and (m := _FRAME.match(line)) is not None:
            current.append((m[1], int(m[2]), m[3]))
    return stacks


def _where(stack: list[tuple[str, int, str]]) -> tuple[str, str]:
    """(innermost frame in the arena's code or app.py, innermost frame), as "file.py:line function"."""
    leaf = arena = ""
    for filename, line, function in stack:
        text = f"{os.path.basename(filename)}:{line} {function}"
        leaf = leaf or text
        if filename.startswith(_ROOT) and "/.venv/" not in filename:
            arena = text
            break
    return arena, leaf


class StackSampler:
    def __init__(self, out: IO[str], every_s: float = 0.02, min_span_s: float = 0.05, label: str = "") -> None:
        self.out, self.every_s, self.min_span_s, self.label = out, every_s, min_span_s, label
        self.open: dict[int, tuple[str, str, float, float]] = {}  # thread id -> (arena, leaf, from, last seen)
        self.names: dict[int, str] = {}
        self._scratch = tempfile.TemporaryFile("w+", encoding="utf-8")  # faulthandler writes to a real file
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
        stacks = read_stacks(self._scratch)
        for ident, stack in stacks.items():
            if ident == me:
                continue
            arena, leaf = _where(stack)
            span = self.open.get(ident)
            if span is not None and (span[0], span[1]) == (arena, leaf):
                self.open[ident] = (arena, leaf, span[2], now)
                continue
            if span is not None:
                self._close(ident)
            self.open[ident] = (arena, leaf, now, now)
        for ident in [i for i in self.open if i not in stacks]:  # threads that ended
            self._close(ident)
        # merged, not replaced: a thread that ended after this reading still gets its name
        self.names.update({t.ident: t.name for t in threading.enumerate() if t.ident is not None})

    def _loop(self) -> None:
        last_flush = time.monotonic()
        while not self._stop.wait(self.every_s):
            try:
                self.sample()
            except Exception:  # a diagnostic never stops what it watches: the next sample is another
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
        self._scratch.close()


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
