"""The launched app through gradio_client: streaming run, leaderboard, bad input, restart."""

import sqlite3

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


def test_no_endpoint_writes_rows(tmp_path):
    """The public API: /run and /blind_run (server-measured results only), /leaderboard, /ratings and /workers
    (read), /blind_pair and /vote (votes only on pairs the server showed to that session), /cancel (the caller's
    own session's run only)."""
    with running_app(tmp_path / "arena.sqlite") as app:
        api = Client(app.url, verbose=False).view_api(return_format="dict", print_info=False)
        assert set(api["named_endpoints"]) == {"/run", "/leaderboard", "/blind_run", "/blind_pair", "/vote", "/ratings",
                                             "/workers", "/cancel"}
        assert not api["unnamed_endpoints"]
