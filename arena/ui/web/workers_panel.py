"""The Environment tab's warm workers: what each holds and for how long it has been idle, and
a button that frees them all (arena/execute/pool.py; inline mode: the cached model)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from arena.execute import inline
from arena.execute.pool import existing_pool

HEADERS = ["model", "configuration", "dtype", "device", "host MB", "GPU MB", "idle s", "runs"]


def listing() -> list[dict[str, Any]]:
    """Warm workers (and the inline cache), most recently used first, then the spare worker."""
    pool = existing_pool()
    out = (pool.describe() if pool is not None else []) + inline.cached()
    spare = pool.spare() if pool is not None else None
    if spare is not None:
        state = "ready" if spare["ready"] else "importing"
        out.append({"model": "–", "config": f"spare worker ({state}: torch and transformers)", "dtype": "–",
                    "device": "–", "spare": True, **spare})
    return out


def rows() -> list[list[Any]]:
    return [[w["model"], w["config"], w["dtype"], w["device"], w.get("host_mb", "–"), w.get("gpu_mb", "–"),
             w.get("idle_s", "–"), w.get("runs", "–")] for w in listing()]


def free_all() -> int:
    pool = existing_pool()
    return (pool.free_all() if pool is not None else 0) + inline.free()


def build() -> tuple[gr.Dataframe, Any]:
    """The panel; returns its table and the function that refreshes it."""
    gr.Markdown("### Warm workers\nAfter a run each configuration's worker stays alive with its model "
                "loaded, and an identical request reuses it (its results say *warm*). They hold the "
                "memory listed here until they expire, are evicted for a run that needs the memory, "
                "or are freed.")
    table = gr.Dataframe(value=rows(), headers=HEADERS, interactive=False, elem_id="warm-workers")
    with gr.Row():
        refresh_btn = gr.Button("Refresh", elem_id="warm-refresh")
        free_btn = gr.Button("Free all warm workers", variant="stop", elem_id="warm-free")

    def free():
        gr.Info(f"Freed {free_all()} warm worker(s).")
        return rows()

    refresh_btn.click(rows, None, table, api_visibility="private", queue=False)
    free_btn.click(free, None, table, api_visibility="private", concurrency_id="gpu", concurrency_limit=1)
    return table, rows
