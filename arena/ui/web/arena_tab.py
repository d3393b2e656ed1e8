"""The Arena tab: a prompt with Run beside it, a model, the configurations by family (collapsed,
each with its count) and the generation settings; Run streams each configuration into its
card, then the run's table and charts. A request the server refuses is said in place of the
run (no error toast), and the previous run's cards and table are cleared with it."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from arena.techniques import registry
from arena.core import prompts
from arena.core.limits import ServerLimits
from arena.core.request import RequestError
from arena.models.dtypes import DTYPES
from arena.ui.forms import DEFAULTS, request_from
from arena.ui.web import charts, zerogpu
from arena.ui.web.panels import RunState, render, run_table
from arena.ui.web.state import GPU_QUEUE, ArenaApp, first_choice, model_choices

# label -> prompt: free-form questions, and requests about a pasted passage (prompt lookup's case)
EXAMPLES = {**{text: text for text in prompts.FREE_FORM}, **prompts.ABOUT_A_PASSAGE}


@dataclass
class ArenaTab:
    session_key: gr.State  # names this page's jobs for Cancel (set by the page's load event)
    run_event: Any  # the Run click's event: what follows a run chains on it


def summary(state: RunState) -> str:
    if state.error:
        return f"**Run stopped:** {state.error}"
    if state.note and not state.run_id:
        return f"**Preparing:** {state.note}"
    counts: dict[str, int] = {}
    for p in state.panels.values():
        counts[p.status] = counts.get(p.status, 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in counts.items())
    head = "Finished" if state.finished else "Running"
    if state.finished and counts.get("cancelled"):
        kept = [p.config for p in state.panels.values() if p.status == "done"]
        parts = (f"kept {len(kept)} measured configuration{'s' if len(kept) != 1 else ''} "
                 f"({', '.join(kept) or 'none'}) in the table and charts; {parts}")
        head = "Cancelled"
    return f"**{head}** run `{state.run_id or '…'}` (baseline: {state.baseline or '–'}): {parts}"


def family_label(family: str, chosen: int, total: int, unavailable: int) -> str:
    """An accordion's heading: what is picked in it, readable while it is collapsed."""
    text = f"{family} · {chosen} of {total} selected"
    return text + (f" · {unavailable} unavailable here" if unavailable else "")


def capped(natural_max: int, limit: int | None, lim: ServerLimits, what: str) -> tuple[int, str | None]:
    """A slider's top: its natural range, or the server's limit where that is lower, which the
    slider then says (a value typed above it is set to it)."""
    top = min(natural_max, limit) if limit else natural_max
    if top >= natural_max:
        return top, None
    lift = "; ARENA_LIMITS=local lifts it on your own machine" if lim.preset == "public" else ""
    return top, f"At most {top:,} {what} on this server: its {lim.preset} limit{lift}."


# When a run starts, its cards come into view (they sit under the family panels).
# Some room above the summary: it grows once the run answers, and the progress bar sits on it.
SHOW_CARDS = """() => {
  const el = document.getElementById('summary');
  if (el) window.scrollTo({top: Math.max(0, el.getBoundingClientRect().top + window.scrollY - 150)});
}"""


def _families(verdicts: dict[str, dict]) -> tuple[list[gr.Checkbox], list[tuple[str, gr.Accordion, list, int]]]:
    """One collapsed accordion per family, a checkbox per configuration; an unavailable one
    greyed, its reason as its info."""
    boxes: list[gr.Checkbox] = []
    families: list[tuple[str, gr.Accordion, list[gr.Checkbox], int]] = []
    with gr.Row(elem_id="families"):
        for family in registry.FAMILIES:
            members = [c for c in registry.REGISTRY.values() if c.family == family]
            if not members:
                continue
            unavailable = sum(not verdicts[c.name]["available"] for c in members)
            picked = [c.name in DEFAULTS.configs and bool(verdicts[c.name]["available"]) for c in members]
            with gr.Column(min_width=300):
                with gr.Accordion(family_label(family, sum(picked), len(members), unavailable), open=False,
                                  elem_id=f"family-{family}") as accordion:
                    group = []
                    for cfg, on in zip(members, picked):
                        ok = bool(verdicts[cfg.name]["available"])
                        group.append(gr.Checkbox(
                            value=on, label=cfg.name, interactive=ok,
                            info=cfg.label if ok else f"unavailable: {verdicts[cfg.name]['reason']}",
                            elem_id=f"cfg-{cfg.name.replace('+', '-')}",
                            elem_classes=["arena-cfg"] if ok else ["arena-cfg", "arena-cfg-off"]))
            boxes += group
            families.append((family, accordion, group, unavailable))
    return boxes, families


