"""The Arena tab: a prompt, a model, the configurations by family and the generation settings;
Run streams each configuration into its card, then the run's table and charts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from arena.core import registry
from arena.core.results import TABLE_COLUMNS
from arena.models.dtypes import DTYPES
from arena.ui.forms import DEFAULTS, request_from
from arena.ui.web import charts, zerogpu
from arena.ui.web.leaderboard import columns_frame
from arena.ui.web.panels import RunState, render
from arena.ui.web.state import GPU_QUEUE, ArenaApp, first_choice, model_choices

EXAMPLES = [
    "What is the capital of France?",
    "Explain in two sentences why the KV cache speeds up text generation.",
    "Write a haiku about GPUs.",
    "List three differences between fp16 and bf16.",
]


@dataclass
class ArenaTab:
    session_key: gr.State  # names this page's jobs for Cancel (set by the page's load event)
    run_event: Any  # the Run click's event: what follows a run chains on it


def summary(state: RunState) -> str:
    if state.error:
        return f"**Run stopped:** {state.error}"
    counts: dict[str, int] = {}
    for p in state.panels.values():
        counts[p.status] = counts.get(p.status, 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in counts.items())
    head = "Finished" if state.finished else "Running"
    return f"**{head}** run `{state.run_id or '…'}` (baseline: {state.baseline or '–'}): {parts}"


def build_tab(app: ArenaApp) -> ArenaTab:
    """Add the Arena tab to the Blocks being built."""
    lim = app.limits
    verdicts = {row["config"]: row for row in registry.availability_table()}
    with gr.Tab("Arena"):
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(label="Prompt", lines=3, value=EXAMPLES[0], elem_id="prompt")
                gr.Examples(EXAMPLES, inputs=prompt, label="Example prompts")
            with gr.Column(scale=2):
                choices = model_choices(lim)
                model = gr.Dropdown(choices, value=first_choice(choices), label="Model", elem_id="model",
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
                                value=cfg.name in DEFAULTS.configs and bool(row["available"]),
                                label=cfg.name, interactive=bool(row["available"]),
                                info=(cfg.label if row["available"] else f"unavailable: {row['reason']}"),
                                elem_id=f"cfg-{cfg.name.replace('+', '-')}", elem_classes="arena-cfg",
                            ))
        # The request's fields, by name, in the order of the event's inputs.
        with gr.Accordion("Generation settings", open=False):
            with gr.Row():
                settings = {
                    "max_new_tokens": gr.Slider(1, min(1024, lim.max_new_tokens), value=DEFAULTS.max_new_tokens,
                                                step=1, label="Max new tokens"),
                    "batch_size": gr.Slider(1, min(64, lim.max_batch), value=DEFAULTS.batch_size, step=1,
                                            label="Batch size"),
                    "repeats": gr.Slider(1, min(10, lim.max_repeats), value=DEFAULTS.repeats, step=1,
                                         label="Timed repeats (median kept)"),
                    "prompt_tokens": gr.Slider(8, min(4096, lim.max_prompt_tokens or 4096),
                                               value=DEFAULTS.prompt_tokens, step=8,
                                               label="Prompt tokens (synthetic models)"),
                }
            with gr.Row():
                settings["dtype"] = gr.Radio(list(DTYPES), value=DEFAULTS.dtype, label="dtype",
                                             info="auto: bf16 (or fp16) on a GPU, fp32 on CPU")
                decoding = gr.Radio(["greedy", "sampling"], value="sampling" if DEFAULTS.do_sample else "greedy",
                                    label="Decoding")
                settings["seed"] = gr.Number(DEFAULTS.seed, precision=0, label="Seed")
                settings["temperature"] = gr.Slider(0.05, 2.0, value=DEFAULTS.temperature, step=0.05,
                                                    label="Temperature")
                settings["top_p"] = gr.Slider(0.05, 1.0, value=DEFAULTS.top_p, step=0.05, label="top-p")
            with gr.Row():
                settings["gpus"] = gr.Textbox(
                    label="GPUs", placeholder="0,1", elem_id="gpus",
                    info="GPU indices to use; empty: the default device. Several GPUs split "
                         "PyTorch configurations with device_map='auto'.")
                settings["max_memory"] = gr.Textbox(
                    label="Max memory per device", placeholder="0=20GiB,1=20GiB", elem_id="max-memory",
                    info="A budget per device (GiB/MiB/GB/MB, cpu=SIZE): the model is split within it; "
                         "ONNX Runtime and CUDA-graph configurations cannot be split.")
        with gr.Row():
            run_btn = gr.Button("Run", variant="primary", elem_id="run")
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel")
        summary_md = gr.Markdown(elem_id="summary")
        panels = gr.HTML(render(RunState([])), elem_id="panels")
        run_table = gr.Dataframe(columns_frame([], TABLE_COLUMNS), label="Results of this run",
                                 elem_id="run-table", interactive=False)
        with gr.Row():
            speed_plot = gr.Plot(label="Speed and memory", elem_id="speed-plot")
            quality_plot = gr.Plot(label="Speedup and agreement", elem_id="quality-plot")

    # The prompt first: a refusal by the queue (queue_bound) is shown under the first input.
    form = {"prompt": prompt, "model": model, "hub_id": hub_id, "decoding": decoding, **settings}

    @zerogpu.gpu
    def run_ui(session_key, *values):
        named = dict(zip(form, values))
        chosen = [b.label for b, on in zip(boxes, values[len(form):]) if on]
        if not chosen:
            raise gr.Error("pick at least one configuration", print_exception=False)
        hub = (named.pop("hub_id") or "").strip()  # overrides the picker when filled
        named["model"] = hub or named["model"]
        named["prompt"] = named["prompt"] or ""
        named["do_sample"] = named.pop("decoding") == "sampling"
        req = request_from(**named, configs=chosen)
        for state, changed in app.stream(req, session_key):
            html = render(state)
            if changed:
                yield (html, columns_frame(state.results, TABLE_COLUMNS), charts.run_speed_memory(state.results),
                       charts.run_speedup_quality(state.results, state.baseline), summary(state))
            else:
                yield html, gr.skip(), gr.skip(), gr.skip(), summary(state)

    def cancel_ui(session_key):
        if app.cancel(session_key):
            gr.Info("Cancelling: the current configuration is stopped; measured results are kept.")

    # Only measuring events queue (one slot, GPU_QUEUE); the queue position shows on the summary.
    run_event = run_btn.click(
        run_ui, [session_key, *form.values(), *boxes], [panels, run_table, speed_plot, quality_plot, summary_md],
        concurrency_id=GPU_QUEUE, concurrency_limit=1, api_visibility="private", show_progress="full",
        show_progress_on=[summary_md],
    )
    cancel_btn.click(cancel_ui, session_key, None, queue=False, api_visibility="private")
    return ArenaTab(session_key, run_event)
