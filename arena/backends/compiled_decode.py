"""A decode loop built to reach the memory-bandwidth limit (gpt-fast style) on transformers models.

- A static KV cache (transformers' StaticCache), allocated once per (batch, length) and reused,
  so every decode step sees the same tensor addresses.
- Prefill runs once, eagerly, with logits for the last position only.
- The whole decode step — model forward at `cache_position` plus the token choice — is one
  function compiled by torch.compile (inductor, no graphs of its own). On CUDA that compiled
  step is then captured once into a `torch.cuda.CUDAGraph` of our own, with static input
  buffers (the previous token, the position), and each token is one `replay()`. Why not
  mode="reduce-overhead": every call of a compiled function first evaluates Dynamo's guards
  over the whole model and then walks inductor's CUDA-graph tree, 2.6 ms of host time per token
  in a profile of the Llama-2-7B shape (bf16, torch 2.11, H100). Where the GPU needs less than
  that per token (a small model, or weights quantized to a quarter of the bytes) the host set
  the speed. A replay costs the host microseconds (vLLM and SGLang capture the same way); the
  CPU runs the same step over the same buffers, without the capture.
- Greedy selection (argmax) runs inside the graph, and the graph also writes the chosen token
  into its own input buffer and advances the position: a replay needs no host input. Seeded
  sampling (temperature, top-p, an exponential race instead of multinomial) runs on the device
  after a graph that returns the logits.
- The loop never waits for the device except to stream: each token is copied to pinned host
  memory with an event, and handed to the streamer only after the next step has been queued,
  so the GPU never idles for the host while every token is still streamed (and timestamped) on
  its own.
- Graph outputs live in memory the next replay overwrites: each is copied at once into its row
  of one token buffer allocated per generation (no allocation, list or stack per token).
- Host work per token is kept small: the pinned host rows and the CUDA events are allocated
  once per (batch, length) and reused, so a step costs one replay, one device copy, one
  device-to-host copy and one event record.
- With FlashAttention-2 (`flash-attention-2+compiled-decode`) attention reads the static cache
  through flash-attn's kv-cache kernel (split-KV "flash decoding"): `cache_seqlens` tells it how
  many positions hold keys, so a step reads only those, where SDPA reads the whole static cache
  under a mask. transformers' own FA2 path cannot run here (it unpads by the mask: shapes that
  change every token).
"""

from __future__ import annotations

from typing import Any

import torch

from arena.backends.base import Sampling
from arena.backends.torch import TorchBackend

FLASH_DECODE = "arena_flash_decode"  # the attention implementation registered with transformers


# flash-attn's kv-cache kernel as a torch custom op, so torch.compile traces over it (flash-attn
# registers its other kernels so, not this one) and a CUDA graph captures it. Defined once here:
# Dynamo cannot trace the definition itself. flash-attn is imported at the first call only.
@torch.library.custom_op("arena::flash_decode", mutates_args=())
def flash_decode(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, cache_seqlens: torch.Tensor,
                 softmax_scale: float, window_left: int) -> torch.Tensor:
    from flash_attn import flash_attn_with_kvcache

    return flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=cache_seqlens, softmax_scale=softmax_scale,
                                   causal=True, window_size=(window_left, 0))


@flash_decode.register_fake
def _(q, k_cache, v_cache, cache_seqlens, softmax_scale, window_left):
    return torch.empty_like(q)


