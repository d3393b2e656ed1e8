"""Blind check: random order, hidden names, one vote per pair and session, ratings."""

import math

import pytest

from arena.data.blind import BlindCheck, VoteError
from arena.data.ratings import fit, with_intervals


def _results(run_id: str, texts: dict[str, str], synthetic: bool = False) -> list[dict]:
    return [{"run_id": run_id, "config": c, "status": "ok", "text": t, "model_id": "default",
             "prompt": "Q?", "synthetic": synthetic} for c, t in texts.items()]


def test_bradley_terry_matches_hand_computed_ratings():
    # A beat B 3 times out of 4: P(A beats B) = 3/4, so the rating gap is 400 * log10(3).
    r = fit([("A", "B", "a")] * 3 + [("A", "B", "b")], prior=0)
    assert r["A"] - r["B"] == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert (r["A"] + r["B"]) / 2 == pytest.approx(1000)
    # ties count half each way: 2 wins + 2 ties = 3 of 4 as well
    r2 = fit([("A", "B", "a")] * 2 + [("A", "B", "tie"), ("B", "A", "both_bad")], prior=0)
    assert r2["A"] - r2["B"] == pytest.approx(400 * math.log10(3), abs=1e-6)
    # three players, A > B > C transitively, each 2:1 -> equal steps of 400*log10(2)
    r3 = fit([("A", "B", "a")] * 2 + [("A", "B", "b")] + [("B", "C", "a")] * 2 + [("C", "B", "a")], prior=0)
    assert r3["A"] - r3["B"] == pytest.approx(400 * math.log10(2), abs=1e-6)
    assert r3["B"] - r3["C"] == pytest.approx(400 * math.log10(2), abs=1e-6)


def test_bootstrap_intervals_bracket_the_estimate():
    votes = [("A", "B", "a")] * 8 + [("A", "B", "b")] * 2 + [("B", "C", "a")] * 5
    ratings = with_intervals(votes, rounds=100)
    assert [r.player for r in ratings] == ["A", "B", "C"]
    for r in ratings:
        assert r.low <= r.rating <= r.high
    assert {r.player: r.votes for r in ratings} == {"A": 10, "B": 15, "C": 5}


def test_pairs_are_random_hidden_and_voted_once(store):
    blind = BlindCheck(store)
    orders = set()
    for i in range(40):
        blind.record_run("s1", _results(f"run{i}", {"eager": "Paris.", "sdpa": "Paris!"}))
        pair = blind.draw("s1")
        public = pair.public()
        assert set(public) == {"pair_id", "text_a", "text_b"}  # no configuration names
        orders.add((pair.config_a, pair.config_b))
        assert public["text_a"] == {"eager": "Paris.", "sdpa": "Paris!"}[pair.config_a]
    assert orders == {("eager", "sdpa"), ("sdpa", "eager")}

    blind.record_run("s1", _results("last", {"eager": "x", "sdpa": "y"}))
    pair = blind.draw("s1")
    with pytest.raises(VoteError, match="every pair"):
        blind.draw("s1")  # the only pair was shown already
    with pytest.raises(VoteError, match="not shown to this session"):
        blind.vote("s1", "forged-id", "A is better")
    with pytest.raises(VoteError, match="not shown to this session"):
        blind.vote("another-session", pair.pair_id, "A is better")
    with pytest.raises(VoteError, match="choice must be"):
        blind.vote("s1", pair.pair_id, "A wins!!")
    reveal = blind.vote("s1", pair.pair_id, "B is better")
    assert reveal == {"A": pair.config_a, "B": pair.config_b, "winner": "b"}
    with pytest.raises(VoteError, match=f"already voted on this pair \\(A was {pair.config_a}, B was {pair.config_b}"):
        blind.vote("s1", pair.pair_id, "A is better")  # the second vote is refused as such, names again
    with pytest.raises(VoteError, match="no pair is shown yet"):
        blind.vote("s1", "", "A is better")
    [stored] = store.votes()
    assert stored["run_id"] == "last" and stored["model_id"] == "default" and stored["prompt"] == "Q?"
    assert (stored["config_a"], stored["config_b"], stored["winner"]) == (pair.config_a, pair.config_b, "b")
    assert stored["created_at"]


