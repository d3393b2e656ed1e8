"""Live text: the tokens of row 0 turned into text as they come, for the page's cards."""

from __future__ import annotations

from typing import Any, Callable

Emit = Callable[[dict[str, Any]], None]


class TextStream:
    """Incremental detokenizer for row 0, as transformers' TextStreamer does it: decode the
    tokens since the last newline and emit only the new characters. It stops at the first
    end-of-text token (`eos`): what timing generates after it is never shown, so the live text
    never shows more than the stored text."""

    def __init__(self, spec, tokenizer, emit: Emit, eos: set[int] | None = None) -> None:
        self.spec, self.tokenizer, self.emit = spec, tokenizer, emit
        self.eos = eos or set()
        self.cache: list[int] = []
        self.printed = 0
        self.enabled = False
        self.ended = False

    def __call__(self, ids: list[int]) -> None:
        if not self.enabled or self.ended:
            return
        cut = next((i for i, t in enumerate(ids) if t in self.eos), None)
        if cut is not None:
            ids, self.ended = ids[:cut], True
            if not ids:
                return
        if self.tokenizer is None:
            self.emit({"type": "token", "text": " " + " ".join(map(str, ids))})
            return
        self.cache.extend(ids)
        text = self.tokenizer.decode(self.cache, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for more
            return
        if len(text) > self.printed:
            self.emit({"type": "token", "text": text[self.printed:]})
        if text.endswith("\n"):
            self.cache, self.printed = [], 0
        else:
            self.printed = len(text)
