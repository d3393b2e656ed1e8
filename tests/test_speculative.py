"""Speculative decoding (arena/techniques/speculative.py): lossless under greedy decoding on the
embedded default (prompt lookup, and a tiny random draft model), its guesses counted, its draft's
own load measured, and the runs transformers does not support refused before they start."""

from __future__ import annotations

import time

import pytest

from arena.core.prompts import EDIT_PROMPT
from arena.core.request import RequestError, RunRequest
from arena.execute import prepare, runner
from arena.measure.quality import compared_span
from arena.techniques import compilation, registry, speculative
from tests.localmodel import tiny_draft_for_default


@pytest.fixture(scope="module")
def draft(tmp_path_factory):
    """The default's tokenizer on one random Llama layer: a draft whose guesses are noise."""
    return str(tiny_draft_for_default(tmp_path_factory.mktemp("draft")))


def test_prompt_lookup_and_a_random_draft_keep_the_baselines_tokens_and_count_their_guesses(store, draft):
    results = runner.run(RunRequest(model="default", prompt=EDIT_PROMPT, configs=["sdpa", "prompt-lookup", "assisted"],
                                    max_new_tokens=16, repeats=1, isolation="inline", draft_model=draft), store=store)
    by = {r.config: r for r in results}
    assert all(r.status == "ok" for r in results), [(r.config, r.reason) for r in results]
    base = by["sdpa"]
    span = compared_span(base.token_ids, set())
    for name in ("prompt-lookup", "assisted"):
        # lossless: the same tokens as the plain row over the compared span (or a near-tie, said as such)
        same = by[name].token_ids[:span] == base.token_ids[:span]
        assert same or "near-tie" in by[name].quality_note, (name, by[name].first_divergence, by[name].quality_note)
        assert by[name].token_agreement == 1.0 or "near-tie" in by[name].quality_note
    assert base.acceptance_rate is None and base.tokens_per_step is None and base.draft_load_s is None
    # the answer copies the passage: many of prompt lookup's guesses are taken, several tokens a step
    lookup = by["prompt-lookup"]
    assert lookup.acceptance_rate > 0.2 and lookup.tokens_per_step > 1.5, (lookup.acceptance_rate,
                                                                            lookup.tokens_per_step)
    assert lookup.draft_load_s is None and lookup.draft_memory_mb is None  # no second model
    # a random draft: its guesses are rejected, about one token a step, the draft's own load measured apart
    assisted = by["assisted"]
    assert assisted.acceptance_rate < 0.2 and assisted.tokens_per_step < 1.3, (assisted.acceptance_rate,
                                                                                 assisted.tokens_per_step)
    assert assisted.draft_load_s > 0 and assisted.draft_memory_mb is not None
    # the same footing as every row: decode tok/s from the tokens after the first step
    assert lookup.decode_tokens_per_s > 0 and lookup.ttft_ms > 0
    stored = {r.config: r for r in store.results()}
    assert stored["prompt-lookup"].tokens_per_step == pytest.approx(lookup.tokens_per_step)
    assert stored["assisted"].draft_load_s == pytest.approx(assisted.draft_load_s)


def test_what_transformers_cannot_run_is_refused_before_the_run():
    # synthetic weights, and batch > 1: the rows say why, nothing is loaded
    for request, words in ((RunRequest(model="synthetic:tiny-llama", prompt_tokens=8), "say nothing about acceptance"),
                           (RunRequest(model="default", prompt="Hi", batch_size=2), "one sequence at a time")):
        request.configs, request.max_new_tokens, request.repeats = ["prompt-lookup", "assisted"], 2, 1
        request.isolation = "inline"
        for r in runner.run(request):
            assert r.status == "unavailable" and words in r.reason, (r.config, r.reason)
    # prompt lookup and a draft together: transformers 4.57 would drop the draft; refused, not reduced
    combined = registry.availability(registry.get("assisted+prompt-lookup"), "fp32")
    assert not combined.ok and "drops the draft model" in combined.reason
    # a static cache or the compiled step: rejected guesses cannot be cropped from their cache (refused
    # when such a row is built)
    for compile in (compilation.STATIC_CACHE, compilation.COMPILED_DECODE):
        with pytest.raises(registry.ImpossibleCombination, match="dynamic cache only"):
            registry.Config("x", "x", "speculative", "", speculation=speculative.Speculation("prompt-lookup"),
                            compile=compile)
    assert registry.availability(registry.get("prompt-lookup"), "fp32").ok


