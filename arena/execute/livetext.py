"""Live text: the tokens of row 0 turned into text as they come, for the page's cards."""

from __future__ import annotations

from typing import Any, Callable

Emit = Callable[[dict[str, Any]], None]


class TextStream:
    """Incremental detokenizer for row 0 with constant work per token (as text-generation-inference
    does it): decode only a short window, the tokens since the last emitted piece against those
    just before, and emit the new characters. (Decoding everything since the last newline grew
    with the output, inside the first timed repeat.) It stops at the first end-of-text token
    (`eos`): what timing generates after it is never shown, so the live text never shows more
    than the stored text."""

    def __init__(self, spec, tokenizer, emit: Emit, eos: set[int] | None = None) -> None:
        self.spec, self.tokenizer, self.emit = spec, tokenizer, emit
        self.eos = eos or set()
        self.enabled = False
        self.text = ""
        self.again()

    def again(self) -> None:
        """A second pass over the same generation (the first timed repeat after a warm-up that
        streamed): the same work per token, but only text beyond what the page already shows is
        sent. Where a sampled pass writes other text, it sends nothing more: the card takes the
        stored text with the result."""
        self.shown = self.text  # what the page was sent by the earlier pass
        self.ids: list[int] = []
        self.prefix = self.read = 0  # ids[prefix:read] were already emitted (the context window)
        self.text = ""  # this pass's text so far
        self.ended = False

    def _send(self, piece: str) -> None:
        before, self.text = self.text, self.text + piece
        # the page has it already, or this pass went another way (the result's text settles it)
        if len(self.text) > len(self.shown) and self.text.startswith(self.shown):
            self.emit({"type": "token", "text": self.text[max(len(before), len(self.shown)):]})

    def __call__(self, ids: list[int]) -> None:
        if not self.enabled or self.ended:
            return
        cut = next((i for i, t in enumerate(ids) if t in self.eos), None)
        if cut is not None:
            ids, self.ended = ids[:cut], True
            if not ids:
                return
        if self.tokenizer is None:
            self._send(" " + " ".join(map(str, ids)))
            return
        self.ids.extend(ids)
        before = self.tokenizer.decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        text = self.tokenizer.decode(self.ids[self.prefix:], skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for more
            return
        if len(text) > len(before):
            self._send(text[len(before):])
        self.prefix, self.read = self.read, len(self.ids)
