"""Endings carry a code (arena/core/ending.py) and every decision reads the code, never the
words: a reworded reason changes nothing the program does."""

from __future__ import annotations

import ast
import pickle
import queue
from pathlib import Path

import pytest

from arena.core.ending import CANCELLED, Code, Why
from arena.core.limits import ServerLimits
from arena.core.request import RequestError
from arena.execute.launcher import Limit, Source
from arena.execute.stopping import deadline_check
from arena.execute.supervisor import supervise

PACKAGE = Path(__file__).resolve().parent.parent / "arena"
# names that hold words meant for people: no decision may look inside them
WORDS = ("reason", "error", "message", "note", "stopped", "why", "label", "text_of")


class _Queued(Source):
    def __init__(self, *events: dict) -> None:
        self.events = queue.Queue()
        for event in events:
            self.events.put(event)

    def death(self) -> str | None:
        return None


def _end(*events: dict):
    return supervise(_Queued(*events, {"type": "done"}), lambda e: None, Limit(30, "timed out"))


@pytest.mark.parametrize("words", ["cancelled by the user", "the visitor pressed Stop", "timed out after 3 s"])
def test_a_stop_is_told_by_its_code_whatever_its_words(words):
    out = _end({"type": "stopped", "reason": words, "code": "cancelled"})
    assert (out.ending.kind, out.ending.code, out.code) == ("cancelled", Code.CANCELLED, Code.CANCELLED)
    out = _end({"type": "stopped", "reason": words, "code": "run-time-limit"})
    assert (out.ending.kind, out.code) == ("timeout", Code.RUN_TIME_LIMIT)
    assert out.failure() == words


def test_an_error_keeps_its_code_and_a_measurement_is_ok():
    assert _end({"type": "error", "reason": "anything at all", "code": "oom"}).code is Code.OOM
    assert _end({"type": "error", "reason": "out of memory: ..."}).code is Code.ERROR  # words say OOM: no matter
    assert _end({"type": "metrics", "metrics": {"ttft_ms": 1.0}}).code is Code.OK
    assert _end().code is Code.NO_RESULT


def test_a_limits_reason_carries_its_code_to_the_worker_and_back():
    limit = Limit(0.0, "whatever the run says", code=Code.RUN_TIME_LIMIT)
    assert pickle.loads(pickle.dumps(limit.reason)).code is Code.RUN_TIME_LIMIT  # the pool's job queue
    reason = deadline_check(0.0, limit.reason)()
    assert reason == "whatever the run says" and reason.code is Code.RUN_TIME_LIMIT
    assert deadline_check(None, "x", lambda: True)().code is Code.CANCELLED
    assert Code.RUN_TIME_LIMIT.stopped and Code.NOT_RUN.stopped and not Code.TIMEOUT.stopped
    assert [c.status for c in (Code.OK, Code.NEEDS_CUDA, Code.OOM)] == ["ok", "unavailable", "failed"]


def test_the_benchmark_driver_and_blind_check_read_the_code():
    from arena.bench.driver import _stopped
    from arena.data.blind import _why_left_out

    assert _stopped("cancelled") and _stopped("not-run") and not _stopped("error") and not _stopped("")
    assert _why_left_out({"status": "failed", "reason": "the visitor left", "ending": "cancelled"}) == "cancelled"
    assert _why_left_out({"status": "failed", "reason": "cancelled kernel", "ending": "error"}) != "cancelled"


def test_a_refusal_is_worded_by_its_field_and_bound_not_by_parsing_its_text():
    from arena.ui.web.sweep_tab import worded

    limits = ServerLimits.public()
    plain = RequestError.about("batch_sizes", ": 64 lies beyond the top of 1..8", high=limits.max_batch)
    text = worded(plain, limits)
    assert text.startswith("Batch sizes: 64 lies beyond") and "is the most this server allows" in text
    assert worded(RequestError("batch_sizes 64 is nothing"), limits) == "batch_sizes 64 is nothing"


def test_availability_says_why_with_a_code():
    from arena.core.env import platform
    from arena.techniques import registry

    if platform().has_cuda:
        pytest.skip("on a CUDA machine these rows can run")
    for name, code in (("sdpa-flash", Code.NEEDS_CUDA), ("bettertransformer", Code.RETIRED), ("eager", Code.OK)):
        assert registry.availability(registry.get(name), "fp32").code is code


def _reads_words(node: ast.AST) -> str | None:
    """`x.startswith(...)` / `"..." in x` / `re.search(..., x)` where x names words (WORDS)."""
    def words(expr: ast.AST) -> bool:
        name = ast.unparse(expr).lower()
        return any(w in name for w in WORDS) and "code" not in name
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in ("startswith", "endswith") and words(node.func.value):
            return ast.unparse(node)
        if ast.unparse(node.func) in ("re.search", "re.match", "re.fullmatch") and any(map(words, node.args[1:])):
            return ast.unparse(node)
    if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
        if isinstance(node.left, ast.Constant) and isinstance(node.left.value, str) and words(node.comparators[0]):
            return ast.unparse(node)
    return None


def decisions_on_words(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            hit = _reads_words(node)
            if hit:
                found.append(f"{path.relative_to(root.parent)}: {hit}")
    return found


def test_no_decision_reads_a_reason_or_a_message():
    assert decisions_on_words(PACKAGE) == []


def test_the_words_check_finds_what_it_looks_for(tmp_path):
    pkg = tmp_path / "arena"
    pkg.mkdir()
    (pkg / "m.py").write_text('def f(reason, event, message):\n'
                              '    a = reason.startswith("cancelled")\n'
                              '    b = "cancelled" in event["reason"]\n'
                              '    c = re.search(r"outside (\\d+)", message)\n'
                              '    d = event["code"] == "cancelled"\n', encoding="utf-8")
    assert len(decisions_on_words(pkg)) == 3