def test_synthetic_outputs_are_not_offered(store):
    blind = BlindCheck(store)
    assert blind.record_run("s", _results("r", {"eager": "1 2", "sdpa": "3 4"}, synthetic=True)) == 0
    with pytest.raises(VoteError, match="synthetic model.*at least two configurations"):
        blind.draw("s")


def test_a_cancelled_run_gives_its_own_reason_not_the_previous_runs(store):
    blind = BlindCheck(store)
    blind.record_run("s", _results("r1", {"eager": "Paris.", "sdpa": "Paris."}))  # the same text
    # then a run cancelled while eager was writing: eager failed (cancelled), sdpa never started
    cancelled = _results("r2", {"eager": "Par"})
    cancelled[0].update(status="failed", reason="cancelled", ending="cancelled")
    assert blind.record_run("s", cancelled) == 0
    with pytest.raises(VoteError) as exc:
        blind.draw("s")
    assert "same text" not in str(exc.value)
    assert "finished 0 configurations with text (none); not finished: eager (cancelled)" in str(exc.value)
    # one finished, one cancelled: named as such
    half = _results("r3", {"eager": "Paris.", "sdpa": "Par"})
    half[1].update(status="failed", reason="cancelled", ending="cancelled")
    blind.record_run("s", half)
    with pytest.raises(VoteError, match=r"finished 1 configuration with text \(eager\); not finished: sdpa "
                                        r"\(cancelled\): a pair needs two"):
        blind.draw("s")


def test_identical_outputs_are_never_paired(store):
    blind = BlindCheck(store)
    blind.record_run("s", _results("r", {"eager": "Paris.", "sdpa": "Paris.", "bnb-4bit": "Lyon."}))
    shown = set()
    for _ in range(2):
        pair = blind.draw("s")
        assert pair.text_a != pair.text_b
        shown.add(frozenset((pair.config_a, pair.config_b)))
    assert shown == {frozenset(("eager", "bnb-4bit")), frozenset(("sdpa", "bnb-4bit"))}
    with pytest.raises(VoteError, match="same text"):
        blind.draw("s")  # only the identical pair is left
    blind.record_run("t", _results("r2", {"eager": "x\n", "sdpa": "x"}))  # equal but for a line break
    with pytest.raises(VoteError, match="same text"):
        blind.draw("t")


def test_votes_are_limited_per_session_and_per_address_per_hour(store):
    now = [0.0]
    blind = BlindCheck(store, votes_per_hour=2, clock=lambda: now[0])

    def vote(session, client):
        blind.record_run(session, _results(f"{session}-{now[0]}", {"eager": "a", "sdpa": "b"}))
        return blind.vote(session, blind.draw(session).pair_id, "Tie", client=client)

    vote("s1", "10.0.0.1")
    vote("s1", "10.0.0.2")
    with pytest.raises(VoteError, match="this session has voted 2 times in the last hour"):
        vote("s1", "10.0.0.3")
    vote("s2", "10.0.0.1")
    with pytest.raises(VoteError, match="this address has voted 2 times"):
        vote("s3", "10.0.0.1")  # a new session from an address that already voted twice
    assert len(store.votes()) == 3
    now[0] += 3601  # an hour later both may vote again
    vote("s1", "10.0.0.1")
    assert len(store.votes()) == 4


def test_sessions_and_pairs_expire(store):
    now = [0.0]
    blind = BlindCheck(store, ttl_s=100, max_sessions=3, clock=lambda: now[0])
    blind.record_run("old", _results("r0", {"eager": "a", "sdpa": "b"}))
    pair = blind.draw("old")
    now[0] = 101
    blind.record_run("new", _results("r1", {"eager": "a", "sdpa": "b"}))
    assert blind.sizes()["sessions"] == 1 and blind.sizes()["pairs"] == 0
    with pytest.raises(VoteError, match="expired"):
        blind.vote("old", pair.pair_id, "Tie")
    for i in range(10):  # at most max_sessions, the newest kept
        blind.record_run(f"s{i}", _results(f"r{i}", {"eager": "a", "sdpa": "b"}))
        blind.draw(f"s{i}")
    assert blind.sizes()["sessions"] == 3
    assert blind.sizes()["pairs"] <= 3
    with pytest.raises(VoteError, match="every pair"):
        blind.draw("s9")  # the newest session is kept (its one pair was shown)
    with pytest.raises(VoteError, match="at least two"):
        blind.draw("s0")  # the oldest is gone


