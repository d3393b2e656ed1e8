"""The Sweep tab: the guide's attention speedup and memory charts, measured here.

Points arrive live from `arena.sweep.runner.run_sweep`; every chart's data downloads as CSV."""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterator

import gradio as gr

from arena.core.env import platform
from arena.core.errors import one_line
from arena.core.limits import ServerLimits
from arena.core.request import RequestError
from arena.data.store import Store
from arena.models.dtypes import DTYPES
from arena.sweep.charts import Chart, all_charts, noisy_points
from arena.sweep.plan import (
    MODES,
    NO_QUANT,
    SweepRequest,
    attention_names,
    quant_names,
    validate_sweep,
)
from arena.sweep.runner import run_sweep, sweep_columns
from arena.ui.web import zerogpu
from arena.ui.web.leaderboard import columns_frame
from arena.ui.web.state import ArenaApp, first_choice, model_choices


# The request's fields as the visitor sees them, and the server limit behind each one's top.
FIELD_LABELS = {"batch_sizes": "Batch sizes", "seq_lens": "Sequence lengths", "padding": "Padding fractions",
                "prompt_lens": "Prompt lengths", "repeats": "Repeats", "new_tokens": "New tokens"}
_FIELD_LIMITS = {"batch_sizes": "max_batch", "seq_lens": "max_prompt_tokens", "prompt_lens": "max_prompt_tokens",
                 "repeats": "max_repeats", "new_tokens": "max_new_tokens"}


def worded(exc: RequestError, limits: ServerLimits) -> str:
    """A refusal in the page's words: the field's label for its name and, where the bound it
    broke is this server's limit, that it is (and, on a public server, how to lift it)."""
    if exc.field not in FIELD_LABELS:
        return str(exc)
    message = FIELD_LABELS[exc.field] + exc.detail
    cap = getattr(limits, _FIELD_LIMITS.get(exc.field, ""), None)
    if cap and exc.high == cap:
        lift = "; ARENA_LIMITS=local lifts it on your own machine" if limits.preset == "public" else ""
        message += f" ({cap:,} is the most this server allows: its {limits.preset} limit{lift})"
    return message


def stream_sweep(req: SweepRequest, store: Store, limits: ServerLimits,
                 cancel: threading.Event) -> Iterator[tuple[list[dict[str, Any]], bool, str]]:
    """Validate (RequestError, in the page's words, before anything runs), run in a thread, and
    yield (points so far, finished, error) about every 0.5 s."""
    try:
        prepared = validate_sweep(req, limits=limits)
    except RequestError as exc:
        raise RequestError(worded(exc, limits)) from None
    events: queue.Queue = queue.Queue()
    error: list[str] = []

    def work() -> None:
        try:
            run_sweep(prepared, store=store, on_point=lambda r: events.put(r.to_dict()), cancel=cancel)
        except Exception as exc:  # points already measured are stored; say why it stopped
            error.append(one_line(exc))
        finally:
            events.put(None)

    thread = threading.Thread(target=work, daemon=True, name="arena-sweep")
    thread.start()
    points: list[dict[str, Any]] = []
    try:
        while True:
            try:
                item = events.get(timeout=0.5)
            except queue.Empty:
                yield points, False, ""
                continue
            if item is None:
                break
            points.append(item)
            yield points, False, ""
        yield points, True, error[0] if error else ""
    finally:
        cancel.set()
        thread.join(60)


def _charts_of(points: list[dict[str, Any]]) -> dict[str, Chart]:
    return {c.title: c for c in all_charts(points)} if points else {}


def _show(app: ArenaApp, points: list[dict[str, Any]], title: str | None, session_key: str = "",
          write: bool = True):
    """The chart picked (else the first) and, once the points are final, its data as one CSV
    file per page and chart, overwritten when written again (not one per update)."""
    charts = _charts_of(points)
    if not charts:
        return gr.update(choices=[], value=None), None, None
    title = title if title in charts else next(iter(charts))
    chart = charts[title]
    if not write:
        return gr.update(choices=list(charts), value=title), chart.figure, None
    path = app.downloads.named(f"{session_key or 'sweep'}-{chart.key}.csv")
    path.write_text(chart.csv())
    return gr.update(choices=list(charts), value=title), chart.figure, str(path)


def _updates(stream: Iterator[tuple[list[dict[str, Any]], bool, str]], columns: list[str]):
    """The status line, the points table and the points state, as the sweep streams."""
    shown = 0
    for points, finished, error in stream:
        head = "**Finished**" if finished else "**Running**"
        text = f"{head}: {len(points)} points" + (f" — stopped: {error}" if error else "")
        if len(points) != shown or finished:
            shown = len(points)
            if finished:
                text += _noise_warning(points)
            yield text, columns_frame(points, columns), {"points": list(points), "final": finished}
        else:
            yield text, gr.skip(), gr.skip()