def _settings(lim: ServerLimits) -> tuple[dict[str, Any], Any]:
    """The generation settings accordion: the request's fields by name, and the decoding radio."""
    with gr.Accordion("Generation settings", open=False, elem_id="settings"):
        with gr.Row():
            top, note = capped(1024, lim.max_new_tokens, lim, "new tokens")
            settings = {"max_new_tokens": gr.Slider(1, top, value=min(DEFAULTS.max_new_tokens, top), step=1,
                                                    label="Max new tokens", info=note, elem_id="max-new")}
            top, note = capped(64, lim.max_batch, lim, "rows per batch")
            settings["batch_size"] = gr.Slider(1, top, value=DEFAULTS.batch_size, step=1, label="Batch size",
                                               info=note, elem_id="batch")
            top, note = capped(10, lim.max_repeats, lim, "repeats")
            settings["repeats"] = gr.Slider(1, top, value=min(DEFAULTS.repeats, top), step=1,
                                            label="Timed repeats (median kept)", info=note, elem_id="repeats")
            top, note = capped(4096, lim.max_prompt_tokens, lim, "prompt tokens")
            settings["prompt_tokens"] = gr.Slider(8, top, value=min(DEFAULTS.prompt_tokens, top), step=8,
                                                  label="Prompt tokens (synthetic models)", info=note)
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
    return settings, decoding


