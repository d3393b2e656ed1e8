"""Integration on the embedded SmolLM2-135M-Instruct, in spawned workers as the app runs them."""

from arena.core.request import RunRequest
from arena.execute import runner


def test_the_embedded_default_answers_paris_under_eager_sdpa_and_ort_cpu(store):
    events = []
    results = runner.run(
        RunRequest(model="default", prompt="What is the capital of France?",
                   configs=["eager", "sdpa", "ort-cpu"], max_new_tokens=12, repeats=1),
        store=store, on_event=events.append,
    )
    for r in results:
        assert r.status == "ok", (r.config, r.reason)
        assert "Paris" in r.text, (r.config, r.text)
        assert r.env["packages"]["transformers"] and r.hardware
    assert results[1].token_agreement == 1.0
    streamed = "".join(e["text"] for e in events if e["type"] == "token" and e["config"] == "eager")
    assert "Paris" in streamed
    by = {r.config: r for r in results}
    # The answer ends at its end-of-text token (index 7 of 12): the rest is timing's noise, never
    # compared, shown or scored; the live text never showed it either.
    eager = by["eager"]
    cut = eager.token_ids.index(2)
    assert eager.tokens_after_eos == 12 - cut - 1 > 0
    assert "system" not in eager.text and "user" not in eager.text
    assert streamed == eager.text
    for r in results:
        assert r.compared_tokens == cut + 1
        assert r.warmup_peak_memory_mb is not None and r.peak_memory_mb < r.process_peak_memory_mb
    assert by["sdpa"].nll_note.startswith("the baseline's tokens, %d positions" % (cut + 1))
    # ONNX: the export is its own step with its own time, and its weights (the tied embedding once)
    # match PyTorch's figure for the same model within 2%
    assert by["ort-cpu"].export_s is not None and eager.export_s is None
    assert abs(by["ort-cpu"].weights_mb / eager.weights_mb - 1) < 0.02
    assert {r.config: r.compared_tokens for r in store.results()} == {r.config: cut + 1 for r in results}
    # the export is cached: a second run loads the same files and exports nothing
    from arena.core.paths import arena_home

    export = arena_home() / "onnx" / "default-fp32"
    files = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in export.rglob("*")}
    [again] = runner.run(RunRequest(model="default", prompt="Hello", configs=["ort-cpu"], max_new_tokens=2,
                                    repeats=1, isolation="inline"))
    assert again.status == "ok" and again.export_s is not None
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in export.rglob("*")} == files


def test_slow_and_fast_tokenizers_load_and_agree(tmp_path, monkeypatch):
    import shutil

    from transformers import AutoTokenizer

    from arena.models.gguf import default_model_dir, has_gguf_copy

    real = default_model_dir()
    assert not has_gguf_copy(real)
    # A cache converted before the fix (its tokenizer.model a copy of the GGUF file) is mended.
    monkeypatch.setenv("ARENA_HOME", str(tmp_path))
    old = tmp_path / "models" / real.name
    old.mkdir(parents=True)
    for f in real.iterdir():
        if f.name not in ("vocab.json", "merges.txt", "model.safetensors"):
            shutil.copy(f, old / f.name)
    (old / "tokenizer.model").write_bytes(b"GGUF" + bytes(64))
    config = (old / "tokenizer_config.json").read_text().replace('"GPT2Tokenizer"', '"LlamaTokenizer"')
    (old / "tokenizer_config.json").write_text(config)
    assert default_model_dir() == old and not has_gguf_copy(old)
    for folder in (real, old):
        fast = AutoTokenizer.from_pretrained(folder)
        slow = AutoTokenizer.from_pretrained(folder, use_fast=False)
        assert fast.is_fast and not slow.is_fast
        text = "What is the capital of France? Ünïcode 😀\tand  spaces"
        assert slow(text)["input_ids"] == fast(text)["input_ids"]
        chat = [{"role": "user", "content": text}]
        assert (slow.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
                == fast.apply_chat_template(chat, add_generation_prompt=True, tokenize=True))
        assert slow.eos_token_id == fast.eos_token_id == 2
