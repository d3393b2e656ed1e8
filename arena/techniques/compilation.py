"""Compilation: a static KV cache with generate()'s own torch.compile (`static-cache`), and the
arena's compiled decode step captured as one CUDA graph (`compiled-decode`,
arena/backends/compiled_decode.py). Both compile under one set of inductor flags
(arena/backends/inductor.py).

Their limits: a compiled forward, and the more so a captured graph, needs the whole model on one
device; and past a sliding window transformers' static cache rolls itself with host-side state a
captured graph does not replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from arena.techniques.base import Needs, Row, Site


@dataclass(frozen=True)
class Compile:
    """A row's compile mode: generate() with a static cache and its own torch.compile, or the arena's
    compiled decode step (its own loop: arena/backends/compiled_decode.py)."""

    mode: Literal["static-cache", "compiled-decode"]

    kind: ClassVar[str] = "compile"

    def requirements(self) -> Needs:
        return Needs()

    @property
    def loop(self) -> str | None:
        """The generation loop this mode needs (None: generate(), whichever backend runs it)."""
        return "compiled-decode" if self.mode == "compiled-decode" else None


STATIC_CACHE = Compile("static-cache")
COMPILED_DECODE = Compile("compiled-decode")


def conflict(config: Row) -> str | None:
    """Why `config`'s compile mode cannot be part of the row, or None."""
    if config.compiled_decode and config.bettertransformer:
        return ("the compiled decode step runs the model's own forward; BetterTransformer's "
                "to_bettertransformer() would not be in it")
    return None


def generate_kwargs(device: str) -> dict[str, Any]:
    """What generate() needs to run with a static cache and compile its decode step."""
    from transformers import CompileConfig

    # generate() compiles the decode step itself when the cache is static; on CPU it only does so
    # when asked for every device. CUDA graphs ("reduce-overhead") are GPU-only.
    compile_config = CompileConfig(mode="reduce-overhead" if device.startswith("cuda") else "default")
    compile_config._compile_all_devices = True
    return {"cache_implementation": "static", "compile_config": compile_config}


def rolling_window(model_config: Any) -> int | None:
    """The shortest sliding (or chunked) attention window of the model's layers, as transformers'
    StaticCache reads the config to choose its layers; None when every layer attends to all."""
    layer_types = getattr(model_config, "layer_types", None)
    sliding = getattr(model_config, "sliding_window", None)
    chunk = getattr(model_config, "attention_chunk_size", None)
    if layer_types is not None:
        windows = [sliding if t == "sliding_attention" else chunk if t == "chunked_attention" else None
                   for t in layer_types]
    else:
        windows = [sliding if sliding is not None else chunk]
    windows = [w for w in windows if w]
    return min(windows) if windows else None


def blocker(config: Row, site: Site) -> str | None:
    """Why `config`'s compilation cannot run at `site`, or None. Tensor-parallel rows shard every
    layer in their own processes (no device_map): the one-device rule is not theirs."""
    if not config.compiled:
        return None
    placement = site.placement
    if placement is not None and placement.mapped and not config.tensor_parallel:
        if config.compiled_decode:
            return ("cannot be split over devices: the compiled decode step is captured as one CUDA graph "
                    "and needs the whole model on one device")
        return ("cannot be split over devices: the static cache's compiled forward (CUDA graphs on a GPU) "
                "needs the whole model on one device")
    window = rolling_window(site.model_config) if config.compiled_decode and site.positions else None
    if window and site.positions > window:
        # Past its window transformers' sliding static cache rolls itself and counts positions in a
        # Python int: host state that a captured graph does not replay (it would attend wrong slots).
        return (f"the compiled decode step cannot run past this model's {window:,}-token sliding window "
                f"(this run needs {site.positions:,} positions: prompt + new tokens); shorten them or run "
                f"sdpa or static-cache")
    return None
