import os
import tempfile
from pathlib import Path

import pytest

# One ARENA_HOME for the whole session: the embedded model is converted once, exports cached once.
_HOME = Path(os.environ.get("ARENA_TEST_HOME") or tempfile.mkdtemp(prefix="arena-test-home-"))
os.environ["ARENA_HOME"] = str(_HOME)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the fault hooks every worker of the tests registers (arena/execute/hooks.py; idle unless ARENA_FAULT_INJECT is set)
os.environ["ARENA_HOOKS"] = "arena.testing.faults"


@pytest.fixture
def store(tmp_path):
    from arena.data.store import Store

    return Store(tmp_path / "arena.sqlite")


@pytest.fixture
def fault(monkeypatch):
    """Set ARENA_FAULT_INJECT for one test (the spawned workers inherit it)."""

    def set_fault(value: str) -> None:
        monkeypatch.setenv("ARENA_FAULT_INJECT", value)

    return set_fault
