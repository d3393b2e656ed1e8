"""Ending a generation early: cancel and the time limit, checked between tokens.

A `Guarded` streamer wraps the measuring streamer; before each token reaches it, `stop()` is
asked for a reason to end, and `Stopped` is raised out of generate() (transformers and the
compiled decode loop both let a streamer's exception through), so the worker answers within a
token's time instead of at the end of the repeats."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from arena.core.ending import CANCELLED, Code, Why, code_of
from arena.execute import hooks

StopCheck = Callable[[], "str | None"]


class Stopped(Exception):
    """Generation ended early; `reason` says why ("cancelled by the user", "timed out ..."),
    `code` for the program (CANCELLED, TIMEOUT or RUN_TIME_LIMIT)."""

    def __init__(self, reason: str, code: Code | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code or code_of(reason, Code.TIMEOUT)


def deadline_check(deadline: float | None, reason: str, cancelled: Callable[[], bool] | None = None) -> StopCheck:
    """A stop check for a `time.monotonic()` deadline and a cancel flag; its reasons carry their
    code (`reason`'s own where it is a `Why`, else TIMEOUT)."""
    timed_out = Why(reason, code_of(reason, Code.TIMEOUT))

    def check() -> str | None:
        if cancelled is not None and cancelled():
            return CANCELLED
        if deadline is not None and time.monotonic() > deadline:
            return timed_out
        return None
    return check


class Guarded:
    """A streamer that passes everything to `inner` after asking `stop()` whether to go on."""

    def __init__(self, inner: Any, stop: StopCheck | None, config: str = "") -> None:
        self.inner, self.stop = inner, stop
        self.delay_s = hooks.fire("token_delay", config) or 0.0

    def put(self, value: Any) -> None:
        if self.stop is not None:
            reason = self.stop()
            if reason:
                raise Stopped(reason)
        if self.delay_s:
            time.sleep(self.delay_s() if callable(self.delay_s) else self.delay_s)
        self.inner.put(value)

    def end(self) -> None:
        self.inner.end()
