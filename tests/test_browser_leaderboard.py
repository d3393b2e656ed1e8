"""The Leaderboard tab in a real headless Chromium on the real app, over a real store: it opens
and redraws on a filter in about a second of script (it took 5-17 s when the tab held Gradio
Dataframes and a select listener), shows every row of the page, the filters wrap instead of
scrolling sideways, the charts carry their own labels, and the quality table names the model as
the results table does, with "too few votes" for an interval from one vote."""


import pytest

from arena.core.results import Result
from arena.data.store import Store, now
from arena.testing.appserver import running_app
from arena.testing.browser import CHROMIUM, DRIVER, MISSING, chrome, script_s, wait_quiet_script

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason=MISSING)
DISPLAY = "SmolLM2-135M-Instruct (embedded)"
HARDWARE = "CPU: AMD EPYC 7B13 64-Core Processor (2 cores)"
# Script time (Chrome's own ScriptDuration) one open or one filter change may take; measured at
# 0.3-2 s on a busy 2-core machine, against 5-17 s before the tab lost its Dataframes.
SCRIPT_BUDGET_S = 3.5

WAIT_QUIET = wait_quiet_script(60)
# Elements of the tab that scroll sideways, other than the results table's own scroll box.
SIDEWAYS = """
const out = [];
for (const el of arguments[0].querySelectorAll('*')) {
  if (el.offsetParent === null || el.closest('.lb-scroll') || el.closest('.js-plotly-plot')) continue;
  const style = getComputedStyle(el);
  if (el.scrollWidth > el.clientWidth && ['auto', 'scroll'].includes(style.overflowX))  // 1 px is a scrollbar
    out.push(`${el.tagName}.${el.className} (${el.scrollWidth} > ${el.clientWidth})`);
}
return out;
"""


def _fill(db, runs: int = 50) -> None:
    store = Store(db)
    for run in range(runs):
        for cfg, speed in (("eager", 30.0 + run % 7), ("sdpa", 35.0 + run % 5)):
            store.add(Result(run_id=f"r{run}", config=cfg, status="ok", baseline="eager", model_id="default",
                             model_display=DISPLAY, hardware=HARDWARE, dtype="fp32", family="attention",
                             mode="arena", created_at=now(), decode_tokens_per_s=speed, ttft_ms=20.0 + run % 3,
                             peak_memory_mb=700.0, prompt="p", text="t", batch_size=1, env={}, settings={}))
    store.add_vote(dict(pair_id="p0", run_id="r0", model_id="default", prompt="p", config_a="eager",
                        config_b="sdpa", winner="b", created_at=now()))


@pytest.fixture
def browser():
    driver = chrome()
    yield driver
    driver.quit()


def _timed(browser, action) -> float:
    """Script seconds from `action` until the page is quiet again."""
    before = script_s(browser)
    action()
    browser.execute_async_script(WAIT_QUIET)
    return script_s(browser) - before


def test_leaderboard_tab_is_quick_whole_and_labelled(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    db = tmp_path / "arena.sqlite"
    _fill(db)
    with running_app(db) as app:
        browser.get(app.url)
        wait = WebDriverWait(browser, 90)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#prompt textarea"))
        browser.execute_async_script(WAIT_QUIET)
        tab = browser.find_element(By.XPATH, "//button[@role='tab' and normalize-space()='Leaderboard']")
        opened = _timed(browser, tab.click)
        caption = browser.find_element(By.ID, "lb-caption").text
        assert "Results 1–100 of 100" in caption, caption
        # every row of the page is in the page (plain HTML, nothing virtualized away)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#lb-table tbody tr")) == 100
        headings = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#lb-table thead th")]
        assert headings[:3] == ["model", "configuration", "decode tok/s"]
        # a click on a heading sorts the page by it
        speeds = lambda: [float(td.text) for td in browser.find_elements(  # noqa: E731
            By.CSS_SELECTOR, "#lb-table tbody tr td:nth-child(3)")]
        assert speeds() == sorted(speeds(), reverse=True)
        browser.find_element(By.XPATH, "//*[@id='lb-table']//th[normalize-space()='decode tok/s']").click()
        assert speeds() == sorted(speeds())

        toggle = browser.find_element(By.XPATH, "//label[contains(., 'include failed')]//input")
        toggled = _timed(browser, toggle.click)
        assert max(opened, toggled) < SCRIPT_BUDGET_S, \
            f"script seconds: opening the tab {opened:.2f}, a filter change {toggled:.2f}"

        # nothing but the results table scrolls sideways; the filters wrap
        lb = browser.find_element(By.ID, "lb-table").find_element(By.XPATH, "ancestor::*[@role='tabpanel'][1]")
        assert browser.execute_script(SIDEWAYS, lb) == []
        # the charts say what they are, not "Plot"
        labels = {elem: browser.find_element(By.CSS_SELECTOR, f"#{elem} [data-testid='block-label']").text
                  for elem in ("lb-bubbles", "lb-speedups", "lb-quality-plot")}
        assert all(text and text != "Plot" for text in labels.values()), labels
        # the quality table: the model by the name the results table uses, no interval from one vote
        quality = browser.find_element(By.ID, "lb-quality").text
        assert DISPLAY in quality and "too few votes (1 of 10)" in quality, quality
