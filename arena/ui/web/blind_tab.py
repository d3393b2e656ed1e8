"""The Blind check tab: two configurations' outputs as A and B without their names, a vote, and
only then the names (the pairs and votes: arena/data/blind.py).

Two ways to a pair: a blind run (the visitor's prompt through two configurations the server
draws at random, run in the shared measuring queue like any run) or two outputs of the
visitor's last Arena run. Its own tab, so that the named cards of the Arena tab are out of
sight. During a blind run nothing names a configuration: no names, no stages, no timings (speed
would name one), and the text is shown only when both are done (how fast it streams would
too); after the vote the names and the measurements are shown."""

from __future__ import annotations

import time
import uuid
from typing import Any, Iterator

import gradio as gr

from arena.core.env import platform
from arena.core.errors import one_line_text
from arena.core.request import RequestError, RunRequest
from arena.execute.prepare import PreparedRun, validate
from arena.techniques import registry
from arena.data.blind import CHOICES, VoteError, same_text
from arena.ui.web import zerogpu
from arena.ui.web.state import ArenaApp, client_of, first_choice, model_choices, session_of

READ_ONLY = dict(queue=False, api_visibility="private")
_FINAL = {"done", "unavailable", "failed", "cancelled"}


def runnable(prepared: PreparedRun, among: list[str] | None = None) -> list[str]:
    """The configurations (of `among`, else of the registry) that can run here for this model and
    prompt: the runner's own availability check, made before drawing two."""
    plat = platform()
    positions = len(prepared.prompt_ids) + prepared.request.max_new_tokens
    out = []
    for name in among or list(registry.REGISTRY):
        cfg = registry.get(name)
        verdict = registry.availability(cfg, registry.run_dtype(cfg, prepared.dtype), plat,
                                        placement=prepared.placement, model_config=prepared.model_config,
                                        positions=positions)
        if verdict.ok:
            out.append(name)
    return out


def stream_blind_run(app: ArenaApp, session: str, prompt: str, model: str, among: str | list[str] = "",
                     max_new_tokens: int = 32) -> Iterator[dict[str, Any]]:
    """A blind run: two configurations drawn at random among those that can run here, run as one
    Arena run of this session; yields {finished, done, of, elapsed_s, pair_id, text_a, text_b,
    note} with no configuration name and no timing until the end, then (private to the caller)
    the results by configuration under "results". RequestError or VoteError for a request
    that cannot be a blind run."""
    try:
        wanted = registry.parse_names(among) if among else []
    except registry.UnknownConfigError as exc:
        raise RequestError(one_line_text(str(exc))) from None
    req = RunRequest(model=model or "default", prompt=prompt or "", configs=[registry.BASELINE],
                     max_new_tokens=max_new_tokens, repeats=1, isolation=app.isolation)
    started = time.monotonic()
    snap = {"finished": False, "done": 0, "of": 2, "elapsed_s": 0.0, "pair_id": "", "text_a": "", "text_b": "",
            "note": ""}
    for converting, _ in app.embedded_first_use(req):  # a fresh install: its one-time stage, said
        yield {**snap, "note": converting.note, "elapsed_s": round(time.monotonic() - started, 1)}
    prepared = validate(req, limits=app.limits)
    if prepared.spec.synthetic:
        raise RequestError("a blind run needs a real model: a synthetic model's random weights write noise")
    req.configs = app.blind.draw_configs(runnable(prepared, wanted))
    state = None
    for state, _ in app.stream(req, session):
        done = sum(p.status in _FINAL for p in state.panels.values())
        if not state.finished:
            yield {**snap, "done": done, "elapsed_s": round(time.monotonic() - started, 1)}
    snap.update(finished=True, done=2, elapsed_s=round(time.monotonic() - started, 1))
    results = {r["config"]: r for r in (state.results if state else [])}
    try:  # app.stream recorded the run as this session's last: its one pair
        pair = app.blind.draw(session)
    except VoteError as exc:  # nothing to vote on: say why, and the names (there is no vote to bias)
        texts = [results[c].get("text") or "" for c in req.configs if c in results]
        if len(texts) == 2:
            snap.update(text_a=texts[0], text_b=texts[1])
        snap["note"] = f"{exc}. They were {req.configs[0]} and {req.configs[1]}."
        if state is not None and state.error:
            snap["note"] = f"The run stopped: {state.error}. {snap['note']}"
    else:
        snap.update(pair_id=pair.pair_id, text_a=pair.text_a, text_b=pair.text_b)
    yield {**snap, "results": results}


