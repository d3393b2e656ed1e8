"""The Gradio Blocks app: one builder per tab (Arena, Blind check, Leaderboard, Sweep,
Environment), the public API (arena/ui/web/api.py), and the launch.

Only measuring events (runs, sweeps) wait in the queue; everything that reads is answered at
once (queue=False), so visitors opening the page never fill the queue."""

from __future__ import annotations

import os
import signal
import uuid
import warnings
from typing import Any

import gradio as gr

from arena.core.limits import ServerLimits
from arena.data.blind import CHOICES, VoteError
from arena.ui.web import api, arena_tab, environment, frontend_fixes, leaderboard_tab, sweep_tab
from arena.ui.web.panels import CSS
from arena.ui.web.queue_bound import bound_measuring_queue
from arena.ui.web.state import GPU_QUEUE, ArenaApp, client_of

READ_ONLY = dict(queue=False, api_visibility="private")


def new_session_key() -> tuple[str, str]:
    """Keys naming this page's jobs for Cancel (set when the page loads)."""
    key = uuid.uuid4().hex
    return key, key


def build(app: ArenaApp | None = None) -> gr.Blocks:
    app = app or ArenaApp()
    lim = app.limits
    persistence = environment.persistence_note(app.store.path)
    privacy = ("" if lim.share_outputs else " Prompts and generated text stay with the session that ran "
               "them: the leaderboard and the API show the measurements, the model and the settings.")

    # Gradio's own copies of files served (the CSV downloads) are removed after an hour.
    with gr.Blocks(title="Inference Arena", delete_cache=(600, 3600), analytics_enabled=analytics_enabled()) as demo:
        gr.Markdown(
            "# Inference Arena\nOne prompt through several GPU-inference configurations of one model, "
            "side by side: output, time to first token, decode tokens/s and peak memory. Every result "
            "is kept in the leaderboard. How each number is measured: see the README.\n\n"
            f"{persistence}{privacy}", elem_id="notice"
        )
        arena = arena_tab.build_tab(app)
        session_key = arena.session_key

        # Its own tab: the named cards and table of the Arena tab are out of sight while voting.
        with gr.Tab("Blind check", elem_id="blind"):
            gr.Markdown("Two configurations' outputs of your last run, as A and B in random order, "
                        "without their names. Vote first; the names are shown after. Outputs with the "
                        "same text are never paired. Votes feed the quality rating in the leaderboard "
                        f"(Bradley-Terry, as Chatbot Arena computes it); at most {lim.votes_per_hour} "
                        "votes per visitor per hour.")
            blind_btn = gr.Button("Show two outputs", elem_id="blind-draw")
            pair_id = gr.State("")
            with gr.Row():
                text_a = gr.Textbox(label="A", lines=6, interactive=False, elem_id="blind-a")
                text_b = gr.Textbox(label="B", lines=6, interactive=False, elem_id="blind-b")
            with gr.Row():
                vote_btns = [gr.Button(label, elem_id=f"vote-{value}") for label, value in CHOICES.items()]
            reveal = gr.Markdown(elem_id="blind-reveal")

        board = leaderboard_tab.build_tab(app)
        sweep_key = sweep_tab.build_tab(app, GPU_QUEUE)
        warm_table, warm_rows = environment.build_tab(lim, persistence, analytics_enabled())

        # ---- what follows a run, and the page's load
        board.refresh_after(arena.run_event)
        arena.run_event.then(warm_rows, None, warm_table, **READ_ONLY)
        demo.load(board.refresh, board.inputs, board.outputs, **READ_ONLY)
        demo.load(new_session_key, None, [session_key, sweep_key], **READ_ONLY)

        # ---- the blind check's events
        def draw_ui(session_key):
            try:
                pair = app.blind.draw(session_key)
            except VoteError as exc:  # said where the pair would be, not as an error toast
                return "", "", "", f"**{exc}**"
            return pair.pair_id, pair.text_a, pair.text_b, "Which is better?"

        def vote_ui(session_key, pair, choice, request: gr.Request):
            try:
                shown = app.blind.vote(session_key, pair, choice, client=client_of(request))
            except VoteError as exc:
                return pair, f"**{exc}**"
            return "", f"**A** was `{shown['A']}`, **B** was `{shown['B']}`. Thanks: your vote is stored."

        blind_btn.click(draw_ui, session_key, [pair_id, text_a, text_b, reveal], **READ_ONLY)
        for btn in vote_btns:
            board.refresh_after(btn.click(vote_ui, [session_key, pair_id, btn], [pair_id, reveal], **READ_ONLY))

        api.register(app)
    frontend_fixes.mount_every_tab(demo)
    frontend_fixes.reread_rows(demo)
    return demo


def analytics_enabled() -> bool:
    """Gradio's usage statistics are off unless GRADIO_ANALYTICS_ENABLED asks for them: a public
    server that keeps prompts private, or an offline GPU host, does not phone home by default."""
    return os.environ.get("GRADIO_ANALYTICS_ENABLED", "").strip().lower() in ("1", "true", "yes")


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # Gradio closes its server on this, as on Ctrl-C


def launch(**kwargs: Any) -> None:
    # Public limits unless only this machine can reach the server (launch's server_name, else
    # GRADIO_SERVER_NAME) or ARENA_LIMITS=local says otherwise.
    app = ArenaApp(limits=ServerLimits.from_env(server_name=kwargs.get("server_name")))
    pool = None
    if app.isolation == "process":
        from arena.execute.pool import shared_pool

        pool = shared_pool(app.limits)
        pool.prestart()  # a spare worker, imports done, for the first run
    demo = build(app)
    demo.queue()
    # Beyond max_queue waiting runs and sweeps (reads never count) a new one is refused at once.
    bound_measuring_queue(demo, app.limits.max_queue)
    # Gradio 6.17 reads Starlette's renamed 422 constant on each queue join; the notice is not ours.
    warnings.filterwarnings("ignore", message=".*HTTP_422_UNPROCESSABLE_ENTITY.*")
    # A container stop (SIGTERM) ends like Ctrl-C: the server closes and the workers' queues and
    # locks are released, instead of the process dying with them ("leaked semaphore objects").
    signal.signal(signal.SIGTERM, _stop)
    try:
        demo.launch(css=CSS, theme=gr.themes.Soft(), head=frontend_fixes.HEAD, **kwargs)
    finally:
        if pool is not None:
            pool.close()
