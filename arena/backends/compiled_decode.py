"""A decode loop built to reach the memory-bandwidth limit (gpt-fast style) on transformers models.

- A static KV cache (transformers' StaticCache), allocated once per (batch, length) and reused,
  so every decode step sees the same tensor addresses.
- Prefill runs once, eagerly, with logits for the last position only.
- The whole decode step — model forward at `cache_position` plus the token choice — is one
  function compiled by torch.compile; on CUDA with mode="reduce-overhead", i.e. captured and
  replayed as a CUDA graph. Greedy selection (argmax) runs inside the graph; seeded sampling
  (temperature, top-p, an exponential race instead of multinomial) runs on the device after it.
- The loop never waits for the device except to stream: each token is copied to pinned host
  memory with an event, and handed to the streamer only after the next step has been queued,
  so the GPU never idles for the host while every token is still streamed (and timestamped) on
  its own.
- Graph outputs live in memory the next replay overwrites: each is copied at once into its row
  of one token buffer allocated per generation (no allocation, list or stack per token); the
  next step reads its input from that row.
- Host work per token is kept small: the pinned host rows and the CUDA events are allocated
  once per (batch, length) and reused, so a step costs the graph replay, one device copy, one
  device-to-host copy and one event record.
"""

from __future__ import annotations

from typing import Any

import torch

from arena.backends.base import Sampling
from arena.backends.torch import TorchBackend


def sample_on_device(logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """Temperature + top-p (as transformers' warpers) and a sample drawn without a host sync:
    argmax(p / q) with q ~ Exp(1) picks index i with probability p_i."""
    logits = logits / sampling.temperature
    if sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
        drop = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= 1 - sampling.top_p
        drop[..., -1:] = False  # always keep the most likely token
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probs = logits.softmax(dim=-1)
    return (probs / torch.empty_like(probs).exponential_(1)).argmax(dim=-1)


class CompiledDecodeBackend(TorchBackend):
    def load(self) -> None:
        super().load()
        self.on_cuda = self.device.startswith("cuda")
        self._cache: Any = None
        self._cache_shape: tuple[int, int] | None = None
        self._host: tuple[tuple[int, int], torch.Tensor, list[Any]] | None = None  # pinned rows, events
        # CUDA: compile and capture as a CUDA graph. CPU: inductor's C++ code, no graphs.
        mode = "reduce-overhead" if self.on_cuda else "default"
        self._greedy_step = torch.compile(self._greedy_step_eager, mode=mode, fullgraph=True, dynamic=False)
        self._logits_step = torch.compile(self._logits_step_eager, mode=mode, fullgraph=True, dynamic=False)

    def nll_note(self) -> str:
        return ("scored by the same model uncompiled in one pass (the compiled step decodes one token at "
                "a time; compilation changes kernels, not weights or attention)")

    # ------------------------------------------------------------- the compiled step

    def _last_logits(self, token: torch.Tensor, cache_position: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=token, cache_position=cache_position, past_key_values=self._cache,
                         use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :].float()  # as generate(): choose in fp32

    def _greedy_step_eager(self, token: torch.Tensor, cache_position: torch.Tensor) -> torch.Tensor:
        return self._last_logits(token, cache_position).argmax(dim=-1)

    def _logits_step_eager(self, token: torch.Tensor, cache_position: torch.Tensor) -> torch.Tensor:
        return self._last_logits(token, cache_position)

    # ------------------------------------------------------------- generation

    def _static_cache(self, batch: int, length: int) -> Any:
        """One StaticCache per (batch, length), zeroed in place between generations so its
        addresses (captured in the graph) stay the same."""
        from transformers import StaticCache

        if self._cache_shape != (batch, length):
            self._cache = StaticCache(config=self.model.config, max_cache_len=length)
            self._cache_shape = (batch, length)
            torch._dynamo.reset()  # the compiled steps closed over the old cache
        else:
            self._cache.reset()
        return self._cache

    def _host_rows(self, rows: int, batch: int) -> tuple[torch.Tensor, list[Any]]:
        """Pinned host memory for `rows` tokens of `batch` rows and one CUDA event per token,
        kept across generations of the same shape (each event is waited on before reuse)."""
        if self._host is None or self._host[0] != (rows, batch):
            host = torch.empty((rows, batch), dtype=torch.long, pin_memory=True)
            self._host = ((rows, batch), host, [torch.cuda.Event() for _ in range(rows)])
        return self._host[1], self._host[2]

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, sampling: Sampling,
                 streamer: Any = None) -> torch.Tensor:
        device = self.input_device()
        ids = input_ids.to(device)
        batch, prompt_len = ids.shape
        if streamer is not None:
            streamer.put(input_ids.cpu())  # as generate(): the prompt first
        if sampling.do_sample:
            torch.manual_seed(sampling.seed)

        def choose(logits: torch.Tensor) -> torch.Tensor:
            return sample_on_device(logits, sampling) if sampling.do_sample else logits.argmax(dim=-1)

        out = torch.empty((max_new_tokens, batch), dtype=torch.long, device=device)  # row k: token k
        streaming_cuda = streamer is not None and self.on_cuda
        host, events = self._host_rows(max_new_tokens, batch) if streaming_cuda else (None, [])
        streamed = 0  # tokens handed to the streamer so far

        def produced(k: int, token: torch.Tensor) -> None:
            out[k].copy_(token)
            if streamer is None:
                return
            if not self.on_cuda:
                streamer.put(out[k].view(batch, 1))  # (batch, 1): one new token per row, unambiguous
                return
            host[k].copy_(out[k], non_blocking=True)
            events[k].record()

        def stream_until(done: int) -> None:
            nonlocal streamed
            while streamed < done:
                events[streamed].synchronize()
                streamer.put(host[streamed].view(batch, 1))  # TokenClock stamps it now: the step has finished
                streamed += 1

        with torch.no_grad(), self.generation_context():
            cache = self._static_cache(batch, prompt_len + max_new_tokens)
            positions = torch.arange(prompt_len + max_new_tokens, device=device)
            first = self.model(input_ids=ids, cache_position=positions[:prompt_len], past_key_values=cache,
                               use_cache=True, logits_to_keep=1)
            produced(0, choose(first.logits[:, -1, :].float()))
            del first
            for k in range(1, max_new_tokens):
                position = positions[prompt_len + k - 1: prompt_len + k]
                previous = out[k - 1].view(batch, 1)
                if self.on_cuda:
                    torch.compiler.cudagraph_mark_step_begin()
                if sampling.do_sample:
                    produced(k, choose(self._logits_step(previous, position)))
                else:
                    produced(k, self._greedy_step(previous, position))
                if streaming_cuda:
                    stream_until(k)  # all but the step just queued, which keeps the GPU busy meanwhile
            if streamer is not None:
                if streaming_cuda:
                    stream_until(max_new_tokens)
                streamer.end()
        return out.t().clone()
