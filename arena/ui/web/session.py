"""Runs one request in a background thread and turns the runner's events into a stream of
RunState snapshots for the page and the API; and what a long stage is expected to take."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Iterator

from arena.core.errors import one_line
from arena.execute.prepare import PreparedRun
from arena.data.store import Store
from arena.execute.runner import execute
from arena.ui.web.panels import RunState

# A stage the page explains, and the measurement that says how long it took last time.
_MEASURED_AS = {"loading": ("load_s", None), "warming up": ("stage_s", "warmup")}


class StageTimes:
    """This server's last load and warm-up times, per configuration and run shape (model, dtype,
    batch, prompt and new tokens), so that a long stage can say how long it should take."""

    def __init__(self) -> None:
        self._last: dict[tuple, dict[str, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(prepared: PreparedRun, config: str) -> tuple:
        req = prepared.request
        return (prepared.spec.id, config, prepared.dtype, req.batch_size, len(prepared.prompt_ids),
                req.max_new_tokens)

    def record(self, prepared: PreparedRun, result: dict[str, Any]) -> None:
        times = {stage: seconds for stage in _MEASURED_AS if (seconds := measured(result, stage)) is not None}
        if times and result.get("status") == "ok":
            with self._lock:
                self._last.setdefault(self.key(prepared, result["config"]), {}).update(times)

    def get(self, prepared: PreparedRun, config: str, stage: str) -> float | None:
        with self._lock:
            return self._last.get(self.key(prepared, config), {}).get(stage)

    def scaled(self, prepared: PreparedRun, config: str, stage: str) -> tuple[float, int] | None:
        """A warm-up of another length of the same model, configuration, dtype and batch, scaled
        to this one's tokens (prompt + new): (seconds, tokens it had). A long prompt gets an
        estimate from a short one's time instead of none."""
        if stage != "warming up":
            return None
        key = self.key(prepared, config)
        tokens = key[4] + key[5]
        with self._lock:
            near = [(abs(k[4] + k[5] - tokens), k[4] + k[5], v[stage]) for k, v in self._last.items()
                    if k[:4] == key[:4] and stage in v and k[4] + k[5] > 0]
        if not near:
            return None
        _, had, seconds = min(near)
        return seconds * tokens / had, had


def measured(result: dict[str, Any], stage: str) -> float | None:
    """How long `stage` took in `result` (None where it did not run: a warm result loads nothing)."""
    field, key = _MEASURED_AS[stage]
    value = result.get(field)
    if key is not None:
        value = (value or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def urgent(state: RunState, event: dict) -> bool:
    """A change the page shows at once: a stage, a result, a card's first text. Later text waits
    for the next tick (a card streams hundreds of tokens a second on a GPU)."""
    if event["type"] != "token":
        return True
    panel = state.panels.get(event.get("config", ""))
    return panel is not None and not panel.text


class RunSession:
    def __init__(self, prepared: PreparedRun, store: Store, cancel: threading.Event,
                 times: StageTimes | None = None) -> None:
        self.prepared, self.store, self.cancel = prepared, store, cancel
        self.times = times or StageTimes()
        req = prepared.request
        self.state = RunState(prepared.config_names, new_tokens=req.max_new_tokens, batch=req.batch_size)
        self._events: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, daemon=True, name="arena-run")

    def _work(self) -> None:
        try:
            execute(self.prepared, store=self.store, on_event=self._receive, cancel=self.cancel)
        except Exception as exc:  # the runner stores what it measured before this
            self._events.put({"type": "fatal", "reason": one_line(exc)})
        finally:
            self._events.put({"type": "end"})

    def _receive(self, event: dict[str, Any]) -> None:
        """An event from the runner, stamped with when this server got it (the worker stamps
        when it sent it): the page's own delay is the time after this."""
        self._events.put({**event, "server_at": time.time()})

    def join(self, timeout_s: float = 60.0) -> None:
        """Wait for the run thread (after a cancel it stops its worker within seconds)."""
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _expect(self, event: dict[str, Any]) -> None:
        """Before a long stage starts, what it is expected to take: this configuration's last time
        here with the same shape, else the latest configuration of this run that went through it."""
        config, stage = event.get("config", ""), event.get("stage", "")
        if stage not in _MEASURED_AS:
            return
        seconds = self.times.get(self.prepared, config, stage)
        source = f"its last {stage.replace('warming up', 'warm-up')} here, same settings"
        scaled = self.times.scaled(self.prepared, config, stage) if seconds is None else None
        if scaled is not None:
            seconds, source = scaled[0], f"its last warm-up here at {scaled[1]:,} tokens, scaled to this length"
        if seconds is None:
            for result in reversed(self.state.results):
                seconds = measured(result, stage)
                if seconds is not None:
                    source = f"as {result['config']}'s {stage.replace('warming up', 'warm-up')} took in this run"
                    break
        if seconds is not None:
            self.state.expected[(config, stage)] = (seconds, source)

    def updates(self, every_s: float = 0.25) -> Iterator[bool]:
        """Start the run and yield whether new results arrived since the previous yield: at once
        for an urgent change (`urgent`), else at most every `every_s` seconds while events come,
        and once at the end."""
        self._thread.start()
        changed, last = False, 0.0
        while True:
            try:
                event = self._events.get(timeout=every_s)
            except queue.Empty:
                event = None
            now = False
            if event is not None:
                if event["type"] == "end":
                    break
                if event["type"] == "fatal":
                    self.state.error = event["reason"]
                else:
                    if event["type"] == "status":
                        self._expect(event)
                    now = urgent(self.state, event)
                    changed |= self.state.apply(event)
                    if event["type"] == "result":
                        self.times.record(self.prepared, event["result"])
            if now or time.monotonic() - last >= every_s:
                yield changed
                changed, last = False, time.monotonic()
        if self.cancel.is_set():
            self.state.mark_not_run()
        self.state.finished = True
        yield True
