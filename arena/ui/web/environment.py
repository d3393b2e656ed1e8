"""The Environment tab, and what it and the page's header say about this server: platform and
library versions, every configuration's availability, the limits in force and which preset they
come from, whether results persist, and the warm workers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from arena.techniques import registry
from arena.core.env import collect_env
from arena.core.limits import ServerLimits
from arena.data.store import PERSISTENT_VOLUME, persistent_volume
from arena.ui.web import workers_panel

_ENV_LABELS = {
    "hardware": "hardware", "device": "device", "gpu_name": "GPU", "gpu_count": "GPUs",
    "gpu_memory_mb": "GPU memory (MB)", "compute_capability": "compute capability", "driver": "NVIDIA driver",
    "cuda": "CUDA (torch)", "cpu_model": "CPU", "cpu_count": "CPU cores", "python": "Python",
    "ort_providers": "ONNX Runtime providers", "tensorrt_loadable": "TensorRT loadable",
}


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "–"
    return str(value)


def has_gpu(env: dict[str, Any]) -> bool:
    return bool(env.get("gpu_count") or env.get("gpu_name"))


def usable_providers(env: dict[str, Any]) -> str:
    """ONNX Runtime's providers that can run here: the CUDA and TensorRT ones are listed by the
    onnxruntime-gpu build even on a machine with no GPU (and TensorRT only with its libraries)."""
    listed = list(env.get("ort_providers") or [])
    gpu_only = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}
    usable = [p for p in listed if p not in gpu_only or (has_gpu(env) and (
        p != "TensorrtExecutionProvider" or env.get("tensorrt_loadable")))]
    left = [p.replace("ExecutionProvider", "") for p in listed if p not in usable]
    return ", ".join(usable) + (f" ({' and '.join(left)} built in, not usable here: "
                                f"{'no GPU' if not has_gpu(env) else 'its libraries do not load'})" if left else "")


def header_note(env: dict[str, Any]) -> str:
    """What the page's header adds about this server's hardware."""
    if has_gpu(env):
        return ""
    return ("**This server has no GPU**: the configurations that need one say so and stay unpicked; the others "
            "run on its CPU, which shows how they compare there, not how they do on a GPU.")


def measuring_text(root: Path = Path(__file__).resolve().parents[3]) -> str:
    """How each number is measured: docs/measuring.md's section of that name, and docs/trust.md's
    summary of the stability verdict and the limit check (what a visitor reads behind the link)."""
    parts = []
    for name, heading in (("docs/measuring.md", "## How each number is measured"), ("docs/trust.md", "# ")):
        try:
            text = (root / name).read_text(encoding="utf-8")
        except OSError:
            continue
        if heading in text:
            body = text[text.index(heading):]
            end = body.find("\n## ", len(heading))
            parts.append(body if end < 0 or heading == "# " else body[:end])
    return "\n\n".join(parts) or "The measuring rules are in the project's docs/measuring.md and docs/trust.md."


def platform_table(env: dict[str, Any]) -> pd.DataFrame:
    """The platform as (what, value) rows."""
    env = {**env, "ort_providers": usable_providers(env)} if "ort_providers" in env else env
    rows = [(label, _text(env.get(key))) for key, label in _ENV_LABELS.items() if key in env]
    return pd.DataFrame(rows, columns=["what", "value"])


def versions_table(env: dict[str, Any]) -> pd.DataFrame:
    """Library versions as (package, version) rows; 'not installed' where absent."""
    rows = [(name, version or "not installed") for name, version in (env.get("packages") or {}).items()]
    return pd.DataFrame(rows, columns=["package", "version"])


def limits_table(limits: ServerLimits) -> pd.DataFrame:
    """Each limit with its value and the variable that sets it."""
    from arena.core.limits import variable_of

    rows = []
    for name, value in limits.describe().items():
        if name == "preset":
            continue
        shown = "any" if value in ((), None) else _text(value)
        rows.append((name.replace("_", " "), shown, variable_of(name)))
    return pd.DataFrame(rows, columns=["limit", "value", "variable"])


def limits_note(limits: ServerLimits) -> str:
    if limits.preset == "public":
        return ("**Public limits** are in force (this server can be reached by others): small models, short "
                "prompts and outputs, a bounded run; prompts and outputs stay with the session that ran them. "
                "ARENA_LIMITS=local lifts them on your own machine.")
    shared = ("the leaderboard shows every prompt and output" if limits.share_outputs else
              "prompts and outputs stay with the session that ran them (ARENA_SHARE_OUTPUTS=0)")
    return ("**Local limits** are in force (ARENA_LIMITS=local, or a server only this machine can reach): "
            f"generous limits; {shared}.")


def ephemeral_container() -> bool:
    """A Space or a Docker container: its own filesystem is lost when it restarts."""
    return bool(os.environ.get("SPACE_ID")) or Path("/.dockerenv").exists()


def persistence_note(store_path: Path, volume: Path = PERSISTENT_VOLUME) -> str:
    """Where results are kept, and honestly for how long."""
    path = Path(store_path).resolve()
    on_volume = persistent_volume(volume) and (path == volume or volume.resolve() in path.parents)
    if on_volume:
        return f"Results are kept on persistent storage ({volume}): they survive restarts."
    if ephemeral_container():
        return ("This server has no persistent storage mounted at /data: **results last until it restarts**. "
                "(On a Space, add persistent storage to keep them.)")
    return f"Results are kept in `{path}` on this machine."


def analytics_note(enabled: bool) -> str:
    if enabled:
        return ("Gradio's usage statistics are **on** (GRADIO_ANALYTICS_ENABLED): Gradio's analytics service "
                "hears of this server.")
    return ("No usage statistics are sent: Gradio's analytics are off (GRADIO_ANALYTICS_ENABLED=true "
            "would turn them on).")


def build_tab(limits: ServerLimits, persistence: str, analytics: bool = False) -> tuple[Any, Any]:
    """Add the Environment tab to the Blocks being built; returns the warm-worker table and the
    function that refreshes it (redrawn after each run)."""
    with gr.Tab("Environment") as tab:
        env = collect_env()
        gr.Markdown(limits_note(limits) + "\n\n" + persistence + "\n\n" + analytics_note(analytics),
                    elem_id="env-limits-note")
        with gr.Row():
            gr.Dataframe(platform_table(env), label="Platform", interactive=False, wrap=True)
            gr.Dataframe(versions_table(env), label="Library versions", interactive=False)
        gr.Dataframe(limits_table(limits), label=f"Limits of this server ({limits.preset} preset, "
                     "then any ARENA_* variable set)", interactive=False, elem_id="env-limits")
        gr.Dataframe(
            value=[[r["config"], r["family"], "yes" if r["available"] else "no", r["reason"], r["description"]]
                   for r in registry.availability_table()],
            headers=["configuration", "family", "available", "reason", "what it does"],
            column_widths=["22%", "12%", "10%", "26%", "30%"],  # "available" on one line
            label="Configurations here", interactive=False, wrap=True, elem_id="env-configs")
        warm_table, warm_rows = workers_panel.build()
    tab.select(warm_rows, None, warm_table, api_visibility="private", queue=False)
    return warm_table, warm_rows
