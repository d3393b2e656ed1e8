"""Clocks, following optimum-benchmark's rules.

- Each new token is timestamped in a streamer's put(), after the token ids are copied to the
  host: that copy waits for the device, so the timestamps are synchronized (no CUDA event
  needed, and no extra sync beyond what streaming needs).
- TTFT = first token's timestamp - start of generate (prefill + first selection).
- Decode tokens/s = batch x (new - 1) / (last token - first token).
- Per-token latencies are the gaps between consecutive token timestamps.
- A step may hand over several tokens at once (speculative decoding: the verified draft tokens
  and the model's own next one). TTFT is then the time to the first step, whatever it emitted;
  decode tokens/s counts the tokens emitted after the first step over the time after it; a step
  that emitted k tokens after a gap g counts as k per-token latencies of g / k each. With one
  token a step these are the definitions above.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable


class TokenClock:
    """A transformers streamer: timestamps every generated step and forwards row 0's new
    token ids to `on_tokens` (for live text)."""

    def __init__(self, on_tokens: Callable[[list[int]], None] | None = None,
                 on_first: Callable[[float], None] | None = None) -> None:
        self.on_tokens = on_tokens
        self.on_first = on_first  # called with the first token's stamp (the decode phase starts)
        self.start = 0.0
        self.stamps: list[float] = []
        self.counts: list[int] = []  # tokens of row 0 each stamped step emitted (several when speculative)
        self._prompt_seen = False

    def begin(self) -> None:
        self.start = time.perf_counter()
        self.stamps = []
        self.counts = []
        self._prompt_seen = False

    @property
    def tokens(self) -> int:
        """New tokens per row stamped since begin()."""
        return sum(self.counts)

    def put(self, value: Any) -> None:
        ids = value.tolist()  # device -> host copy: waits for the step to finish
        now = time.perf_counter()
        if not self._prompt_seen:  # generate() first hands the streamer the prompt itself
            self._prompt_seen = True
            return
        # generate() hands one token per row, shape (batch,); others hand (batch, n) columns
        # (assisted generation: n tokens of one step).
        row0 = ids[0] if isinstance(ids, list) and ids else ids
        tokens = row0 if isinstance(row0, list) else [row0]
        self.stamps.append(now)
        self.counts.append(len(tokens))
        if len(self.stamps) == 1 and self.on_first is not None:
            self.on_first(now)
        if self.on_tokens is not None:
            self.on_tokens(tokens)

    def end(self) -> None:
        pass


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Timing:
    ttft_ms: float
    decode_tokens_per_s: float
    e2e_tokens_per_s: float
    token_latency_p50_ms: float
    token_latency_p90_ms: float
    total_s: float


def timing_from_stamps(start: float, stamps: list[float], batch: int,
                       counts: list[int] | None = None) -> Timing:
    """`counts`: the tokens per row each stamped step emitted (default: one each)."""
    if not stamps:
        raise ValueError("no token was generated")
    counts = counts or [1] * len(stamps)
    if len(counts) != len(stamps):
        raise ValueError(f"{len(stamps)} stamps but {len(counts)} token counts")
    n, after_first = sum(counts), sum(counts) - counts[0]
    gaps = [(b - a) / k for a, b, k in zip(stamps, stamps[1:], counts[1:]) for _ in range(k)]
    decode_s = stamps[-1] - stamps[0]
    total = stamps[-1] - start
    return Timing(
        ttft_ms=(stamps[0] - start) * 1e3,
        decode_tokens_per_s=batch * after_first / decode_s if after_first and decode_s > 0 else float("nan"),
        e2e_tokens_per_s=batch * n / total,
        token_latency_p50_ms=percentile(gaps, 50) * 1e3 if gaps else float("nan"),
        token_latency_p90_ms=percentile(gaps, 90) * 1e3 if gaps else float("nan"),
        total_s=total,
    )


def median_timing(timings: list[Timing]) -> tuple[Timing, dict[str, list[float]]]:
    """The median of each metric over repeats, and the per-repeat values (the spread)."""
    from arena.core.results import over_repeats  # each field by its declared `repeats` rule

    keys = Timing.__dataclass_fields__.keys()
    spread = {k: [getattr(t, k) for t in timings] for k in keys}
    return Timing(**{k: over_repeats(k, v) for k, v in spread.items()}), spread