def test_a_draft_model_is_checked_before_the_run(tmp_path, draft):
    def check(name: str, configs=("assisted",)):
        return prepare.validate(RunRequest(model="default", prompt="Hi", configs=list(configs), draft_model=name))

    assert check(draft).draft.ref == draft
    assert check("").draft.kind == "default"  # the embedded model: a sanity draft
    assert check("no such model!!", configs=("sdpa",)).draft is None  # no assisted row: not read
    with pytest.raises(RequestError, match="draft model: .*no such model"):
        check("no such model!!")
    with pytest.raises(RequestError, match="draft model: synthetic weights say nothing about acceptance"):
        check("synthetic:tiny-llama")
    # the default's vocabulary size with other tokens: transformers would read its ids as the model's
    other = tiny_draft_for_default(tmp_path / "words", vocab_size=49152, tokenizer="words")
    with pytest.raises(RequestError, match="vocabulary has the model's size .* but other tokens"):
        check(str(other))


def test_the_page_asks_for_a_draft_while_an_assisted_row_is_ticked(tmp_path):
    """A real headless Chromium on the real app: the draft box appears with an assisted row and
    goes with it; an example about a pasted passage fills the prompt. No run."""
    from arena.testing.browser import CHROMIUM, DRIVER, MISSING, chrome
    from tests.appserver import running_app
    from tests.test_browser import Visit

    if not (CHROMIUM and DRIVER):
        pytest.skip(MISSING)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    driver = chrome()
    try:
        with running_app(tmp_path / "arena.sqlite") as app:
            page = Visit(driver, app)
            page.open()

            def draft_shown() -> bool:  # read in one script: Gradio replaces the element as it shows or hides it
                return driver.execute_script(
                    "return [...document.querySelectorAll('#draft-model')].some(e => e.offsetParent !== null)")

            assert not draft_shown()
            page.open_accordion("family-speculative")
            page.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#cfg-prompt-lookup input"))).click()
            time.sleep(1)
            assert not draft_shown()  # prompt lookup needs no draft
            page.el("#cfg-assisted input").click()
            page.wait.until(lambda d: draft_shown(), "the draft box did not appear with assisted ticked")
            assert page.el("#draft-model input, #draft-model textarea").get_attribute("value") == "default"
            page.el("#cfg-assisted input").click()
            page.wait.until(lambda d: not draft_shown(), "the draft box stayed after assisted was unticked")
            page.d.find_element(By.XPATH, "//*[normalize-space()='Edit a passage (prompt lookup shines)']").click()
            page.wait.until(lambda d: "lighthouse" in page.el("#prompt textarea").get_attribute("value"))
            page.check_console()
            page.check_toasts()
            page.assert_no_problems()
    finally:
        driver.quit()


def test_a_draft_with_another_vocabulary_goes_through_both_tokenizers(tmp_path, draft):
    """Universal assisted decoding: a word-level model of 4,096 words drafted by a model of the
    default's tokenizer (49,152 tokens); the guesses are translated through text, the tokens stay."""
    from tests.localmodel import small_local_model

    model = str(small_local_model(tmp_path / "words"))
    results = runner.run(RunRequest(model=model, prompt=" ".join(f"w{i}" for i in range(1, 40)),
                                    configs=["sdpa", "assisted"], max_new_tokens=8, repeats=1, isolation="inline",
                                    draft_model=draft))
    by = {r.config: r for r in results}
    assert all(r.status == "ok" for r in results), [(r.config, r.reason) for r in results]
    assert by["assisted"].token_ids == by["sdpa"].token_ids
    assert by["assisted"].tokens_per_step is not None and by["assisted"].draft_load_s > 0
