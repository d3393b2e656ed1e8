"""How a configuration, a sweep point or a job ended, as a code the program decides on.

Every terminal event ("error", "stopped", a launcher's `Ending`) and every stored result
(`Result.ending`) carries a `Code`; the words beside it are for people. No decision reads the
words: rewording a message changes nothing the program does (tests/test_endings.py).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

# How a run or a sweep (the `runs` table) ended, the same words for both: all it was asked
# ran ("complete"), the user or a benchmark's budget stopped it ("cancelled"), its wall time
# ran out ("time limit"), or the app stopped under it ("incomplete", Store.mark_interrupted).
RunStatus = Literal["running", "complete", "cancelled", "time limit", "incomplete"]


class Code(str, Enum):
    """Why something ended. A str, so it is stored and sent as its value ("oom")."""

    def __str__(self) -> str:  # its value, as StrEnum (3.11+) would have it
        return self.value

    __format__ = str.__format__

    OK = "ok"
    # refused before it started (status "unavailable")
    NEEDS_CUDA = "needs-cuda"
    NOT_INSTALLED = "not-installed"
    RETIRED = "retired"  # the technique no longer runs with the pinned stack
    UNSUPPORTED = "unsupported"  # this platform, GPU, dtype or model cannot run it
    UNSUPPORTED_COMBINATION = "unsupported-combination"  # its techniques cannot run together (or on this placement)
    BAD_INPUT = "bad-input"
    # started, or meant to, and gave no result (status "failed")
    NOT_RUN = "not-run"  # the run's or sweep's time limit came before it started
    OOM = "oom"
    CRASH = "crash"  # its process died
    ERROR = "error"  # it raised an error
    TIMEOUT = "timeout"  # its own time limit
    RUN_TIME_LIMIT = "run-time-limit"  # the run's (or sweep's) wall time cut it
    CANCELLED = "cancelled"
    NO_RESULT = "no-result"  # it ended without an error and without a measurement

    @property
    def refused(self) -> bool:
        return self in _REFUSED

    @property
    def status(self) -> str:
        """The result status this ending stores: ok, unavailable or failed."""
        return "ok" if self is Code.OK else "unavailable" if self.refused else "failed"

    @property
    def stopped(self) -> bool:
        """Ended by the user or a time limit rather than by itself (a benchmark runs it again)."""
        return self in (Code.CANCELLED, Code.NOT_RUN, Code.RUN_TIME_LIMIT)


_REFUSED = frozenset({Code.NEEDS_CUDA, Code.NOT_INSTALLED, Code.RETIRED, Code.UNSUPPORTED,
                      Code.UNSUPPORTED_COMBINATION, Code.BAD_INPUT})


class Why(str):
    """A one-line reason that carries its code: people read the text, the program `.code`.
    It survives pickling (a worker's queue) and is a plain str everywhere else."""

    code: Code

    def __new__(cls, text: str, code: Code) -> Why:
        out = super().__new__(cls, text)
        out.code = Code(code)
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return (Why, (str(self), self.code))


CANCELLED = Why("cancelled by the user", Code.CANCELLED)


def code_of(reason: Any, default: Code) -> Code:
    """The code a reason carries (a `Why`), else `default`."""
    return reason.code if isinstance(reason, Why) else default