def test_blind_draws_two_different_configurations_at_random(store):
    blind = BlindCheck(store)
    drawn = {tuple(blind.draw_configs(["eager", "sdpa", "bnb-4bit"])) for _ in range(200)}
    assert all(len(set(d)) == 2 for d in drawn)
    assert len(drawn) == 6  # every pair, in both orders
    with pytest.raises(VoteError, match=r"only 1 can run here for this model \(eager\)"):
        blind.draw_configs(["eager", "eager"])


def test_blind_run_through_the_server_hides_names_and_timings_until_the_vote(tmp_path):
    """/blind_run on the real server: two configurations drawn from those asked, run in the
    measuring queue; nothing names them or times them until /vote, which reveals them once."""
    import json
    import urllib.request

    from gradio_client import Client

    from arena.data.store import Store
    from tests.appserver import running_app
    from tests.localmodel import small_local_model

    model = str(small_local_model(tmp_path / "small-llama"))
    db = tmp_path / "arena.sqlite"
    with running_app(db) as app:
        # one tab bar, the Blind check in it (events registered after a tab would start a second)
        with urllib.request.urlopen(app.url + "config", timeout=30) as r:
            config = json.load(r)
        kinds = {c["id"]: c for c in config["components"]}
        bars = [[kinds[t["id"]]["props"]["label"] for t in child.get("children", [])]
                for child in config["layout"]["children"] if kinds[child["id"]]["type"] == "tabs"]
        assert bars == [["Arena", "Blind check", "Leaderboard", "Sweep", "Environment"]], bars
        client = Client(app.url, verbose=False)
        # eager and bnb-4bit write different tokens with these random weights
        snapshots = list(client.submit("w1 w2 w3", model, "bnb-4bit,eager", 8, api_name="/blind_run"))
        final = snapshots[-1]
        assert final["finished"] and final["pair_id"] and not final["note"], final
        assert final["text_a"] and final["text_b"] and final["text_a"] != final["text_b"]
        seen = json.dumps(snapshots)
        for word in ("eager", "bnb", "4bit", "ttft", "tokens_per_s", "memory", "run_id", "config"):
            assert word not in seen.lower(), (word, seen[:500])
        assert {"finished", "done", "of", "elapsed_s", "pair_id", "text_a", "text_b", "note"} == set(final)
        # what ran is a real run of this session, stored like any other
        rows = [r.to_dict() for r in Store(db).results()]
        assert sorted(r["config"] for r in rows) == ["bnb-4bit", "eager"]
        reveal = client.predict(final["pair_id"], "A is better", api_name="/vote")
        assert {reveal["A"], reveal["B"]} == {"eager", "bnb-4bit"}
        text_of = {r["config"]: r["text"] for r in rows}
        assert (text_of[reveal["A"]], text_of[reveal["B"]]) == (final["text_a"], final["text_b"])
        with pytest.raises(Exception, match="already voted on this pair"):
            client.predict(final["pair_id"], "B is better", api_name="/vote")
        with pytest.raises(Exception, match="not shown to this session"):
            Client(app.url, verbose=False).predict(final["pair_id"], "Tie", api_name="/vote")
        [vote] = Store(db).votes()
        assert (vote["config_a"], vote["config_b"], vote["winner"]) == (reveal["A"], reveal["B"], "a")

        with pytest.raises(Exception, match="only 1 can run here"):
            client.predict("w1", model, "eager", 4, api_name="/blind_run")
        with pytest.raises(Exception, match="synthetic model"):
            client.predict("w1", "synthetic:tiny-llama", "", 4, api_name="/blind_run")


