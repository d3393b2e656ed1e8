"""The Gradio Blocks app: one builder per tab (Arena, Blind check, Leaderboard, Sweep,
Environment), the public API (arena/ui/web/api.py), and the launch.

Only measuring events (runs, sweeps) wait in the queue; everything that reads is answered at
once (queue=False), so visitors opening the page never fill the queue."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from typing import Any

import gradio as gr

from arena.core.env import collect_env
from arena.core.limits import ServerLimits
from arena.execute import prepare
from arena.ui.web import api, arena_tab, blind_tab, environment, frontend_fixes, leaderboard_tab, sweep_tab
from arena.ui.web.panels import CSS
from arena.ui.web.queue_bound import bound_measuring_queue
from arena.ui.web.state import GPU_QUEUE, ArenaApp

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
    env = collect_env()
    with gr.Blocks(title="Inference Arena", delete_cache=(600, 3600), analytics_enabled=analytics_enabled()) as demo:
        gr.Markdown(
            "# Inference Arena\nOne prompt through several GPU-inference configurations of one model, "
            "side by side: output, time to first token, decode tokens/s and peak memory. Every result "
            "is kept in the leaderboard. [How each number is measured](#measuring), and when a row is "
            f"flagged unstable or over its limit.\n\n{environment.header_note(env)}\n\n"
            f"{persistence}{privacy}", elem_id="notice"
        )
        with gr.Accordion("How each number is measured", open=False, elem_id="measuring"):
            gr.Markdown(environment.measuring_text())
        arena = arena_tab.build_tab(app)
        blind_tab.build_tab(app, arena.session_key, GPU_QUEUE)
        leaderboard_tab.build_tab(app)
        sweep_key = sweep_tab.build_tab(app, GPU_QUEUE)
        warm_table, warm_rows = environment.build_tab(lim, persistence, analytics_enabled())

        # ---- what follows a run, and the page's load
        arena.run_event.then(warm_rows, None, warm_table, **READ_ONLY)
        demo.load(new_session_key, None, [arena.session_key, sweep_key], **READ_ONLY)
        api.register(app)
    frontend_fixes.mount_every_tab(demo)
    frontend_fixes.reread_rows(demo)
    return demo


def analytics_enabled() -> bool:
    """Gradio's usage statistics are off unless GRADIO_ANALYTICS_ENABLED asks for them: a public
    server that keeps prompts private, or an offline GPU host, does not phone home by default."""
    return os.environ.get("GRADIO_ANALYTICS_ENABLED", "").strip().lower() in ("1", "true", "yes")


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # launch() closes the server and the pool on this, as on Ctrl-C


def launch(**kwargs: Any) -> None:
    # Public limits unless only this machine can reach the server (launch's server_name, else
    # GRADIO_SERVER_NAME) or ARENA_LIMITS=local says otherwise.
    app = ArenaApp(limits=ServerLimits.from_env(server_name=kwargs.get("server_name")))
    threading.Thread(target=prepare.preload, name="arena-preload", daemon=True).start()
    pool = None
    if app.isolation == "process":
        from arena.execute.pool import shared_pool

        pool = shared_pool(app.limits)
        pool.prestart()  # a spare worker, imports done, for the first run
    demo = build(app)
    demo.queue()
    # Beyond max_queue waiting runs and sweeps (reads never count) a new one is refused at once.
    bound_measuring_queue(demo, app.limits.max_queue)
    # A container stop (SIGTERM) ends like Ctrl-C: the server closes and the workers' queues and
    # locks are released, instead of the process dying with them ("leaked semaphore objects").
    signal.signal(signal.SIGTERM, _stop)
    try:
        # Gradio's own start lines ("set `share=True` in `launch()`") speak to a developer of the
        # app, not to its user: quiet, and our one line instead.
        demo.launch(css=CSS, theme=gr.themes.Soft(), head=frontend_fixes.HEAD, quiet=True,
                    prevent_thread_lock=True, **kwargs)
        print(f"Inference Arena: the page is at {demo.local_url}"
              + (f" and {demo.share_url}" if demo.share_url else "") + " (Ctrl+C stops it)", flush=True)
        while demo.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("Inference Arena: stopping", flush=True)
    finally:
        demo.close(verbose=False)
        if pool is not None:
            pool.close()
