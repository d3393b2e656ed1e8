"""A public server, driven through gradio_client: public limits by default, private prompts,
a blind check that never pairs identical text, hourly vote limits, a queue that only runs fill
(reads answered at once, a full queue refused in our words), and a start that survives any
allowed-models list."""

import json
import time
import urllib.request

import pytest
from gradio_client import Client

from arena.core.results import PRIVATE_FIELDS
from arena.data.store import Store
from tests.appserver import running_app
from tests.localmodel import small_local_model


def _config(url: str) -> dict:
    with urllib.request.urlopen(url + "config", timeout=30) as r:
        return json.load(r)


def _texts(config: dict) -> str:
    return " ".join(str(c.get("props", {}).get("value")) for c in config["components"])


def test_public_server_keeps_prompts_private_votes_bounded_and_reads_out_of_the_queue(tmp_path):
    model = small_local_model(tmp_path / "small-llama")
    env = {"GRADIO_SERVER_NAME": "0.0.0.0",  # reachable by others: public limits without ARENA_LIMITS
           "ARENA_ALLOW_LOCAL_MODELS": "1", "ARENA_ALLOWED_MODELS": f"default,{model}",
           "ARENA_MAX_QUEUE": "1", "ARENA_VOTES_PER_HOUR": "1"}
    db = tmp_path / "arena.sqlite"
    with running_app(db, env) as app:
        config = _config(app.url)
        assert "Public limits" in _texts(config)
        # every event that only reads answers outside the queue; runs and sweeps share one slot,
        # and freeing the warm workers waits in it too (never while a worker measures)
        queued = {d["api_name"] for d in config["dependencies"] if d.get("queue") is not False}
        assert queued == {"run_page", "run_sweep_ui", "run", "blind_run_page", "blind_run", "free"}, queued

        owner, waiting, third = (Client(app.url, verbose=False) for _ in range(3))
        # eager and bnb-8bit write the same tokens here, bnb-4bit others (random weights)
        job = owner.submit("w1 w2 w3", str(model), "eager,bnb-8bit,bnb-4bit", 8, 1, "auto", 1, api_name="/run")
        deadline = time.monotonic() + 180

        def wait_for(j, *codes):
            while j.status().code.name not in codes and time.monotonic() < deadline:
                time.sleep(0.2)
            return j.status().code.name

        assert wait_for(job, "PROCESSING", "ITERATING") in ("PROCESSING", "ITERATING")
        queued_job = waiting.submit("What is the capital of France?", "default", "eager,sdpa", 2, 1, "auto", 1,
                                    api_name="/run")
        assert wait_for(queued_job, "IN_QUEUE") == "IN_QUEUE"
        refused = third.submit("hi", "default", "eager", 2, api_name="/run")
        with pytest.raises(Exception) as exc:
            refused.result(timeout=60)
        assert "The arena is busy: 1 runs are already waiting" in str(exc.value), (repr(exc.value), job.status(),
                                                                                   queued_job.status())
        # the queue is full, yet reads answer at once
        started = time.monotonic()
        for _ in range(20):  # more visitors than the queue holds
            third.predict(api_name="/leaderboard")
        assert time.monotonic() - started < 30
        assert not job.done()  # still measuring: the reads did not wait for it

        final = list(job)[-1]
        assert final["finished"] and not final["error"], final
        mine = {r["config"]: r for r in final["results"]}
        assert all(r["status"] == "ok" for r in mine.values()), mine
        assert mine["eager"]["text"] == mine["bnb-8bit"]["text"] != mine["bnb-4bit"]["text"]
        assert mine["eager"]["prompt"] == "w1 w2 w3"  # the session that ran it sees its own
        queued_final = list(queued_job)[-1]
        assert queued_final["finished"] and not queued_final["error"]

        rows = third.predict(api_name="/leaderboard")
        assert len(rows) == 5 and all(set(PRIVATE_FIELDS).isdisjoint(r) for r in rows), rows[0].keys()
        assert {r["run_id"] for r in rows} == {final["run_id"], queued_final["run_id"]}
        assert all(r["decode_tokens_per_s"] > 0 and r["config"] and r["settings"] for r in rows)
        speeds = [r["decode_tokens_per_s"] for r in rows]
        assert speeds == sorted(speeds, reverse=True)  # fastest first

        # blind check: the identical pair (eager, bnb-8bit) is never shown
        first = owner.predict(api_name="/blind_pair")
        assert first["text_a"] != first["text_b"]
        reveal = owner.predict(first["pair_id"], "A is better", api_name="/vote")
        assert "bnb-4bit" in (reveal["A"], reveal["B"])
        second = owner.predict(api_name="/blind_pair")
        assert second["text_a"] != second["text_b"]
        with pytest.raises(Exception, match="voted 1 times in the last hour"):
            owner.predict(second["pair_id"], "Tie", api_name="/vote")
        with pytest.raises(Exception, match="every pair of this run has been shown|same text"):
            owner.predict(api_name="/blind_pair")
        with pytest.raises(Exception, match="same text"):
            waiting.predict(api_name="/blind_pair")  # eager and sdpa on the default: identical
        with pytest.raises(Exception, match="not shown to this session"):
            third.predict(first["pair_id"], "B is better", api_name="/vote")
        [vote] = Store(db).votes()
        assert vote["pair_id"] == first["pair_id"]
        ratings = {r["config"]: r for r in third.predict(api_name="/ratings")}
        assert ratings[reveal["A"]]["rating"] > ratings[reveal["B"]]["rating"]
        assert ratings["bnb-4bit"]["decode_tokens_per_s"] == pytest.approx(
            float(f"{mine['bnb-4bit']['decode_tokens_per_s']:.3g}"))