@flash_decode.register_kernel("cpu")
def _(q, k_cache, v_cache, cache_seqlens, softmax_scale, window_left):
    """The same function in plain PyTorch (flash-attn has no CPU kernel): each row attends to its
    first `cache_seqlens` keys, its q new positions being the last of them. The configuration
    needs CUDA; this lets the CPU tests run everything around the kernel."""
    rows = []
    lq, heads = q.shape[1], q.shape[2]
    for b in range(q.shape[0]):
        n = int(cache_seqlens[b])
        k = k_cache[b, :n].transpose(0, 1).repeat_interleave(heads // k_cache.shape[2], dim=0)
        v = v_cache[b, :n].transpose(0, 1).repeat_interleave(heads // v_cache.shape[2], dim=0)
        allowed = torch.ones(lq, n, dtype=torch.bool, device=q.device).tril(diagonal=n - lq)
        if window_left >= 0:
            allowed &= ~torch.ones(lq, n, dtype=torch.bool, device=q.device).tril(diagonal=n - lq - window_left - 1)
        out = torch.nn.functional.scaled_dot_product_attention(q[b].transpose(0, 1), k, v, attn_mask=allowed,
                                                               scale=softmax_scale)
        rows.append(out.transpose(0, 1))
    return torch.stack(rows)


def flash_decode_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                           cache_seqlens: torch.Tensor | None = None, **kwargs: object) -> tuple[torch.Tensor, None]:
    """transformers' attention interface over flash-attn. query (B, Hq, q, D); key / value: the whole
    static cache (B, Hkv, L, D), of which the first `cache_seqlens` positions of each row are filled
    (bottom-right causal: the q new positions are the last of them). Without `cache_seqlens` (the
    uncached NLL pass) key / value are exactly the sequence. Returns (B, q, Hq, D)."""
    window = getattr(module, "sliding_window", None)
    left = window - 1 if window else -1
    q, k, v = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)  # (B, len, heads, D) views
    if cache_seqlens is None:
        cache_seqlens = torch.full((q.shape[0],), k.shape[1], dtype=torch.int32, device=q.device)
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    return flash_decode(q, k, v, cache_seqlens, scale, left), None


def use_flash_decode(model: torch.nn.Module) -> None:
    """Register the attention above with transformers (once) and switch `model` to it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, flash_attention_mask

    AttentionInterface.register(FLASH_DECODE, flash_decode_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(FLASH_DECODE, flash_attention_mask)  # no mask: cache_seqlens says it
    model.set_attn_implementation(FLASH_DECODE)


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
        super().load()  # with FlashAttention-2 asked: loaded through transformers' FA2 checks first
        self.flash_decode = self.config.attn == "flash_attention_2"
        if self.flash_decode:
            use_flash_decode(self.model)
        self.on_cuda = self.device.startswith("cuda")
        self._cache: Any = None
        self._cache_shape: tuple[int, int] | None = None
        self._host: tuple[tuple[int, int], torch.Tensor, list[Any]] | None = None  # pinned rows, events
        self._steps: dict[tuple[int, bool], DecodeStep] = {}  # (batch, greedy) -> the step over its buffers
        # Inductor kernels without graphs of their own (see the module docstring); on CUDA the
        # compiled step is captured into our own graph, on CPU it is called directly.
        self._greedy_step = torch.compile(self._greedy_step_eager, fullgraph=True, dynamic=False)
        self._logits_step = torch.compile(self._logits_step_eager, fullgraph=True, dynamic=False)

    def nll_note(self) -> str:
        return ("scored by the same model uncompiled in one pass (the compiled step decodes one token at "
                "a time; compilation changes kernels, not weights or attention)")

    # ------------------------------------------------------------- the compiled step

    def _last_logits(self, token: torch.Tensor, cache_position: torch.Tensor) -> torch.Tensor:
        extra = {}
        if self.flash_decode:  # positions filled once this step's keys are in: the last position + 1
            extra["cache_seqlens"] = (cache_position[-1:] + 1).to(torch.int32).expand(token.shape[0])
        out = self.model(input_ids=token, cache_position=cache_position, past_key_values=self._cache,
                         use_cache=True, logits_to_keep=1, **extra)
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
            self._steps.clear()  # captured over the old cache's addresses
            self._cache = None  # free the old cache before the new one is allocated
            self._cache = StaticCache(config=self.model.config, max_cache_len=length)
            self._cache_shape = (batch, length)
            torch._dynamo.reset()  # the compiled steps closed over the old cache
        return self._cache

    def _step(self, batch: int, greedy: bool) -> "DecodeStep":
        """The decode step for this cache over its static buffers, compiled (and on CUDA captured)
        once, after the cache's tensors exist. Compiling and capturing run the step on a scratch
        token at the cache's last position: the caller resets the cache afterwards."""
        key = (batch, greedy)
        if key not in self._steps:
            step = self._greedy_step if greedy else self._logits_step
            assert self._cache_shape is not None
            self._steps[key] = DecodeStep(step, batch, torch.device(self.device), greedy,
                                          scratch_position=self._cache_shape[1] - 1, capture=self.on_cuda)
        return self._steps[key]

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
            greedy = not sampling.do_sample
            if self.on_cuda and max_new_tokens > 1 and (batch, greedy) not in self._steps:
                # Once per shape (the warm-up): transformers allocates the cache's tensors at their
                # first update, so a prefill comes first; compiling and capturing then write scratch
                # values into the cache, which the reset below clears before the prefill that counts.
                # (On CPU nothing is captured: the step compiles at its first call, after that prefill.)
                self._last_logits(ids, positions[:prompt_len])  # eager: the prefill is not compiled
                self._step(batch, greedy)
            cache.reset()  # zeroed in place: the addresses captured in a graph stay
            produced(0, choose(self._last_logits(ids, positions[:prompt_len])))
            if max_new_tokens > 1:
                step = self._step(batch, greedy)
                step.start(out[0], positions[prompt_len:prompt_len + 1])
            for k in range(1, max_new_tokens):
                step.replay()
                produced(k, step.token if step.greedy else step.advance(choose(step.logits)))
                if streaming_cuda:
                    stream_until(k)  # all but the step just queued, which keeps the GPU busy meanwhile
            if streamer is not None:
                if streaming_cuda:
                    stream_until(max_new_tokens)
                streamer.end()
        return out.t().clone()


