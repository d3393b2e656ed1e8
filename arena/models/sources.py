"""Loading what a model source points at: its directory or Hub id, its config, its context."""

from __future__ import annotations

from functools import lru_cache

from arena.models.gguf import default_model_dir
from arena.models.spec import ModelError, ModelSpec, architecture_config_dict


def hub_error(spec: ModelSpec, exc: Exception) -> ModelError:
    text = str(exc)
    if "connect" in text.lower() or "offline" in text.lower() or "resolve" in text.lower():
        return ModelError(f"cannot reach the Hugging Face Hub to fetch {spec.ref!r} (offline?)")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ModelError(f"cannot load {spec.ref!r}: {first[:200]}")


def pretrained_path(spec: ModelSpec) -> str:
    """What to hand to from_pretrained for a non-synthetic model."""
    if spec.kind == "default":
        return str(default_model_dir())
    return spec.ref


@lru_cache(maxsize=32)
def load_config(spec: ModelSpec):
    """The model's PretrainedConfig; ModelError with one line when it cannot be had."""
    from transformers import AutoConfig, PretrainedConfig

    if spec.synthetic:
        data = {k: v for k, v in architecture_config_dict(spec.ref).items() if not k.startswith("_arena")}
        model_type = data.pop("model_type")
        return AutoConfig.for_model(model_type, **data)
    try:
        config: PretrainedConfig = AutoConfig.from_pretrained(pretrained_path(spec), trust_remote_code=False)
    except ModelError:
        raise
    except Exception as exc:  # network, missing repo, bad directory: one line for the user
        raise hub_error(spec, exc) from None
    return config


def context_length(spec: ModelSpec) -> int:
    config = load_config(spec)
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048