def test_start_survives_an_allowed_list_without_the_default_and_says_results_are_not_kept(tmp_path):
    env = {"SPACE_ID": "someone/arena", "ARENA_ALLOWED_MODELS": "Qwen/Qwen2.5-0.5B-Instruct,TinyLlama/*"}
    with running_app(tmp_path / "arena.sqlite", env) as app:
        config = _config(app.url)
        [model] = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "model"]
        assert [c[1] for c in model["props"]["choices"]] == ["Qwen/Qwen2.5-0.5B-Instruct"]
        text = _texts(config)
        assert "results last until it restarts" in text and "Public limits" in text
        with pytest.raises(Exception, match="not allowed"):
            Client(app.url, verbose=False).predict("hi", "default", "eager", 2, api_name="/run")
    assert Store(tmp_path / "arena.sqlite").results() == []


def test_public_limits_are_said_where_a_value_is_clamped_or_refused(tmp_path):
    """The page's sliders stop at the public maxima and say so under the slider; a Sweep value
    beyond them is refused in place, with the label the visitor sees and the limit named."""
    from arena.core.limits import ServerLimits
    from arena.ui.web.app import build
    from arena.ui.web.state import ArenaApp

    limits = ServerLimits.public()
    demo = build(ArenaApp(Store(tmp_path / "arena.sqlite"), limits))
    blocks = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    assert blocks["max-new"].maximum == limits.max_new_tokens == 256
    assert "At most 256 new tokens on this server: its public limit" in blocks["max-new"].info
    assert blocks["batch"].maximum == 8 and "At most 8 rows per batch" in blocks["batch"].info

    sweep = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "run_sweep_ui")
    status, *_ = next(sweep("session", "synthetic:tiny-llama", ["eager"], ["none"], "1,64", "8", "0", "forward",
                            "auto", 1, "8..16", 3))
    assert status.startswith("**Not started:** Batch sizes: 64 is outside 1..8"), status
    assert "8 is the most this server allows: its public limit" in status
    assert Store(tmp_path / "arena.sqlite").results() == []