def _measured(result: dict[str, Any] | None) -> str:
    if not result or result.get("status") != "ok":
        return ""
    def sig(v: Any, unit: str) -> str:
        return f"{v:.3g} {unit}" if isinstance(v, (int, float)) else f"– {unit}"
    return (f" (TTFT {sig(result.get('ttft_ms'), 'ms')} · decode {sig(result.get('decode_tokens_per_s'), 'tok/s')}"
            f" · peak {sig(result.get('peak_memory_mb'), 'MB')})")


# After each answer, the message and the vote buttons under it are brought into view (block
# "nearest" on the buttons' row, the message just above it: no scroll when both show).
SHOW_MESSAGE = """() => {
  document.getElementById('blind-status')?.scrollIntoView({block: 'nearest'});
  document.getElementById('blind-votes')?.scrollIntoView({block: 'nearest'});
}"""


def _texts(a: str = "", b: str = "", same: bool = False) -> tuple[Any, Any]:
    """A and B; two configurations that wrote the same text are shown once, as no pair."""
    if same:
        return (gr.update(value=a, label="A and B wrote the same text (nothing to vote on)"),
                gr.update(value="", label="B: the same text as A"))
    return gr.update(value=a, label="A"), gr.update(value=b, label="B")


def _votes(on: bool) -> list[Any]:
    """The vote buttons: enabled only while a pair not yet voted on is shown."""
    return [gr.update(interactive=on) for _ in CHOICES]


def draw_ui(app: ArenaApp, session_key: str) -> tuple:
    """Two outputs of this page's last Arena run, or why there is no pair (in the message)."""
    try:
        pair = app.blind.draw(session_key)
    except VoteError as exc:
        return "", {}, *_texts(), f"**{exc}**", *_votes(False)
    return pair.pair_id, {}, *_texts(pair.text_a, pair.text_b), "Which is better?", *_votes(True)


def blind_run_ui(app: ArenaApp, session_key: str, *args: Any) -> Iterator[tuple]:
    """A blind run for the page: progress, then the pair (or why none) in the one message."""
    shown = ""
    try:
        for snap in stream_blind_run(app, session_key or uuid.uuid4().hex, *args):
            if not snap["finished"]:
                text = (f"**Blind run**: {snap['note']}" if snap["note"] else
                        f"**Blind run**: {snap['done']} of 2 configurations done · {snap['elapsed_s']:.0f} s "
                        "(the outputs are shown when both are done)")
                if text != shown:
                    shown = text
                    yield "", {}, *_texts(), text, *_votes(False)
                continue
            if snap["pair_id"]:
                yield (snap["pair_id"], snap["results"], *_texts(snap["text_a"], snap["text_b"]),
                       "**Blind run done.** Which is better?", *_votes(True))
            else:
                same = bool(snap["text_a"]) and same_text(snap["text_a"], snap["text_b"])
                yield ("", {}, *_texts(snap["text_a"], snap["text_b"], same), f"**Blind run done.** {snap['note']}",
                       *_votes(False))
    except (RequestError, VoteError) as exc:
        yield "", {}, *_texts(), f"**{exc}**", *_votes(False)


def vote_ui(app: ArenaApp, session_key: str, pair: str, results: dict, choice: str,
            request: gr.Request | None) -> tuple:
    try:
        shown = app.blind.vote(session_key, pair, choice, client=client_of(request))
    except VoteError as exc:
        return pair, gr.skip(), gr.skip(), f"**{exc}**", *_votes(False)
    # The pair id stays: a second vote on it is refused as what it is, a second vote.
    a, b = shown["A"], shown["B"]
    return (pair, gr.update(label=f"A · {a}"), gr.update(label=f"B · {b}"),
            f"**A** was `{a}`{_measured(results.get(a))}, **B** was `{b}`{_measured(results.get(b))}. "
            "Thanks: your vote is stored.", *_votes(False))


INTRO = ("Which output is better, without knowing which configuration wrote it? Give a prompt for a **blind "
         "run**: two configurations are drawn at random and run without names, stages or timings (speed "
         "would name them); you vote, then see which was which and their measurements. Or compare two "
         "outputs of your last Arena run. Outputs with the same text are never paired. Votes feed the "
         "quality rating in the leaderboard (Bradley-Terry, as Chatbot Arena computes it); at most {n} votes "
         "per visitor per hour.")


