"""The launched app through gradio_client: streaming run, leaderboard, bad input, restart."""

import sqlite3
import threading

import pytest
from gradio_client import Client

from arena.data.store import Store
from tests.appserver import running_app


def _run(client: Client, prompt: str, configs: str, **kw):
    job = client.submit(prompt, "default", configs, kw.get("max_new_tokens", 6), 1, "auto",
                        kw.get("repeats", 1), api_name="/run")
    snapshots = list(job)
    return snapshots


def test_run_streams_and_lands_in_the_leaderboard_and_survives_a_restart(tmp_path):
    db = tmp_path / "arena.sqlite"
    with running_app(db) as app:
        client = Client(app.url, verbose=False)
        snapshots = _run(client, "What is the capital of France?", "eager,sdpa")
        final = snapshots[-1]
        assert final["finished"] and not final["error"]
        # streamed: intermediate snapshots show configurations before they are done
        assert any(p["status"] != "done" for s in snapshots[:-1] for p in s["panels"])
        assert [p["config"] for p in final["panels"]] == ["eager", "sdpa"]
        by_config = {r["config"]: r for r in final["results"]}
        for name in ("eager", "sdpa"):
            r = by_config[name]
            assert r["status"] == "ok", r["reason"]
            assert r["decode_tokens_per_s"] > 0 and r["ttft_ms"] > 0 and r["peak_memory_mb"] > 0
            assert "Paris" in r["text"]
        assert by_config["sdpa"]["token_agreement"] == 1.0  # fp32 on CPU: identical greedy tokens
        assert by_config["eager"]["speedup"] == 1.0
        assert by_config["sdpa"]["speedup"] == pytest.approx(
            by_config["sdpa"]["decode_tokens_per_s"] / by_config["eager"]["decode_tokens_per_s"])

        rows = client.predict(api_name="/leaderboard")
        assert {(r["run_id"], r["config"]) for r in rows} == {(final["run_id"], "eager"), (final["run_id"], "sdpa")}

        # invalid input: a clear one-line error, nothing stored
        for args, message in [(("", "eager"), "prompt is empty"), (("hi", "nope"), "unknown configuration 'nope'")]:
            with pytest.raises(Exception, match=message):
                client.predict(args[0], "default", args[1], api_name="/run")
        with pytest.raises(Exception, match="max_new_tokens must be between"):
            client.predict("hi", "default", "eager", 10**9, api_name="/run")
        with pytest.raises(Exception, match="unknown synthetic architecture"):
            client.predict("hi", "synthetic:nope", "eager", api_name="/run")
        assert len(client.predict("", "", "", "", True, api_name="/leaderboard")) == 2

        # blind check: eager and sdpa wrote the same text (fp32 on CPU): not a pair to vote on
        with pytest.raises(Exception, match="wrote the same text"):
            client.predict(api_name="/blind_pair")
        stranger = Client(app.url, verbose=False)
        with pytest.raises(Exception, match="at least two configurations"):
            stranger.predict(api_name="/blind_pair")
        with pytest.raises(Exception, match="not shown to this session"):
            stranger.predict("made-up", "A is better", api_name="/vote")
        assert Store(db).votes() == []

    # the app is gone (SIGKILL); the store is intact and a new app serves the same rows
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(Store(db).results()) == 2
    with running_app(db) as app:
        rows = Client(app.url, verbose=False).predict(api_name="/leaderboard")
        assert sorted(r["config"] for r in rows) == ["eager", "sdpa"]


def test_run_endpoint_defaults_are_the_run_requests(tmp_path):
    import inspect

    from arena.core.limits import ServerLimits
    from arena.core.request import RunRequest
    from arena.ui.web.app import build
    from arena.ui.web.state import ArenaApp

    demo = build(ArenaApp(Store(tmp_path / "arena.sqlite"), ServerLimits()))
    [run] = [f.fn for f in demo.fns.values() if f.api_name == "run"]
    defaults = {k: p.default for k, p in inspect.signature(run).parameters.items()
                if p.default is not inspect.Parameter.empty and k != "request"}
    expected = RunRequest()
    for name, value in defaults.items():
        want = ",".join(expected.configs) if name == "configs" else getattr(expected, name)
        assert value == want or (value == "" and want is None), (name, value, want)


def test_no_endpoint_writes_rows(tmp_path):
    """The public API: /run and /blind_run (server-measured results only), /leaderboard, /ratings and /workers
    (read), /blind_pair and /vote (votes only on pairs the server showed to that session), /cancel (the caller's
    own session's run only)."""
    with running_app(tmp_path / "arena.sqlite") as app:
        api = Client(app.url, verbose=False).view_api(return_format="dict", print_info=False)
        assert set(api["named_endpoints"]) == {"/run", "/leaderboard", "/blind_run", "/blind_pair", "/vote", "/ratings",
                                             "/workers", "/cancel"}
        assert not api["unnamed_endpoints"]


