"""Loading what a model source points at: its directory or Hub id, its config, its context."""

from __future__ import annotations

from functools import lru_cache

from arena.models.gguf import default_model_dir
from arena.models.spec import ModelError, ModelSpec, architecture_config_dict


HUB_TIMEOUT_S = 5.0  # the existence check: one request, no retries
ELSEWHERE = "use a local model folder or the embedded default model ('default')"


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_error(spec: ModelSpec, exc: Exception) -> ModelError:
    text = str(exc)
    if hub_offline() and spec.kind == "hub":
        return ModelError(f"{spec.ref!r} is not available on this server (it keeps to models it already has): "
                          f"{ELSEWHERE}", advice="HF_HUB_OFFLINE=1 keeps the Hub out: unset it to download the model")
    if "connect" in text.lower() or "offline" in text.lower() or "resolve" in text.lower():
        return ModelError(f"cannot reach the Hugging Face Hub to fetch {spec.ref!r}: {ELSEWHERE}")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ModelError(f"cannot load {spec.ref!r}: {first[:200]}")


def check_hub(spec: ModelSpec) -> None:
    """ModelError at once when the Hub cannot be reached or has no such model: one request with a
    short timeout and no retries, before transformers' downloads (which retry with back-off for
    about 30 s). Nothing to check with HF_HUB_OFFLINE=1 (the local cache answers)."""
    if spec.kind != "hub" or hub_offline():
        return
    import requests
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().model_info(spec.ref, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        raise ModelError(f"{spec.ref!r} is gated on the Hugging Face Hub: accept its terms on its page and "
                         "set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise ModelError(f"no model {spec.ref!r} on the Hugging Face Hub (a private one needs HF_TOKEN); "
                         f"or {ELSEWHERE}") from None
    except HfHubHTTPError:
        return  # the Hub answered (a 5xx, a rate limit...): the load says what it says
    except (requests.RequestException, OSError) as exc:
        why = f"no answer within {HUB_TIMEOUT_S:g} s" if isinstance(exc, requests.Timeout) else "no connection"
        cached = isinstance(try_to_load_from_cache(spec.ref, "config.json"), str)
        advice = ("it is in the local Hugging Face cache: set HF_HUB_OFFLINE=1 to use that copy" if cached else
                  "set HF_HUB_OFFLINE=1 to use models in the local Hugging Face cache")
        raise ModelError(f"this server cannot reach the Hugging Face Hub for {spec.ref!r} ({why}): {ELSEWHERE}",
                         advice=advice) from None


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
    check_hub(spec)
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
