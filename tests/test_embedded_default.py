"""Integration on the embedded SmolLM2-135M-Instruct, in spawned workers as the app runs them."""

from arena.core.request import RunRequest
from arena.execute import runner


def test_paris_under_eager_sdpa_and_ort_cpu(store):
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
    # the export is cached: a second run does not export again
    from arena.core.paths import arena_home
    exports = list((arena_home() / "onnx").iterdir())
    assert [p.name for p in exports if p.name.startswith("default-fp32")] == ["default-fp32"]
