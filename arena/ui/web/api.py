"""The public API (gradio_client, "Use via API" at the foot of the page). `/run` measures and
waits in the one measuring slot; everything else reads and answers at once. No endpoint takes
rows to store: only results the server measured itself, and votes on pairs it showed, are
written."""

from __future__ import annotations

import time

from typing import Iterator

import gradio as gr

from arena.core.request import RequestError
from arena.data.blind import VoteError
from arena.ui.forms import DEFAULT_CONFIGS, DEFAULTS, request_from
from arena.ui.web import leaderboard, workers_panel, zerogpu
from arena.ui.web.state import GPU_QUEUE, ArenaApp, client_of, session_of


def register(app: ArenaApp) -> None:
    """Add the API's endpoints to the Blocks being built."""
    lim = app.limits

    # The parameters' order is the API's positional order: new ones go last.
    @zerogpu.gpu
    def run(prompt: str, model: str = DEFAULTS.model, configs: str = DEFAULT_CONFIGS,
            max_new_tokens: int = DEFAULTS.max_new_tokens, batch_size: int = DEFAULTS.batch_size,
            dtype: str = DEFAULTS.dtype, repeats: int = DEFAULTS.repeats, do_sample: bool = DEFAULTS.do_sample,
            seed: int = DEFAULTS.seed, temperature: float = DEFAULTS.temperature, top_p: float = DEFAULTS.top_p,
            prompt_tokens: int = DEFAULTS.prompt_tokens, gpus: str = "", max_memory: str = "",
            request: gr.Request = None) -> Iterator[dict]:
        """Run the arena: yields snapshots {run_id, baseline, finished, panels, results}. gpus
        ("0,1") and max_memory ("0=20GiB,1=20GiB") split PyTorch configurations over devices."""
        try:
            req = request_from(prompt=prompt, model=model, configs=configs, max_new_tokens=max_new_tokens,
                               batch_size=batch_size, dtype=dtype, repeats=repeats, do_sample=do_sample,
                               seed=seed, temperature=temperature, top_p=top_p, prompt_tokens=prompt_tokens,
                               gpus=gpus, max_memory=max_memory)
            for state, _ in app.stream(req, session_of(request)):
                yield {**state.snapshot(), "yielded_at": time.time()}  # the page's delay is measured from here
        except RequestError as exc:  # refused before anything ran
            raise gr.Error(str(exc), print_exception=False) from None

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
            return app.blind.draw(session_of(request)).public()
        except VoteError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def vote(pair_id: str, choice: str, request: gr.Request = None) -> dict:
        """Vote on a pair shown to this session ("A is better", "B is better", "Tie", "Both are
        bad"); returns which configuration was A and which B."""
        try:
            return app.blind.vote(session_of(request), pair_id, choice, client=client_of(request))
        except VoteError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def ratings() -> list[dict]:
        """Blind-vote ratings per model and configuration, with speed and memory."""
        return leaderboard.public_rows(leaderboard.quality_frame(app.store))

    def cancel(request: gr.Request = None) -> bool:
        """Stop this session's running /run between tokens (the page's Cancel): the current
        configuration ends as cancelled, everything measured before it is kept. False when
        this session has no run in progress."""
        return app.cancel(session_of(request))

    def workers() -> list[dict]:
        """The warm workers: model, configuration, memory held (MB), idle seconds, runs, pid, and
        any web library found imported in the worker (none expected)."""
        return workers_panel.listing()

    gr.api(run, api_name="run", concurrency_id=GPU_QUEUE, concurrency_limit=1)
    gr.api(cancel, api_name="cancel", queue=False)
    gr.api(blind_pair, api_name="blind_pair", queue=False)
    gr.api(vote, api_name="vote", queue=False)
    gr.api(ratings, api_name="ratings", queue=False)
    gr.api(leaderboard_api, api_name="leaderboard", queue=False)
    gr.api(workers, api_name="workers", queue=False)
