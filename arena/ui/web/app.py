"""The Gradio Blocks app: Arena (side-by-side streaming run), Leaderboard, Environment.

Public API (gradio_client): `/run` streams a run's snapshots, `/leaderboard` reads stored
results. Nothing a client sends is written to the store except what the server measured.
Only measuring events (runs, sweeps) wait in the queue; everything that reads is answered at
once (queue=False), so visitors opening the page never fill the queue."""

from __future__ import annotations

import threading
import uuid
from typing import Any, Iterator

import gradio as gr

from arena.techniques import registry
from arena.core.env import collect_env
from arena.core.limits import ServerLimits
from arena.core.request import RunRequest
from arena.core.results import TABLE_COLUMNS
from arena.data.blind import VoteError
from arena.execute import prepare
from arena.models.dtypes import DTYPES
from arena.ui.web import (
    blind_tab,
    charts,
    environment,
    leaderboard,
    sweep_tab,
    workers_panel,
    zerogpu,
)
from arena.ui.web.panels import CSS, RunState, render
from arena.ui.web.state import GPU_QUEUE, ArenaApp, first_choice, model_choices

EXAMPLES = [
    "What is the capital of France?",
    "Explain in two sentences why the KV cache speeds up text generation.",
    "Write a haiku about GPUs.",
    "List three differences between fp16 and bf16.",
]
def new_session_key() -> tuple[str, str]:
    """Keys naming this page's jobs for Cancel (set when the page loads)."""
    key = uuid.uuid4().hex
    return key, key


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or uuid.uuid4().hex


def _client(request: gr.Request | None) -> str:
    """The visitor's address (the first X-Forwarded-For hop behind a Space's proxy)."""
    if request is None:
        return ""
    forwarded = (request.headers.get("x-forwarded-for") or "") if request.headers else ""
    return forwarded.split(",")[0].strip() or getattr(getattr(request, "client", None), "host", "") or ""


QUEUE_FULL = ("The arena is busy: {waiting} runs are already waiting, the most this server queues. "
              "Nothing was started; please try again in a few minutes.")


def bound_measuring_queue(demo: gr.Blocks, max_waiting: int) -> None:
    """Refuse a run or sweep when `max_waiting` of them already wait; nothing else counts.

    Gradio's own max_size counts every event, reads included (gradio_client sends even
    queue=False endpoints through the queue), and its refusal (HTTP 503) makes the page and
    gradio_client print their own fixed text. So the size check is ours, on the measuring group
    only, and the refusal is sent as a validation error (HTTP 422) on the event's first visible
    input: the page shows our words under that input, gradio_client raises them as a
    ValidationError."""
    queue = demo._queue
    queue.max_size = None
    push = queue.push

    async def push_measuring_bounded(body, request, username):
        fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
        if fn is not None and fn.concurrency_id == GPU_QUEUE:
            group = queue.event_queue_per_concurrency_id.get(GPU_QUEUE)
            waiting = len(group.queue) if group is not None else 0
            if waiting >= max_waiting:
                return False, _refusal(fn, QUEUE_FULL.format(waiting=waiting)), "validator_error"
        return await push(body=body, request=request, username=username)

    queue.push = push_measuring_bounded


def _refusal(fn: Any, message: str) -> list[dict[str, Any]]:
    inputs = list(getattr(fn, "inputs", None) or [])
    shown = next((i for i, c in enumerate(inputs) if not isinstance(c, gr.State)), 0)
    names = _parameter_names(fn)
    return [{"__type__": "validate", "is_valid": i != shown, "message": message if i == shown else "",
             "parameter_name": names[i] if i < len(names) else "queue"} for i in range(max(1, len(inputs)))]


def _parameter_names(fn: Any) -> list[str]:
    import inspect

    try:
        return [p for p in inspect.signature(fn.fn).parameters if p != "request"]
    except (TypeError, ValueError, AttributeError):
        return []


def _summary(state: RunState) -> str:
    if state.error:
        return f"**Run stopped:** {state.error}"
    counts: dict[str, int] = {}
    for p in state.panels.values():
        counts[p.status] = counts.get(p.status, 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in counts.items())
    head = "Finished" if state.finished else "Running"
    return f"**{head}** run `{state.run_id or '…'}` (baseline: {state.baseline or '–'}): {parts}"


