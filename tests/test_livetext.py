"""Live text (arena/execute/livetext.py): the text streamed to a card while a configuration runs."""

from __future__ import annotations

from arena.execute.livetext import TextStream
from arena.models.spec import parse_model
from arena.models.tokenizers import load_tokenizer


def test_live_text_does_constant_work_per_token_and_stops_at_end_of_text():
    spec = parse_model("default")
    tok = load_tokenizer(spec)
    seen: list[int] = []

    class Counting:  # the real tokenizer; records how many ids each decode call is given
        def decode(self, ids, **kw):
            seen.append(len(ids))
            return tok.decode(ids, **kw)

    answer = tok("Paris is the capital of France, and a lovely city to visit in spring. " * 8)["input_ids"]
    after = tok("<|im_start|>system\nnoise", add_special_tokens=False)["input_ids"]
    out: list[str] = []
    stream = TextStream(spec, Counting(), lambda e: out.append(e["text"]), eos={2})
    stream.enabled = True
    for t in answer + [2] + after:
        stream([t])
    assert "".join(out) == tok.decode(answer, skip_special_tokens=True)
    assert max(seen) <= 4  # a short window, never everything so far


def test_a_second_pass_sends_only_what_the_page_does_not_show_yet():
    """The warm-up streams; the first timed repeat after it does the same work per token but the
    card gets each character once. A pass that goes another way (sampling) sends nothing more."""
    spec = parse_model("default")
    tok = load_tokenizer(spec)
    answer = tok("Paris is the capital of France, and a lovely city.")["input_ids"]
    other = tok("Lyon is a city in France, by two rivers.")["input_ids"]
    out: list[str] = []
    stream = TextStream(spec, tok, lambda e: out.append(e["text"]), eos={2})
    stream.enabled = True
    for t in answer[:5]:  # a warm-up cut short: the timed pass has more to send
        stream([t])
    stream.again()
    for t in answer:
        stream([t])
    assert "".join(out) == tok.decode(answer, skip_special_tokens=True)
    sent = len(out)
    stream.again()
    for t in other:
        stream([t])
    assert len(out) == sent
