"""Runs one request in a background thread and turns the runner's events into a stream of
RunState snapshots for the page and the API."""

from __future__ import annotations

import queue
import threading
import time
from typing import Iterator

from arena.core.errors import one_line
from arena.execute.prepare import PreparedRun
from arena.data.store import Store
from arena.execute.runner import execute
from arena.ui.web.panels import RunState


def urgent(state: RunState, event: dict) -> bool:
    """A change the page shows at once: a stage, a result, a card's first text. Later text waits
    for the next tick (a card streams hundreds of tokens a second on a GPU)."""
    if event["type"] != "token":
        return True
    panel = state.panels.get(event.get("config", ""))
    return panel is not None and not panel.text


class RunSession:
    def __init__(self, prepared: PreparedRun, store: Store, cancel: threading.Event) -> None:
        self.prepared, self.store, self.cancel = prepared, store, cancel
        self.state = RunState(prepared.config_names)
        self._events: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, daemon=True, name="arena-run")

    def _work(self) -> None:
        try:
            execute(self.prepared, store=self.store, on_event=self._events.put, cancel=self.cancel)
        except Exception as exc:  # the runner stores what it measured before this
            self._events.put({"type": "fatal", "reason": one_line(exc)})
        finally:
            self._events.put({"type": "end"})

    def join(self, timeout_s: float = 60.0) -> None:
        """Wait for the run thread (after a cancel it stops its worker within seconds)."""
        if self._thread.is_alive():
            self._thread.join(timeout_s)

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
                    now = urgent(self.state, event)
                    changed |= self.state.apply(event)
            if now or time.monotonic() - last >= every_s:
                yield changed
                changed, last = False, time.monotonic()
        if self.cancel.is_set():
            self.state.mark_not_run()
        self.state.finished = True
        yield True
