"""Live text: the tokens of row 0 turned into text as they come, for the page's cards."""

from __future__ import annotations

from typing import Any, Callable

Emit = Callable[[dict[str, Any]], None]


class TextStream:
    """Incremental detokenizer for row 0, as transformers' TextStreamer does it: decode the
    tokens since the last newline and emit only the new characters."""

    def __init__(self, spec, tokenizer, emit: Emit) -> None:
        self.spec, self.tokenizer, self.emit = spec, tokenizer, emit
        self.cache: list[int] = []
        self.printed = 0
        self.enabled = False

    def __call__(self, ids: list[int]) -> None:
        if not self.enabled:
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
