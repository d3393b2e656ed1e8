"""What every browser session of one server shares: the store, the limits, the blind check and
the cancel switches of running jobs; and the models this server offers."""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

import gradio as gr

from arena.techniques import registry
from arena.core.errors import one_line
from arena.core.limits import ServerLimits
from arena.core.request import RequestError, RunRequest
from arena.execute.prepare import validate
from arena.data.blind import BlindCheck
from arena.data.store import Store
from arena.models import gguf
from arena.models.spec import architecture_label, architectures
from arena.ui.web.downloads import TempFiles
from arena.ui.web.panels import RunState
from arena.ui.web.session import RunSession, StageTimes

GPU_QUEUE = "gpu"  # every measuring event shares one slot: one job on the device at a time


def model_choices(limits: ServerLimits | None = None) -> list[tuple[str, str]]:
    """The models offered in the pickers: those this server's limits allow, the Hub models it
    names one by one included (patterns such as "org/name-*" are typed in the Hub id box).
    May be empty: then only the Hub id box offers a model."""
    out = [("Embedded default · SmolLM2-135M-Instruct", "default")]
    for name in architectures():
        out.append((f"Synthetic · {architecture_label(name)} (random weights)", f"synthetic:{name}"))
    out = [c for c in out if limits is None or limits.model_allowed(c[1])]
    for model_id in limits.allowed_models if limits else ():
        if model_id not in ("default", *(v for _, v in out)) and not model_id.startswith("synthetic:") \
                and not any(ch in model_id for ch in "*?["):
            out.append((f"Hub · {model_id}", model_id))
    return out


def session_of(request: gr.Request | None) -> str:
    """The browser session (or gradio_client) a call comes from; a fresh one for a bare call."""
    return getattr(request, "session_hash", None) or uuid.uuid4().hex


def client_of(request: gr.Request | None) -> str:
    """The visitor's address (the first X-Forwarded-For hop behind a Space's proxy)."""
    if request is None:
        return ""
    forwarded = (request.headers.get("x-forwarded-for") or "") if request.headers else ""
    return forwarded.split(",")[0].strip() or getattr(getattr(request, "client", None), "host", "") or ""


def first_choice(choices: list[tuple[str, str]]) -> str | None:
    return choices[0][1] if choices else None


class ArenaApp:
    """State shared by every browser session: the store and the cancel switches of runs."""

    def __init__(self, store: Store | None = None, limits: ServerLimits | None = None) -> None:
        self.store = store or Store()
        self.limits = limits or ServerLimits.from_env()
        self.blind = BlindCheck(self.store, votes_per_hour=self.limits.votes_per_hour)
        self.downloads = TempFiles(self.store.path.parent / "downloads")
        self.interrupted = self.store.mark_interrupted()  # runs cut off by a previous stop
        self._cancels: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.times = StageTimes()  # what a load or warm-up took here: the estimate of the next
        # ZeroGPU hands the GPU to the decorated call's own process: workers run inline there.
        self.isolation = "inline" if os.environ.get("SPACES_ZERO_GPU") else "process"

    # ---- running
    def stream(self, req: RunRequest, session: str) -> Iterator[tuple[RunState, bool]]:
        """The run's state as it goes. A request refused (bad input, a limit) raises RequestError
        before anything runs; the caller words it (the page in place, the API as an error)."""
        req.isolation = self.isolation
        yield from self.embedded_first_use(req)
        prepared = validate(req, limits=self.limits)
        with self.tracked(session) as cancel:
            run = RunSession(prepared, self.store, cancel, self.times)
            try:
                for changed in run.updates():
                    if run.state.finished:
                        self.blind.record_run(session, run.state.results)
                    yield run.state, changed
            finally:
                cancel.set()  # a closed page or client stops the run too
                run.join()

    def embedded_first_use(self, req: RunRequest) -> Iterator[tuple[RunState, bool]]:
        """The embedded default's one-time conversion (a minute or so), shown as a stage of the
        run with its steps, rather than a silent wait inside validation."""
        if str(req.model or "").strip() not in ("", "default") or gguf.converted():
            return
        names = req.configs.split(",") if isinstance(req.configs, str) else list(req.configs or [])
        state = RunState([n.strip() for n in names if n.strip() in registry.REGISTRY])
        steps: queue.Queue = queue.Queue()
        done = threading.Event()
        failure: list[Exception] = []

        def convert() -> None:
            try:
                gguf.default_model_dir(progress=lambda step, of, what: steps.put((step, of, what)))
            except Exception as exc:
                failure.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=convert, daemon=True, name="arena-convert")
        started, step = time.monotonic(), (0, len(gguf.CONVERSION_STEPS), "importing transformers")
        thread.start()
        while not done.wait(0.5):
            while not steps.empty():
                step = steps.get()
            where = f"step {step[0]} of {step[1]}, {step[2]}" if step[0] else step[2]
            state.note = (f"Preparing the embedded model (once per installation): {where} · "
                          f"{time.monotonic() - started:.0f} s")
            yield state, False
        thread.join()
        if failure:
            raise RequestError(f"the embedded model could not be prepared: {one_line(failure[0])}")

    @contextmanager
    def tracked(self, session: str) -> Iterator[threading.Event]:
        """A cancel switch for this session's job, found by `cancel(session)` while it runs."""
        cancel = threading.Event()
        with self._lock:
            self._cancels[session] = cancel
        try:
            yield cancel
        finally:
            cancel.set()
            with self._lock:
                if self._cancels.get(session) is cancel:
                    del self._cancels[session]

    def cancel(self, session: str) -> bool:
        with self._lock:
            event = self._cancels.get(session)
        if event is None:
            return False
        event.set()
        return True