def test_the_queue_bound_refuses_a_run_beyond_the_limit_in_our_words_and_lets_reads_through():
    """arena/ui/web/queue_bound.py wraps Gradio's private Queue.push; on a real (tiny) Blocks
    server this fails when Gradio changes what the wrapper relies on."""
    import inspect
    import threading
    import time

    import gradio as gr
    from gradio.queueing import Queue

    from arena.ui.web.queue_bound import bound_measuring_queue
    from arena.ui.web.state import GPU_QUEUE
    from tests.appserver import free_port

    assert list(inspect.signature(Queue.push).parameters) == ["self", "body", "request", "username"]
    release = threading.Event()

    def measure(prompt: str) -> str:
        release.wait(60)
        return prompt

    def read() -> str:
        return "read"

    with gr.Blocks() as demo:
        gr.api(measure, api_name="measure", concurrency_id=GPU_QUEUE, concurrency_limit=1)
        gr.api(read, api_name="read", queue=False)
    demo.queue()
    bound_measuring_queue(demo, max_waiting=1)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        running, waiting, third = (Client(url, verbose=False) for _ in range(3))
        first = running.submit("one", api_name="/measure")
        deadline = time.monotonic() + 30
        while first.status().code.name not in ("PROCESSING",) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = waiting.submit("two", api_name="/measure")
        while second.status().code.name != "IN_QUEUE" and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(Exception, match="The arena is busy: 1 runs are already waiting"):
            third.submit("three", api_name="/measure").result(timeout=20)
        assert [third.predict(api_name="/read") for _ in range(5)] == ["read"] * 5  # reads never count
        release.set()
        assert (first.result(timeout=30), second.result(timeout=30)) == ("one", "two")
        assert third.predict("four", api_name="/measure") == "four"  # room again
    finally:
        release.set()
        demo.close()


def test_a_long_stage_says_what_it_does_and_how_long_it_should_take(tmp_path):
    """A warm-up is explained on its card, with an estimate from what was measured: an earlier
    configuration of the same run, then this configuration's own last time on this server."""
    from arena.core.limits import ServerLimits
    from arena.core.request import RunRequest
    from arena.ui.web.panels import render
    from arena.ui.web.state import ArenaApp

    app = ArenaApp(Store(tmp_path / "arena.sqlite"), ServerLimits())
    app.isolation = "inline"

    def run() -> dict:
        req = RunRequest(model="synthetic:tiny-llama", configs=["eager", "sdpa"], prompt_tokens=8,
                         max_new_tokens=3, repeats=1)
        *_, (state, _) = app.stream(req, "session")
        assert [r["status"] for r in state.results] == ["ok", "ok"], state.results
        return state

    state = run()
    seconds, source = state.expected[("sdpa", "warming up")]
    assert source == "as eager's warm-up took in this run"
    assert seconds == pytest.approx(state.results[0]["stage_s"]["warmup"])
    panel = state.panels["sdpa"]
    panel.status = "warming up"
    card = render(state)
    assert "one untimed generation of 3 new tokens at batch 1" in card and "s expected (as eager" in card
    # the next run of the same shape: each configuration's own last warm-up here comes first
    from arena.execute.prepare import validate
    from arena.ui.web.session import RunSession

    again = RunSession(validate(RunRequest(model="synthetic:tiny-llama", configs=["eager", "sdpa"], prompt_tokens=8,
                                           max_new_tokens=3, repeats=1, isolation="inline")),
                       app.store, threading.Event(), app.times)
    again._expect({"type": "status", "config": "eager", "stage": "warming up"})
    assert again.state.expected[("eager", "warming up")] == (
        pytest.approx(state.results[0]["stage_s"]["warmup"]), "its last warm-up here, same settings")


def test_a_one_configuration_run_compares_nothing_and_a_configuration_never_run_has_an_empty_bar():
    from arena.ui.web.panels import RunState, render, run_table

    state = RunState(["eager"])
    state.apply({"type": "run", "run_id": "r", "order": ["eager"], "baseline": "eager"})
    state.apply({"type": "result", "config": "eager", "result": {
        "config": "eager", "status": "ok", "text": "Paris.", "token_agreement": 1.0, "compared_tokens": 3}})
    card = render(state)
    assert "nothing to compare with (one configuration)" in card and "agreement 100%" not in card

    state = RunState(["eager", "sdpa"])
    state.apply({"type": "run", "run_id": "r", "order": ["eager", "sdpa"], "baseline": "eager"})
    state.apply({"type": "status", "config": "eager", "stage": "warming up"})
    state.apply({"type": "result", "config": "eager", "result": {
        "config": "eager", "status": "failed", "reason": "cancelled", "ending": "cancelled",
        "text": ""}})
    state.mark_not_run()
    assert [(p.status, p.progress) for p in state.panels.values()] == [("cancelled", 0.4), ("cancelled", 0.0)]
    assert list(run_table(state.results)["status"]) == ["cancelled"]