def build(app: ArenaApp | None = None) -> gr.Blocks:
    app = app or ArenaApp()
    lim = app.limits
    plat_table = registry.availability_table()
    verdicts = {row["config"]: row for row in plat_table}
    temp = app.downloads
    persistence = environment.persistence_note(app.store.path)
    privacy = ("" if lim.share_outputs else " Prompts and generated text stay with the session that ran "
               "them: the leaderboard and the API show the measurements, the model and the settings.")

    # Gradio's own copies of files served (the CSV downloads) are removed after an hour.
    with gr.Blocks(title="Inference Arena", delete_cache=(600, 3600)) as demo:
        gr.Markdown(
            "# Inference Arena\nOne prompt through several GPU-inference configurations of one model, "
            "side by side: output, time to first token, decode tokens/s and peak memory. Every result "
            "is kept in the leaderboard. How each number is measured: see the README.\n\n"
            f"{persistence}{privacy}", elem_id="notice"
        )
        with gr.Tab("Arena"):
            with gr.Row():
                with gr.Column(scale=3):
                    prompt = gr.Textbox(label="Prompt", lines=3, value=EXAMPLES[0], elem_id="prompt")
                    gr.Examples(EXAMPLES, inputs=prompt, label="Example prompts")
                with gr.Column(scale=2):
                    model = gr.Dropdown(model_choices(lim), value=first_choice(model_choices(lim)), label="Model",
                                        elem_id="model",
                                        info="Synthetic architectures have random weights: for speed "
                                             "and memory only, their text is noise.")
                    hub_id = gr.Textbox(label="…or a Hugging Face model id", placeholder="org/name",
                                        info="Overrides the model above when filled.")
            # Identifies this page for Cancel (a function with *args cannot receive gr.Request).
            session_key = gr.State("")
            boxes: list[gr.Checkbox] = []
            with gr.Accordion("Configurations", open=True):
                with gr.Row():
                    for family in registry.FAMILIES:
                        with gr.Column(min_width=220):
                            gr.Markdown(f"**{family}**")
                            for cfg in registry.REGISTRY.values():
                                if cfg.family != family:
                                    continue
                                row = verdicts[cfg.name]
                                boxes.append(gr.Checkbox(
                                    value=cfg.name in ("eager", "sdpa") and bool(row["available"]),
                                    label=cfg.name, interactive=bool(row["available"]),
                                    info=(cfg.label if row["available"] else f"unavailable: {row['reason']}"),
                                    elem_id=f"cfg-{cfg.name.replace('+', '-')}", elem_classes="arena-cfg",
                                ))
            with gr.Accordion("Generation settings", open=False):
                with gr.Row():
                    max_new = gr.Slider(1, min(1024, lim.max_new_tokens), value=32, step=1, label="Max new tokens")
                    batch = gr.Slider(1, min(64, lim.max_batch), value=1, step=1, label="Batch size")
                    repeats = gr.Slider(1, min(10, lim.max_repeats), value=3, step=1,
                                        label="Timed repeats (median kept)")
                    prompt_tokens = gr.Slider(8, min(4096, lim.max_prompt_tokens or 4096), value=128, step=8,
                                              label="Prompt tokens (synthetic models)")
                with gr.Row():
                    dtype = gr.Radio(list(DTYPES), value="auto", label="dtype",
                                     info="auto: bf16 (or fp16) on a GPU, fp32 on CPU")
                    decoding = gr.Radio(["greedy", "sampling"], value="greedy", label="Decoding")
                    seed = gr.Number(0, precision=0, label="Seed")
                    temperature = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="Temperature")
                    top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top-p")
                with gr.Row():
                    gpus = gr.Textbox(label="GPUs", placeholder="0,1", elem_id="gpus",
                                      info="GPU indices to use; empty: the default device. Several GPUs split "
                                           "PyTorch configurations with device_map='auto'.")
                    max_memory = gr.Textbox(label="Max memory per device", placeholder="0=20GiB,1=20GiB",
                                            elem_id="max-memory",
                                            info="A budget per device (GiB/MiB/GB/MB, cpu=SIZE): the model is "
                                                 "split within it; ONNX Runtime and CUDA-graph configurations "
                                                 "cannot be split.")
            with gr.Row():
                run_btn = gr.Button("Run", variant="primary", elem_id="run")
                cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel")
            summary = gr.Markdown(elem_id="summary")
            panels = gr.HTML(render(RunState([])), elem_id="panels")
            run_table = gr.Dataframe(leaderboard.columns_frame([], TABLE_COLUMNS), label="Results of this run",
                                     elem_id="run-table", interactive=False)
            with gr.Row():
                speed_plot = gr.Plot(label="Speed and memory", elem_id="speed-plot")
                quality_plot = gr.Plot(label="Speedup and agreement", elem_id="quality-plot")
        blind_tab.build_tab(app, session_key, GPU_QUEUE)

        with gr.Tab("Leaderboard") as lb_tab:
            # The filters in one row that wraps, the page controls in the next (one row held
            # eight fixed-width blocks and scrolled sideways).
            with gr.Row(equal_height=True, elem_id="lb-filters"):
                filters = [gr.Dropdown(list(leaderboard.MODES) if key == "mode" else [],
                                       value=["arena"] if key == "mode" else [],
                                       multiselect=True, label=label, elem_id=f"lb-{key}", min_width=200)
                           for key, label in zip(leaderboard.FILTERS, leaderboard.FILTER_LABELS)]
            with gr.Row():
                include_failed = gr.Checkbox(False, label="include failed and unavailable")
                page = gr.Number(1, precision=0, minimum=1, label="page", elem_id="lb-page", min_width=80)
                refresh_btn = gr.Button("Refresh", elem_id="lb-refresh", scale=0, min_width=120)
            lb_caption = gr.Markdown(elem_id="lb-caption")
            # Plain HTML (leaderboard.html_table): a Dataframe in a tab with a select listener took
            # 5-20 s of browser script per update (Gradio 6.17); this tab must hold none.
            lb_table = gr.HTML(leaderboard.results_html(leaderboard.empty_table()), elem_id="lb-table",
                               label="Stored results, fastest decode first (click a heading to sort this page)",
                               show_label=True, container=True, js_on_load=leaderboard.SORT_JS,
                               css_template=leaderboard.TABLE_CSS)
            with gr.Row():
                csv_btn = gr.Button(f"Make CSV (the newest {leaderboard.CSV_ROWS:,} matching results)",
                                    elem_id="lb-csv", scale=0)
                csv_file = gr.File(label="CSV", elem_id="lb-csv-file", interactive=False, height=90)
            bubble_plot = gr.Plot(label="Decode speed against peak memory", elem_id="lb-bubbles")
            speedup_plot = gr.Plot(label="Speedup versus each run's baseline", elem_id="lb-speedups")
            gr.Markdown("### Quality from blind votes\nRating per configuration within each model "
                        "(Bradley-Terry on the Elo scale, mean 1000; 95% bootstrap interval), beside "
                        "the configuration's median decode speed and peak memory for that model.")
            quality_table = gr.HTML(leaderboard.html_table(leaderboard.quality_table(leaderboard.empty_quality()),
                                                           "No blind votes yet."),
                                    elem_id="lb-quality", js_on_load=leaderboard.SORT_JS,
                                    css_template=leaderboard.TABLE_CSS)
            quality_plot_lb = gr.Plot(label="Quality against speed", elem_id="lb-quality-plot")

        sweep_key = sweep_tab.build_tab(app, GPU_QUEUE)

        with gr.Tab("Environment") as env_tab:
            env = collect_env()
            gr.Markdown(environment.limits_note(lim) + "\n\n" + persistence, elem_id="env-limits-note")
            with gr.Row():
                gr.Dataframe(environment.platform_table(env), label="Platform", interactive=False, wrap=True)
                gr.Dataframe(environment.versions_table(env), label="Library versions", interactive=False)
            gr.Dataframe(environment.limits_table(lim), label=f"Limits of this server ({lim.preset} preset, "
                         "then any ARENA_* variable set)", interactive=False, elem_id="env-limits")
            gr.Dataframe(
                value=[[r["config"], r["family"], "yes" if r["available"] else "no", r["reason"], r["description"]]
                       for r in plat_table],
                headers=["configuration", "family", "available", "reason", "what it does"],
                label="Configurations here", interactive=False, wrap=True)
            warm_table, warm_rows = workers_panel.build()
        env_tab.select(warm_rows, None, warm_table, api_visibility="private", queue=False)

        # ---- events
        def ui_request(prompt_v, model_v, hub_v, max_new_v, batch_v, repeats_v, ptok_v, dtype_v, decoding_v,
                       seed_v, temp_v, top_p_v, gpus_v, max_memory_v, *box_values) -> RunRequest:
            chosen = [b.label for b, on in zip(boxes, box_values) if on]
            return RunRequest(
                model=(hub_v or "").strip() or model_v, prompt=prompt_v or "", configs=chosen,
                max_new_tokens=max_new_v, batch_size=batch_v, repeats=repeats_v, prompt_tokens=ptok_v,
                dtype=dtype_v, do_sample=decoding_v == "sampling", seed=seed_v if seed_v is not None else 0,
                temperature=temp_v, top_p=top_p_v, gpus=(gpus_v or "").strip() or None,
                max_memory=(max_memory_v or "").strip() or None,
            )

        @zerogpu.gpu
        def run_ui(session_key, *values):
            req = ui_request(*values)
            if not req.configs:
                raise gr.Error("pick at least one configuration", print_exception=False)
            for state, changed in app.stream(req, session_key):
                html = render(state)
                if changed:
                    yield (html, leaderboard.columns_frame(state.results, TABLE_COLUMNS), charts.run_speed_memory(state.results),
                           charts.run_speedup_quality(state.results, state.baseline), _summary(state))
                else:
                    yield html, gr.skip(), gr.skip(), gr.skip(), _summary(state)

        def cancel_ui(session_key):
            if app.cancel(session_key):
                gr.Info("Cancelling: the current configuration is stopped; measured results are kept.")

        def refresh(*values):
            *selected, failed, page_v = values
            view = leaderboard.view(app.store, dict(zip(leaderboard.FILTERS, selected)), failed, page_v or 1,
                                    lim.share_outputs)
            updates = [gr.update(choices=view.choices[k]) for k in leaderboard.FILTERS]
            return (*updates, view.page, view.caption(), leaderboard.results_html(view.table),
                    charts.leaderboard_bubbles(view.sample), charts.leaderboard_speedups(view.sample),
                    leaderboard.html_table(leaderboard.quality_table(view.quality), "No blind votes yet."),
                    charts.quality_vs_speed(view.quality))

        inputs = [session_key, prompt, model, hub_id, max_new, batch, repeats, prompt_tokens, dtype, decoding, seed,
                  temperature, top_p, gpus, max_memory, *boxes]
        lb_inputs = [*filters, include_failed, page]
        lb_outputs = [*filters, page, lb_caption, lb_table, bubble_plot, speedup_plot, quality_table,
                      quality_plot_lb]

        def make_csv(*values):
            *selected, failed, _ = values
            frame = leaderboard.csv_frame(app.store, dict(zip(leaderboard.FILTERS, selected)), failed,
                                          lim.share_outputs)
            return str(leaderboard.to_csv(frame, temp.path("leaderboard.csv")))

        # Only measuring events queue (one slot, GPU_QUEUE); the queue position shows on the summary.
        run_event = run_btn.click(
            run_ui, inputs, [panels, run_table, speed_plot, quality_plot, summary],
            concurrency_id=GPU_QUEUE, concurrency_limit=1, api_visibility="private", show_progress="full",
            show_progress_on=[summary],
        )
        read_only = dict(queue=False, api_visibility="private")
        cancel_btn.click(cancel_ui, session_key, None, **read_only)
        # Drawn when the tab is opened (so a page that never opens it costs no query) and on
        # its own controls: not while hidden, where a Gradio output never shown kept a stale
        # loading status (a spinner for good) when its tab was first opened.
        for trigger in (lb_tab.select, refresh_btn.click, include_failed.change, page.submit):
            trigger(refresh, lb_inputs, lb_outputs, **read_only)
        run_event.then(warm_rows, None, warm_table, **read_only)
        for f in filters:
            f.input(refresh, lb_inputs, lb_outputs, **read_only)
        csv_btn.click(make_csv, lb_inputs, csv_file, **read_only)
        demo.load(new_session_key, None, [session_key, sweep_key], **read_only)

        # ---- public API
        @zerogpu.gpu
        def run(prompt: str, model: str = "default", configs: str = "eager,sdpa", max_new_tokens: int = 32,
                batch_size: int = 1, dtype: str = "auto", repeats: int = 3, do_sample: bool = False,
                seed: int = 0, temperature: float = 1.0, top_p: float = 1.0, prompt_tokens: int = 128,
                gpus: str = "", max_memory: str = "", request: gr.Request = None) -> Iterator[dict]:
            """Run the arena: yields snapshots {run_id, baseline, finished, panels, results}. gpus
            ("0,1") and max_memory ("0=20GiB,1=20GiB") split PyTorch configurations over devices."""
            req = RunRequest(model=model, prompt=prompt, configs=configs, max_new_tokens=max_new_tokens,
                             batch_size=batch_size, dtype=dtype, repeats=repeats, do_sample=do_sample,
                             seed=seed, temperature=temperature, top_p=top_p, prompt_tokens=prompt_tokens,
                             gpus=gpus or None, max_memory=max_memory or None)
            for state, _ in app.stream(req, _session(request)):
                yield state.snapshot()

        def leaderboard_api(model: str = "", hardware: str = "", family: str = "", dtype: str = "",
                            include_failed: bool = False, mode: str = "arena", page: int = 1,
                            page_size: int = 1000) -> list[dict]:
            """Stored results, fastest decode first, one page (page_size at most 1000) at a time.
            Comma-separated values filter each field (empty: all); mode is "arena" for runs,
            "sweep-forward" / "sweep-generate" / "sweep-generate-padded" for sweep
            points. On a public server prompts and
            generated text are left out."""
            selected = leaderboard.selection(dict(zip(leaderboard.FILTERS, (mode, model, hardware, family, dtype))))
            size = min(max(1, int(page_size or 1000)), 1000)
            frame = leaderboard.page_rows(app.store, selected, bool(include_failed), int(page or 1), lim.share_outputs,
                                          page_size=size)
            return leaderboard.public_rows(frame)

        def blind_pair(request: gr.Request = None) -> dict:
            """Two outputs of this session's last run as A and B, names hidden: {pair_id, text_a, text_b}."""
            try:
                return app.blind.draw(_session(request)).public()
            except VoteError as exc:
                raise gr.Error(str(exc), print_exception=False) from None

        def vote(pair_id: str, choice: str, request: gr.Request = None) -> dict:
            """Vote on a pair shown to this session ("A is better", "B is better", "Tie", "Both are
            bad"); returns which configuration was A and which B."""
            try:
                return app.blind.vote(_session(request), pair_id, choice, client=_client(request))
            except VoteError as exc:
                raise gr.Error(str(exc), print_exception=False) from None

        def ratings() -> list[dict]:
            """Blind-vote ratings per model and configuration, with speed and memory."""
            return leaderboard.public_rows(leaderboard.quality_frame(app.store))

        def cancel(request: gr.Request = None) -> bool:
            """Stop this session's running /run between tokens (the page's Cancel): the current
            configuration ends as cancelled, everything measured before it is kept. False when
            this session has no run in progress."""
            return app.cancel(_session(request))

        gr.api(run, api_name="run", concurrency_id=GPU_QUEUE, concurrency_limit=1)
        gr.api(cancel, api_name="cancel", queue=False)
        gr.api(blind_pair, api_name="blind_pair", queue=False)
        gr.api(vote, api_name="vote", queue=False)
        gr.api(ratings, api_name="ratings", queue=False)
        gr.api(leaderboard_api, api_name="leaderboard", queue=False)

        def workers() -> list[dict]:
            """The warm workers: model, configuration, memory held (MB), idle seconds, runs, pid, and
            any web library found imported in the worker (none expected)."""
            return workers_panel.listing()

        gr.api(workers, api_name="workers", queue=False)
    return demo


def launch(**kwargs: Any) -> None:
    # Public limits unless only this machine can reach the server (launch's server_name, else
    # GRADIO_SERVER_NAME) or ARENA_LIMITS=local says otherwise.
    app = ArenaApp(limits=ServerLimits.from_env(server_name=kwargs.get("server_name")))
    threading.Thread(target=prepare.preload, name="arena-preload", daemon=True).start()
    if app.isolation == "process":
        from arena.execute.pool import shared_pool

        shared_pool(app.limits).prestart()  # a spare worker, imports done, for the first run
    demo = build(app)
    demo.queue()
    # Beyond max_queue waiting runs and sweeps (reads never count) a new one is refused at once.
    bound_measuring_queue(demo, app.limits.max_queue)
    demo.launch(css=CSS, theme=gr.themes.Soft(), **kwargs)
