"""Property-based tests of request validation: whatever a request holds, validate either
returns a PreparedRun within the server's limits or raises RequestError with one short line;
no other exception ever escapes. And no request can make a model's custom code run."""

import json
import shutil
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from arena.core.limits import ServerLimits
from arena.core.request import RequestError, RunRequest
from arena.execute import runner
from arena.execute.prepare import PreparedRun, validate
from arena.models.dtypes import DTYPES
from arena.models.gguf import default_model_dir
from arena.techniques import registry

PROPERTY = settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
LIMITS = [ServerLimits(), ServerLimits.public(), ServerLimits(allow_local_models=False, max_configs=3,
                                                              max_prompt_tokens=64, max_new_tokens=16)]

junk = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.complex_numbers(), st.text(max_size=8),
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                 st.just(10**400), st.fractions(), st.decimals())
numbers = st.one_of(st.integers(-10, 5000), st.integers(), st.floats(), st.floats(0, 2), junk)
# Any code point, lone surrogates and control characters included.
any_char = st.characters(exclude_categories=())
any_text = st.text(any_char, max_size=40)
control_text = st.text(st.sampled_from([chr(c) for c in range(32)] + ["\x7f", "\u2028", "\u202e", "\ufeff"]),
                       min_size=1, max_size=20)
huge_text = st.builds(lambda piece, n: piece * n, st.text(any_char, min_size=1, max_size=4),
                      st.integers(1_000, 120_000))
prompts = st.one_of(any_text, control_text, huge_text, st.sampled_from(["Hi", "   ", ""]), junk)

PATHISH = ["../../etc", "../../../etc/passwd", "..", ".", "/", "/etc", "/etc/passwd", "/tmp", "~", "~root",
           "~no-such-user/x", "./", "C:\\Windows\\System32", "\\\\server\\share\\m", "org/../../etc",
           "a/" + "b" * 5000, "x\x00y", "file:///etc/passwd", "file://localhost/etc", "http://evil.example/m",
           "https://huggingface.co/org/model", "hf://org/model", "ssh://git@host/repo", "org/name/extra",
           "synthetic:../../etc/passwd", "synthetic:../architectures/tiny-llama", "synthetic:", "default ",
           "DEFAULT", "synthetic:tiny-llama", "default", "HuggingFaceTB/SmolLM2-135M", "org/name"]
path_parts = st.lists(st.sampled_from(["..", ".", "etc", "passwd", "~", "", "a" * 300, "\x00", "%2e%2e", "models"]),
                      min_size=1, max_size=6)
model_ids = st.one_of(
    st.sampled_from(PATHISH),
    path_parts.map("/".join),
    path_parts.map(lambda parts: "/" + "/".join(parts)),
    st.builds(lambda scheme, rest: scheme + rest, st.sampled_from(["http://", "https://", "file://", "ftp://"]),
              st.text(string.printable, max_size=30)),
    st.text(string.ascii_letters + string.digits + "-_./:~", max_size=30),
    any_text,
    junk,
)
names = st.sampled_from(list(registry.REGISTRY) + ["", " ", "nope", "eager ", "EAGER", "sdpa,eager", "x" * 500])
config_lists = st.one_of(st.lists(names, max_size=30), st.lists(st.one_of(names, junk), max_size=4),
                         st.text(max_size=40), junk)


def check(req: RunRequest, limits: ServerLimits) -> PreparedRun | None:
    """The property itself: a PreparedRun within limits, or one clear line."""
    try:
        prepared = validate(req, limits=limits)
    except RequestError as exc:
        message = str(exc)
        event("refused")
        assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
        assert len(message) <= 1000 and "Traceback" not in message, message[:200]
        return None
    event("validated")
    r = prepared.request
    assert 1 <= r.max_new_tokens <= limits.max_new_tokens and 1 <= r.batch_size <= limits.max_batch
    assert 1 <= r.repeats <= limits.max_repeats
    assert len(prepared.prompt_ids) + r.max_new_tokens <= prepared.context
    assert limits.max_prompt_tokens is None or len(prepared.prompt_ids) <= limits.max_prompt_tokens
    assert limits.max_configs is None or len(prepared.config_names) <= limits.max_configs
    assert prepared.config_names and all(n in registry.REGISTRY for n in prepared.config_names)
    assert limits.model_allowed(prepared.spec.id)
    if not limits.allow_local_models:
        assert prepared.spec.kind != "local"
    return prepared


# Each setting: a plausible value, or anything at all (two settings at a time broken at most,
# so that both outcomes are common).
PLAUSIBLE = {
    "model": st.sampled_from(["default", "synthetic:tiny-llama", "synthetic:llama-2-7b"]),
    "prompt": st.one_of(st.text(min_size=1, max_size=200), st.sampled_from(["Hi", "What is 2+2?"])),
    "configs": st.one_of(st.lists(st.sampled_from(list(registry.REGISTRY)), min_size=1, max_size=5),
                         st.sampled_from(["eager,sdpa", "sdpa"])),
    "max_new_tokens": st.one_of(st.integers(1, 16), st.sampled_from([1.0, 8.0])),
    "batch_size": st.integers(1, 8), "repeats": st.integers(1, 5), "seed": st.integers(0, 2**31 - 1),
    "temperature": st.floats(0.01, 10), "top_p": st.floats(0.01, 1), "prompt_tokens": st.integers(1, 64),
    "timeout_s": st.floats(1, 86400), "dtype": st.sampled_from(DTYPES), "do_sample": st.booleans(),
    "isolation": st.sampled_from(["process", "inline"]),
}
ANYTHING = {
    "model": model_ids, "prompt": prompts, "configs": config_lists, "dtype": junk, "do_sample": junk,
    "isolation": junk,
}