def build_tab(app: ArenaApp, session_key: gr.State, gpu_queue: str) -> None:
    """Add the Blind check tab to the Blocks being built, and its /blind_run endpoint;
    `session_key` names this page's runs, `gpu_queue` is the measuring queue runs wait in.
    Every message of the tab is one line between the action buttons and the vote buttons."""
    lim = app.limits
    real_models = [c for c in model_choices(lim) if not c[1].startswith("synthetic:")]
    here = [r["config"] for r in registry.availability_table() if r["available"]]
    with gr.Tab("Blind check", elem_id="blind"):
        gr.Markdown(INTRO.format(n=lim.votes_per_hour))
        with gr.Row():
            prompt = gr.Textbox(label="Prompt for a blind run", lines=3, scale=3, elem_id="blind-prompt",
                                value="Explain in two sentences why the KV cache speeds up text generation.")
            with gr.Column(scale=2):
                model = gr.Dropdown(real_models, value=first_choice(real_models), label="Model",
                                    elem_id="blind-model")
                among = gr.Dropdown(here, value=[], multiselect=True, elem_id="blind-among",
                                    label="Draw from (empty: every configuration that can run here)")
                max_new = gr.Slider(1, min(256, lim.max_new_tokens), value=32, step=1, label="Max new tokens")
        with gr.Row():
            run_btn = gr.Button("Blind run", variant="primary", elem_id="blind-run")
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="blind-cancel")
            draw_btn = gr.Button("…or two outputs of my last Arena run", elem_id="blind-draw")
        message = gr.Markdown(elem_id="blind-status")
        with gr.Row(elem_id="blind-votes"):
            vote_btns = [gr.Button(label, elem_id=f"vote-{value}", interactive=False)
                         for label, value in CHOICES.items()]
        pair_id, measured = gr.State(""), gr.State({})  # measured: a blind run's results, shown after the vote
        with gr.Row():
            text_a = gr.Textbox(label="A", lines=6, interactive=False, elem_id="blind-a")
            text_b = gr.Textbox(label="B", lines=6, interactive=False, elem_id="blind-b")
        # Events and the endpoint are registered inside the tab: registered after it, they would
        # end Gradio's run of tabs and start a second tab bar below this one.
        _wire(app, session_key, gpu_queue, (run_btn, cancel_btn, draw_btn, vote_btns),
              (prompt, model, among, max_new), [pair_id, measured, text_a, text_b, message, *vote_btns])


def _wire(app: ArenaApp, session_key: gr.State, gpu_queue: str, buttons: tuple, form: tuple,
          outputs: list) -> None:
    """The tab's events and its /blind_run endpoint."""
    run_btn, cancel_btn, draw_btn, vote_btns = buttons
    pair_id, measured, text_a, text_b, message, *_ = outputs

    def draw_page(session_key):
        return draw_ui(app, session_key)

    @zerogpu.gpu
    def blind_run_page(session_key, prompt_v, model_v, among_v, max_new_v):
        yield from blind_run_ui(app, session_key, prompt_v, model_v, among_v or [], max_new_v)

    def vote_page(session_key, pair, results, choice, request: gr.Request):
        return vote_ui(app, session_key, pair, results, choice, request)

    def cancel_page(session_key):
        if app.cancel(session_key):
            gr.Info("Cancelling the blind run.")

    show = dict(fn=None, js=SHOW_MESSAGE, **READ_ONLY)
    draw_btn.click(draw_page, session_key, outputs, **READ_ONLY).then(**show)
    # A blind run measures: it waits in the one measuring queue, as an Arena run does.
    run_btn.click(blind_run_page, [session_key, *form], outputs, concurrency_id=gpu_queue, concurrency_limit=1,
                  api_visibility="private", show_progress="full", show_progress_on=[message]).then(**show)
    cancel_btn.click(cancel_page, session_key, None, **READ_ONLY)
    for btn in vote_btns:
        btn.click(vote_page, [session_key, pair_id, measured, btn], [pair_id, text_a, text_b, message, *vote_btns],
                  **READ_ONLY).then(**show)
    register_api(app, gpu_queue)


def register_api(app: ArenaApp, gpu_queue: str) -> None:
    """The /blind_run endpoint."""

    @zerogpu.gpu
    def blind_run(prompt: str, model: str = "default", among: str = "", max_new_tokens: int = 32,
                  request: gr.Request = None) -> Iterator[dict]:
        """A blind run: two configurations drawn at random (among: comma-separated names to draw
        from; empty: every one that can run here) run on the prompt; yields {finished, done, of,
        elapsed_s, pair_id, text_a, text_b, note} without names or timings. Vote on pair_id with
        /vote, which reveals the names; note says why there is no pair (the same text, say)."""
        try:
            for snap in stream_blind_run(app, session_of(request), prompt, model, among, max_new_tokens):
                snap.pop("results", None)
                yield snap
        except (RequestError, VoteError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    gr.api(blind_run, api_name="blind_run", concurrency_id=gpu_queue, concurrency_limit=1)