def _handlers(app: ArenaApp) -> dict[str, Any]:
    """The tab's event handlers, bound to `app`."""
    def drawn(shown: dict[str, Any], title: str | None, session_key: str):
        # the CSV is written when the points are final, not on every streamed update
        return _show(app, shown["points"], title, session_key, write=shown["final"])

    def pick(shown: dict[str, Any], title: str | None, session_key: str):
        return _show(app, shown["points"], title, session_key)

    @zerogpu.gpu
    def run_sweep_ui(session_key, model_v, attn_v, quant_v, batches_v, seqs_v, padding_v, mode_v, dtype_v,
                     repeats_v, prompt_lens_v, new_tokens_v):
        req = SweepRequest(model=model_v, attn=attn_v, quant=quant_v, batch_sizes=batches_v,
                           seq_lens=seqs_v, padding=padding_v, mode=mode_v, dtype=dtype_v,
                           repeats=repeats_v, prompt_lens=prompt_lens_v, new_tokens=new_tokens_v,
                           isolation=app.isolation)
        with app.tracked(session_key) as cancel:
            try:
                yield from _updates(stream_sweep(req, app.store, app.limits, cancel), sweep_columns(mode_v))
            except RequestError as exc:  # said in place, no error toast
                yield f"**Not started:** {exc}", gr.skip(), gr.skip()

    def cancel_sweep(session_key):
        if app.cancel(session_key):
            gr.Info("Cancelling the sweep: points already measured are kept.")

    return {"drawn": drawn, "pick": pick, "run": run_sweep_ui, "cancel": cancel_sweep}


def _form(archs: list[str]) -> dict[str, Any]:
    """The sweep's inputs, laid out in rows."""
    with gr.Row():  # its own row: the longest model name clears the dropdown's arrow
        model = gr.Dropdown(archs, value=first_choice(archs), label="Model", elem_id="sweep-model")
    with gr.Row():
        attn = gr.CheckboxGroup(attention_names(), value=["eager", "sdpa"], label="Attention")
        quant = gr.CheckboxGroup(quant_names(), value=[NO_QUANT], label="Quantization")
    with gr.Row():
        batches = gr.Textbox("1,2,4", label="Batch sizes")
        seqs = gr.Textbox("64,128", label="Sequence lengths (forward, generate)")
        padding = gr.Textbox("0,0.3", label="Padding fractions (forward, generate)")
        mode = gr.Radio(list(MODES), value="forward", label="Mode")
        dtype = gr.Radio(list(DTYPES), value="auto", label="dtype")
        repeats = gr.Slider(1, 10, value=3, step=1, label="Repeats (median kept)")
    with gr.Row():
        prompt_lens = gr.Textbox("16..64", label="Prompt lengths LO..HI (generate-padded)")
        new_tokens = gr.Number(32, precision=0, label="New tokens (generate modes)")
    # in the run handler's positional order (after the session key)
    return {"model": model, "attn": attn, "quant": quant, "batches": batches, "seqs": seqs, "padding": padding,
            "mode": mode, "dtype": dtype, "repeats": repeats, "prompt_lens": prompt_lens, "new_tokens": new_tokens}


def build_tab(app: ArenaApp, gpu_queue: str) -> gr.State:
    """Add the Sweep tab to the Blocks being built; returns its session-key state."""
    with gr.Tab("Sweep"):
        gr.Markdown(
            "Latency of one forward pass (or one generate) per implementation over batch sizes, "
            "sequence lengths and padding, as in the guide's FlashAttention-2 charts. Padding is left "
            "padding on some rows with the attention mask set. **generate-padded**: generation on a batch "
            "of prompts of mixed lengths (drawn from the prompt-length range, the first row the longest), "
            "left padded: TTFT, decode tokens/s and peak memory per batch size. Points that cannot run are "
            "listed with their reason.")
        form = _form(sweep_model_choices(app.limits))
        with gr.Row():
            run_btn = gr.Button("Run sweep", variant="primary", elem_id="sweep-run")
            cancel_btn = gr.Button("Cancel", variant="stop")
        status = gr.Markdown(elem_id="sweep-status")
        table = gr.Dataframe(columns_frame([], sweep_columns("forward")), label="Points", interactive=False,
                             elem_id="sweep-points")
        chart_pick = gr.Dropdown([], label="Chart")
        plot = gr.Plot(label="Sweep chart", elem_id="sweep-plot")
        csv_btn = gr.DownloadButton("Download this chart's data (CSV)")
        key = gr.State("")  # set by the page's load event (see app.new_session_key)
        points_state = gr.State({"points": [], "final": False})  # the points so far; final: the sweep is over
        on = _handlers(app)
        run_btn.click(on["run"], [key, *form.values()], [status, table, points_state],
                      concurrency_id=gpu_queue, concurrency_limit=1, api_visibility="private")
        # The chart is drawn by its own event when points arrive, never sent a skip: in Gradio
        # 6.17.3 a plot given gr.skip() after a figure parses "undefined" (a console SyntaxError).
        points_state.change(on["drawn"], [points_state, chart_pick, key], [chart_pick, plot, csv_btn], queue=False,
                            api_visibility="private", show_progress="hidden")
        cancel_btn.click(on["cancel"], key, None, queue=False, api_visibility="private")
        chart_pick.input(on["pick"], [points_state, chart_pick, key], [chart_pick, plot, csv_btn], queue=False,
                         api_visibility="private")
    return key


def _noise_warning(points: list[dict[str, Any]]) -> str:
    """A line under the status where some speedups are not supported by their repeats."""
    noisy = noisy_points(all_charts(points)) if points else 0
    if not noisy:
        return ""
    return (f"\n\n⚠ {noisy} point{'s' if noisy != 1 else ''} vary more over their repeats than the speedup "
            "they show (hollow markers, named under each chart): repeat more, or measure on a quieter machine, "
            "before trusting them.")


def sweep_model_choices(limits: ServerLimits) -> list[tuple[str, str]]:
    """Synthetic shapes first: the guide's Llama-2-7B on a GPU, the tiny one on a CPU."""

    first = "synthetic:llama-2-7b" if platform().has_cuda else "synthetic:tiny-llama"
    choices = model_choices(limits)
    return sorted(choices, key=lambda c: (c[1] != first, not c[1].startswith("synthetic:")))
