"""The Blind check tab: two configurations' outputs as A and B without their names, a vote, and
only then the names (the pairs and votes: arena/data/blind.py).

Its own tab, so that the named cards and table of the Arena tab are out of sight while voting."""

from __future__ import annotations

import gradio as gr

from arena.data.blind import CHOICES, VoteError
from arena.ui.web.state import ArenaApp

READ_ONLY = dict(queue=False, api_visibility="private")


def _client(request: gr.Request | None) -> str:
    """The visitor's address (the first X-Forwarded-For hop behind a Space's proxy)."""
    if request is None:
        return ""
    forwarded = (request.headers.get("x-forwarded-for") or "") if request.headers else ""
    return forwarded.split(",")[0].strip() or getattr(getattr(request, "client", None), "host", "") or ""


def build_tab(app: ArenaApp, session_key: gr.State) -> None:
    """Add the Blind check tab to the Blocks being built; `session_key` names this page's runs."""
    with gr.Tab("Blind check", elem_id="blind"):
        gr.Markdown("Two configurations' outputs of your last run, as A and B in random order, "
                    "without their names. Vote first; the names are shown after. Outputs with the "
                    "same text are never paired. Votes feed the quality rating in the leaderboard "
                    f"(Bradley-Terry, as Chatbot Arena computes it); at most {app.limits.votes_per_hour} "
                    "votes per visitor per hour.")
        blind_btn = gr.Button("Show two outputs", elem_id="blind-draw")
        pair_id = gr.State("")
        with gr.Row():
            text_a = gr.Textbox(label="A", lines=6, interactive=False, elem_id="blind-a")
            text_b = gr.Textbox(label="B", lines=6, interactive=False, elem_id="blind-b")
        with gr.Row():
            vote_btns = [gr.Button(label, elem_id=f"vote-{value}") for label, value in CHOICES.items()]
        reveal = gr.Markdown(elem_id="blind-reveal")

    def draw_ui(session_key):
        try:
            pair = app.blind.draw(session_key)
        except VoteError as exc:  # said where the pair would be, not as an error toast
            return "", "", "", f"**{exc}**"
        return pair.pair_id, pair.text_a, pair.text_b, "Which is better?"

    def vote_ui(session_key, pair, choice, request: gr.Request):
        try:
            shown = app.blind.vote(session_key, pair, choice, client=_client(request))
        except VoteError as exc:
            return pair, f"**{exc}**"
        # The pair id stays: a second vote on it is refused as what it is, a second vote.
        return pair, f"**A** was `{shown['A']}`, **B** was `{shown['B']}`. Thanks: your vote is stored."

    # The Leaderboard tab redraws when it is selected: a vote needs no redraw of a hidden tab.
    blind_btn.click(draw_ui, session_key, [pair_id, text_a, text_b, reveal], **READ_ONLY)
    for btn in vote_btns:
        btn.click(vote_ui, [session_key, pair_id, btn], [pair_id, reveal], **READ_ONLY)