def test_the_blind_tabs_handlers_hide_names_until_the_vote_and_refuse_a_second_vote(tmp_path):
    """The tab's own handlers, taken from the built page (real Blocks, real store, real workers)."""
    from arena.core.limits import ServerLimits
    from arena.data.store import Store
    from arena.ui.web import blind_tab
    from arena.ui.web.app import build
    from arena.ui.web.state import ArenaApp
    from tests.localmodel import small_local_model

    model = str(small_local_model(tmp_path / "small-llama"))
    app = ArenaApp(Store(tmp_path / "arena.sqlite"), ServerLimits())
    build(app)  # the page builds with its handlers wired

    def votes_on(update) -> list[bool]:
        return [b["interactive"] for b in update[-4:]]

    # a pair from the page's last run: A and B unnamed, the vote buttons on; the vote names them
    # and turns them off, a second vote says so
    app.blind.record_run("page", _results("r1", {"eager": "Paris.", "bnb-4bit": "Lyon."}))
    out = blind_tab.draw_ui(app, "page")
    pair_id, _, a, b, message = out[:5]
    assert (a["label"], b["label"], message) == ("A", "B", "Which is better?")
    assert {a["value"], b["value"]} == {"Paris.", "Lyon."} and votes_on(out) == [True] * 4
    out = blind_tab.vote_ui(app, "page", pair_id, {}, "A is better", None)
    kept, a, b, reveal = out[:4]
    assert kept == pair_id and votes_on(out) == [False] * 4
    assert (a["label"], b["label"]) in (("A · eager", "B · bnb-4bit"), ("A · bnb-4bit", "B · eager"))
    assert "your vote is stored" in reveal
    kept, a, b, reveal = blind_tab.vote_ui(app, "page", pair_id, {}, "B is better", None)[:4]
    assert kept == pair_id and "already voted on this pair" in reveal and "not shown" not in reveal
    assert len(app.store.votes()) == 1
    # no pair: the reason in the message, the vote buttons off
    app.blind.record_run("other", _results("r2", {"eager": "Paris.", "sdpa": "Paris. "}))
    out = blind_tab.draw_ui(app, "other")
    assert out[0] == "" and "same text" in out[4] and votes_on(out) == [False] * 4

    # a blind run through the page's handler: nothing names the two before the end; eager and sdpa
    # write the same text here (fp32), so there is no pair: the text is shown once, no vote offered
    updates = list(blind_tab.blind_run_ui(app, "page", "w1 w2 w3", model, ["sdpa", "eager"], 6))
    running, final = updates[:-1], updates[-1]
    assert running and all(u[4].startswith("**Blind run**: ") for u in running)
    assert not any(name in str(u) for u in running for name in ("eager", "sdpa"))
    assert final[0] == "" and "same text" in final[4] and "eager" in final[4] and "sdpa" in final[4]
    assert final[2]["value"] and final[3]["value"] == "" and "same text" in final[2]["label"]
    assert votes_on(final) == [False] * 4
    assert sorted(r.config for r in app.store.results()) == ["eager", "sdpa"]


def test_a_blind_run_on_a_fresh_install_says_the_embedded_models_one_time_preparation(tmp_path, monkeypatch):
    from arena.core.limits import ServerLimits
    from arena.data.store import Store
    from arena.ui.web.blind_tab import stream_blind_run
    from arena.ui.web.state import ArenaApp

    monkeypatch.setenv("ARENA_HOME", str(tmp_path / "home"))  # nothing converted yet
    app = ArenaApp(Store(tmp_path / "arena.sqlite"), ServerLimits())
    app.isolation = "inline"
    notes = []
    run = stream_blind_run(app, "s", "Name the capital of France.", "default", ["eager", "sdpa"], 2)
    for snap in run:
        if not snap["note"]:  # converted: the run itself has begun
            break
        notes.append(snap["note"])
    run.close()
    assert notes and all(n.startswith("Preparing the embedded model (once per installation)") for n in notes)
    assert any("step 2 of 3, de-quantizing" in n for n in notes), notes
    assert not any(name in n for n in notes for name in ("eager", "sdpa"))  # blind stays blind