class DecodeStep:
    """One compiled decode step over static buffers: `tok` (the previous token of each row) and
    `pos` (its cache position). A greedy step also writes its argmax back into `tok` and advances
    `pos`, so consecutive replays decode consecutive tokens; a sampling step returns the logits,
    and `advance` feeds the chosen token back. With `capture` (CUDA) the step, buffer updates
    included, is captured once as a CUDA graph and `replay` launches that graph; without it
    (CPU) `replay` runs the same code directly."""

    WARMUP_CALLS = 2  # compile (first call) and settle the autotuned kernels before capture

    def __init__(self, step: Any, batch: int, device: torch.device, greedy: bool, scratch_position: int,
                 capture: bool) -> None:
        self.step, self.batch, self.greedy = step, batch, greedy
        self.tok = torch.zeros((batch, 1), dtype=torch.long, device=device)
        self.pos = torch.full((1,), scratch_position, dtype=torch.long, device=device)
        self.result: torch.Tensor | None = None
        self.graph: Any = None
        if not capture:
            return
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # compilation and warm-up outside the capture, as torch's docs ask
            for _ in range(self.WARMUP_CALLS):
                step(self.tok, self.pos)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):  # recorded, not run: the buffers keep their scratch values
            self._run()

    def _run(self) -> None:
        self.result = self.step(self.tok, self.pos)  # under capture: graph-owned, overwritten by the next replay
        if self.greedy:
            self.tok.copy_(self.result.view(self.batch, 1))
            self.pos.add_(1)

    @property
    def token(self) -> torch.Tensor:
        """The token the last greedy replay chose, per row."""
        return self.tok.view(-1)

    @property
    def logits(self) -> torch.Tensor:
        assert self.result is not None
        return self.result

    def start(self, first: torch.Tensor, position: torch.Tensor) -> None:
        """Point the buffers at the first decode step: the token prefill chose, its position."""
        self.tok.copy_(first.view_as(self.tok))
        self.pos.copy_(position)

    def replay(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._run()

    def advance(self, chosen: torch.Tensor) -> torch.Tensor:
        """A sampling step: the chosen token becomes the next input; the position moves on."""
        self.tok.copy_(chosen.view_as(self.tok))
        self.pos.add_(1)
        return chosen