def build_tab(app: ArenaApp) -> ArenaTab:
    """Add the Arena tab to the Blocks being built."""
    lim = app.limits
    verdicts = {row["config"]: row for row in registry.availability_table()}
    with gr.Tab("Arena"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                prompt = gr.Textbox(label="Prompt", lines=3, value=prompts.FREE_FORM[0], elem_id="prompt")
                # example_labels: drawn as plain labels (the component path without labels
                # throws in Gradio 6.17.3's Dataset while its example components load)
                gr.Examples(list(EXAMPLES.values()), inputs=prompt, label="Example prompts",
                            example_labels=list(EXAMPLES))
            with gr.Column(scale=2):
                choices = model_choices(lim)
                model = gr.Dropdown(choices, value=first_choice(choices), label="Model", elem_id="model",
                                    info="Synthetic architectures have random weights: for speed "
                                         "and memory only, their text is noise.")
                hub_id = gr.Textbox(label="…or a Hugging Face model id", placeholder="org/name",
                                    info="Overrides the model above when filled.", elem_id="hub-id")
                draft = gr.Textbox(label="Draft model (assisted configurations)", value=DEFAULTS.draft_model,
                                   placeholder="default", elem_id="draft-model", visible=False,
                                   info="A smaller model that proposes tokens for the model to verify: default "
                                        "(the embedded model, a sanity draft), a Hub id or a local directory.")
                with gr.Row():
                    run_btn = gr.Button("Run", variant="primary", elem_id="run")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel")
        # The run's summary and cards come first (a run scrolls them into view), then the choices.
        summary_md = gr.Markdown(elem_id="summary")
        panels = gr.HTML(render(RunState([])), elem_id="panels")
        session_key = gr.State("")  # identifies this page for Cancel (a function with *args cannot receive gr.Request)
        gr.Markdown("**Configurations**, by family (open one to pick; unavailable ones are greyed and say why)",
                    elem_id="cfg-head")
        boxes, families = _families(verdicts)
        settings, decoding = _settings(lim)
        table = gr.Dataframe(run_table([]), label="Results of this run", elem_id="run-table", interactive=False)
        with gr.Row():
            speed_plot = gr.Plot(label="Speed and memory", elem_id="speed-plot")
            quality_plot = gr.Plot(label="Speedup and agreement", elem_id="quality-plot")
        # The charts are drawn from this by their own event, never sent a skip: in Gradio 6.17.3 a
        # plot given gr.skip() after a figure parses "undefined" (a console SyntaxError).
        shown = gr.State({"results": [], "baseline": ""})
    # The prompt first: a refusal by the queue (queue_bound) is shown under the first input.
    form = {"prompt": prompt, "model": model, "hub_id": hub_id, "decoding": decoding, "draft_model": draft,
            **settings}
    run_event = _wire(app, families, form, boxes, (run_btn, cancel_btn, draft), session_key,
                      [panels, table, shown, summary_md], [speed_plot, quality_plot])
    return ArenaTab(session_key, run_event)


def refused(reason: str) -> tuple:
    """A request that did not start: said in place, the previous run's results cleared."""
    note = f'<div class="arena-empty arena-refused">Not started: {html.escape(reason)}</div>'
    return note, run_table([]), {"results": [], "baseline": ""}, f"**Not started:** {reason}"


def run_ui(app: ArenaApp, form: list[str], boxes: list[str], session_key: str, *values: Any):
    """One run for the page: `form` names the first values, `boxes` the checkboxes' configurations."""
    named = dict(zip(form, values))
    chosen = [name for name, on in zip(boxes, values[len(form):]) if on]
    if not chosen:
        yield refused("pick at least one configuration (open a family below)")
        return
    hub = (named.pop("hub_id") or "").strip()  # overrides the picker when filled
    named["model"] = hub or named["model"]
    named["prompt"] = named["prompt"] or ""
    named["do_sample"] = named.pop("decoding") == "sampling"
    try:
        for state, changed in app.stream(request_from(**named, configs=chosen), session_key):
            cards = render(state)
            if changed:
                yield (cards, run_table(state.results), {"results": list(state.results), "baseline": state.baseline},
                       summary(state))
            else:
                yield cards, gr.skip(), gr.skip(), summary(state)
    except RequestError as exc:
        yield refused(str(exc))


def _wire(app: ArenaApp, families: list, form: dict[str, Any], boxes: list[gr.Checkbox], buttons: tuple,
          session_key: gr.State, outputs: list, plots: list) -> Any:
    """The tab's events (`buttons`: Run, Cancel and the draft model's box, shown while an assisted
    configuration is ticked); returns the Run click's event."""
    run_btn, cancel_btn, draft = buttons
    for family, accordion, group, unavailable in families:
        def relabel(*on, family=family, total=len(group), unavailable=unavailable):
            return gr.Accordion(label=family_label(family, sum(on), total, unavailable))

        for box in group:
            box.input(relabel, group, accordion, queue=False, api_visibility="private", show_progress="hidden")

    # The draft model's box shows while an assisted configuration is ticked.
    drafted = [box for box in boxes if (spec := registry.get(box.label).speculation) is not None and spec.draft]
    for box in drafted:
        box.change(lambda *on: gr.Textbox(visible=any(on)), drafted, draft, queue=False,
                   api_visibility="private", show_progress="hidden")

    def draw(data: dict[str, Any]):
        return (charts.run_speed_memory(data["results"]),
                charts.run_speedup_quality(data["results"], data["baseline"]))

    @zerogpu.gpu
    def run_page(session_key, *values):
        yield from run_ui(app, list(form), [b.label for b in boxes], session_key, *values)

    def cancel_ui(session_key):
        if app.cancel(session_key):
            gr.Info("Cancelling: the current configuration is stopped; measured results are kept.")

    # Only measuring events queue (one slot, GPU_QUEUE); the queue position shows on the summary.
    run_btn.click(None, None, None, js=SHOW_CARDS, queue=False, api_visibility="private")
    run_event = run_btn.click(
        run_page, [session_key, *form.values(), *boxes], outputs,
        concurrency_id=GPU_QUEUE, concurrency_limit=1, api_visibility="private", show_progress="full",
        show_progress_on=[outputs[-1]],
    )
    outputs[2].change(draw, outputs[2], plots, queue=False, api_visibility="private", show_progress="hidden")
    cancel_btn.click(cancel_ui, session_key, None, queue=False, api_visibility="private")
    return run_event
