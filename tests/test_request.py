import pytest

from arena.core.request import RequestError, RunRequest
from arena.execute.prepare import validate


def bad(message, **kw):
    with pytest.raises(RequestError) as err:
        validate(RunRequest(**{"model": "synthetic:tiny-llama", **kw}))
    assert message in str(err.value)


def test_bad_inputs_get_one_line():
    bad("unknown configuration 'nope'", configs=["eager", "nope"])
    bad("max_new_tokens must be between 1 and 4096", max_new_tokens=0)
    bad("max_new_tokens must be between 1 and 4096", max_new_tokens=5000)
    bad("batch_size must be between 1 and 256", batch_size=257)
    bad("unknown dtype", dtype="fp8")
    bad("unknown synthetic architecture", model="synthetic:nope")
    bad("not a Hub model id", model="https://evil.example/x")
    bad("not a Hub model id", model="org/../../etc")
    bad("not a model directory", model="../../etc")
    bad("exceeds the model's context", prompt_tokens=1000, max_new_tokens=100)
    bad("longer than the model's context", prompt_tokens=2000)


def test_empty_and_huge_prompts_on_a_real_tokenizer():
    with pytest.raises(RequestError, match="the prompt is empty"):
        validate(RunRequest(model="default", prompt="   "))
    with pytest.raises(RequestError, match="longer than the model's context"):
        validate(RunRequest(model="default", prompt="word " * 9000))


def test_unknown_local_path_and_unreachable_hub():
    with pytest.raises(RequestError, match="not a model directory"):
        validate(RunRequest(model="/tmp"))
    with pytest.raises(RequestError) as err:
        validate(RunRequest(model="no-such-org/no-such-model"))
    assert "\n" not in str(err.value)


def test_valid_request_prepares_chat_prompt():
    from transformers import AutoTokenizer

    from arena.models.gguf import default_model_dir

    prepared = validate(RunRequest(model="default", prompt="Hi", configs=["eager"]))
    import torch

    gpu = torch.cuda.is_available()
    assert prepared.dtype == ("fp32" if not gpu else "bf16" if torch.cuda.is_bf16_supported() else "fp16")
    tok = AutoTokenizer.from_pretrained(default_model_dir())
    # the chat template wraps the prompt: the user turn, then the assistant's turn opened
    assert tok.decode(prepared.prompt_ids) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_validation_keeps_a_models_tokenizer_and_reads_it_again_when_its_folder_changes(tmp_path):
    import os

    from arena.execute.prepare import request_tokenizer
    from arena.models.spec import parse_model
    from tests.localmodel import small_local_model

    path = small_local_model(tmp_path / "m")
    spec = parse_model(str(path))
    first = request_tokenizer(spec)
    assert request_tokenizer(spec) is first
    (path / "added.txt").write_text("x")
    later = os.stat(path).st_mtime + 5
    os.utime(path, (later, later))
    assert request_tokenizer(spec) is not first