@st.composite
def requests(draw) -> RunRequest:
    broken = draw(st.sets(st.sampled_from(sorted(PLAUSIBLE)), max_size=2))
    values = {k: draw(ANYTHING.get(k, numbers) if k in broken else strategy) for k, strategy in PLAUSIBLE.items()}
    return RunRequest(**values)


@PROPERTY
@given(req=requests(), limits=st.sampled_from(LIMITS))
def test_any_request_validates_or_gets_one_clear_line(req, limits):
    check(req, limits)


@PROPERTY
@given(prompt=st.one_of(any_text, control_text, huge_text, st.text(min_size=1, max_size=2000)),
       limits=st.sampled_from(LIMITS))
def test_any_prompt_on_the_real_tokenizer(prompt, limits):
    prepared = check(RunRequest(model="default", prompt=prompt, configs=["eager"], max_new_tokens=8, repeats=1),
                     limits)
    if prepared is not None:
        assert prepared.request.prompt == prompt  # validated as given, never silently altered


@PROPERTY
@given(model=model_ids)
def test_paths_and_urls_are_refused_unless_local_paths_are_allowed(model):
    for limits in (ServerLimits(allow_local_models=False), ServerLimits.public()):
        prepared = check(RunRequest(model=model, prompt="Hi", configs=["eager"], max_new_tokens=8, repeats=1),
                         limits)
        if prepared is not None:
            assert prepared.spec.kind in ("default", "synthetic"), prepared.spec  # no Hub here: offline
    if isinstance(model, str) and "://" in model:
        with pytest.raises(RequestError):
            validate(RunRequest(model=model, prompt="Hi", configs=["eager"]), limits=ServerLimits())


@PROPERTY
@given(data=st.dictionaries(
    st.one_of(st.sampled_from(["model", "prompt", "configs", "max_new_tokens", "batch_size", "dtype", "repeats",
                               "trust_remote_code", "__class__", "local_files_only", "revision"]), st.text(max_size=8)),
    st.one_of(numbers, st.booleans(), st.text(max_size=20)), max_size=6))
def test_requests_from_untyped_input_refuse_unknown_settings(data):
    try:
        req = RunRequest.from_dict(data)
    except RequestError as exc:
        unknown = [k for k in data if k not in RunRequest.__dataclass_fields__]
        assert unknown and "unknown setting" in str(exc) and "\n" not in str(exc)
        return
    assert "trust_remote_code" not in data
    check(req, ServerLimits.public())


def test_trust_remote_code_is_not_a_request_setting():
    with pytest.raises(RequestError, match="unknown setting 'trust_remote_code'"):
        RunRequest.from_dict({"model": "default", "trust_remote_code": True})
    with pytest.raises(RequestError, match="a request must be a mapping"):
        RunRequest.from_dict(["model", "default"])


# ------------------------------------------------------------ custom code in a model directory

EVIL = '''
import pathlib
pathlib.Path(__file__).resolve().parent.joinpath("IMPORTED").write_text("custom code ran")
pathlib.Path({marker!r}).write_text("custom code ran")
raise RuntimeError("custom code must never be imported")
'''


def _model_dir(root: Path, model_type: str, marker: Path) -> Path:
    """A real small Llama checkpoint whose config and tokenizer point at custom code."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer_dir = default_model_dir()  # the embedded SmolLM2's tokenizer files
    path = root / model_type
    path.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, path / name)
    config = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                         num_key_value_heads=1, num_hidden_layers=1, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    data = json.loads((path / "config.json").read_text())
    data["model_type"] = model_type
    data["architectures"] = ["EvilForCausalLM"]
    data["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilForCausalLM"}
    (path / "config.json").write_text(json.dumps(data))
    tok = json.loads((path / "tokenizer_config.json").read_text())
    tok["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}
    (path / "tokenizer_config.json").write_text(json.dumps(tok))
    (path / "evil.py").write_text(EVIL.format(marker=str(marker)))
    return path


def test_custom_code_in_a_local_model_is_never_imported(tmp_path, store):
    marker = tmp_path / "custom-code-ran"
    # A known architecture that also names custom code: the built-in code loads it; evil.py is
    # never imported, by validation or by real measured runs through each kind of loader
    # (transformers, bitsandbytes quantizing while loading, ONNX export and ONNX Runtime).
    known = _model_dir(tmp_path, "llama", marker)
    prepared = validate(RunRequest(model=str(known), prompt="Hi", configs=["eager", "bnb-8bit", "ort-cpu"],
                                   max_new_tokens=3, repeats=1, isolation="inline"),
                        limits=ServerLimits(allow_local_models=True))
    for result in runner.execute(prepared, store=store):
        assert result.status == "ok", (result.config, result.reason)
        assert len(result.token_ids) == 3
    # An architecture only custom code could provide: refused in one line.
    custom = _model_dir(tmp_path, "arena-evil-arch", marker)
    with pytest.raises(RequestError) as err:
        validate(RunRequest(model=str(custom), prompt="Hi", configs=["eager"]), limits=ServerLimits())
    assert "custom code" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists() and not (known / "IMPORTED").exists() and not (custom / "IMPORTED").exists()
