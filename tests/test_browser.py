"""A real headless Chromium on the real app: a first run on an empty store (no error toast, no
server traceback), each tab's headings and contents, and a screenshot of each tab
(ARENA_SCREENSHOT_DIR=docs refreshes the README's)."""

import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from tests.appserver import running_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver (scripts/test.sh installs them where apt-get can)",
)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--window-size=1500,2600"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


# Records every error toast the page shows, even one that disappears before we look.
WATCH_TOASTS = """
window.__arenaErrors = [];
new MutationObserver(() => {
  for (const t of document.querySelectorAll('.toast-body.error')) {
    if (!t.dataset.arenaSeen) { t.dataset.arenaSeen = '1'; window.__arenaErrors.push(t.innerText); }
  }
}).observe(document.body, {childList: true, subtree: true});
"""
TABS = ("Arena", "Blind check", "Leaderboard", "Sweep", "Environment")


def _tab(browser, name):
    from selenium.webdriver.common.by import By

    browser.find_element(By.XPATH, f"//button[@role='tab' and normalize-space()='{name}']").click()


def _headings(browser, elem_id):
    from selenium.webdriver.common.by import By

    cells = browser.find_elements(By.CSS_SELECTOR, f"#{elem_id} thead th")
    return [c.text.strip() for c in cells if c.text.strip()]


def _screenshot(browser, tmp_path, name):
    """Each tab's screenshot: under ARENA_SCREENSHOT_DIR (the README's, with `docs`) or tmp_path."""
    folder = Path(os.environ.get("ARENA_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / f"screenshot-{name.lower().replace(' ', '-')}.png"
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_first_run_on_an_empty_store_ends_without_an_error(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    # a fresh install (the store is empty) that keeps prompts and outputs private
    with running_app(tmp_path / "arena.sqlite", env={"ARENA_SHARE_OUTPUTS": "0"}) as app:
        browser.get(app.url)
        wait = WebDriverWait(browser, 60)
        box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#prompt textarea")))
        browser.execute_script(WATCH_TOASTS)
        # before any run the results table has its real headings, not "1 2 3"
        assert _headings(browser, "run-table")[:3] == ["configuration", "status", "dtype"]
        box.clear()
        box.send_keys("Name the capital of France in one word.")
        for name in ("eager", "sdpa"):  # checked by default; the page says so
            assert browser.find_element(By.CSS_SELECTOR, f"#cfg-{name} input[type=checkbox]").is_selected()
        unavailable = browser.find_element(By.CSS_SELECTOR, "#cfg-flash-attention-2 input[type=checkbox]")
        assert not unavailable.is_enabled()
        assert "unavailable" in browser.find_element(By.ID, "cfg-flash-attention-2").text

        browser.find_element(By.ID, "run").click()
        done = 'div.arena-panel[data-config="{}"][data-status="done"]'
        long_wait = WebDriverWait(browser, 300)
        for name in ("eager", "sdpa"):
            long_wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, done.format(name))))
        texts = [browser.find_element(By.CSS_SELECTOR, done.format(n) + " pre.arena-text").text for n in ("eager", "sdpa")]
        assert all(t.strip() for t in texts), texts
        metrics = browser.find_element(By.CSS_SELECTOR, done.format("sdpa") + " .arena-metrics").text
        assert "tok/s" in metrics and "MB" in metrics
        long_wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#speed-plot .js-plotly-plot")))
        long_wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#quality-plot .js-plotly-plot")))
        assert "Finished" in browser.find_element(By.ID, "summary").text
        assert _headings(browser, "run-table")[:2] == ["configuration", "status"]
        _screenshot(browser, tmp_path, "Arena")

        # the leaderboard refreshed after the run (the step that failed on an empty store)
        _tab(browser, "Leaderboard")
        wait.until(lambda d: "Results 1–2 of 2" in d.find_element(By.ID, "lb-caption").text)
        assert _headings(browser, "lb-table")[:7] == ["model", "configuration", "decode tok/s", "TTFT ms",
                                                     "peak MB", "% of BW limit", "agree"]
        _screenshot(browser, tmp_path, "Leaderboard")
        # its CSV: every measurement, no prompt and no generated text
        browser.find_element(By.ID, "lb-csv").click()
        link = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#lb-csv-file a[href]"))
        with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as r:
            csv = r.read().decode()
        header = csv.splitlines()[0].split(",")
        assert "decode_tokens_per_s" in header and "config" in header
        assert "prompt" not in header and "text" not in header and "capital of France" not in csv

        # the blind check is its own tab: the named cards are out of sight there
        _tab(browser, "Blind check")
        wait.until(EC.element_to_be_clickable((By.ID, "blind-draw"))).click()
        wait.until(lambda d: d.find_element(By.ID, "blind-reveal").text)
        assert not any(p.is_displayed() for p in browser.find_elements(By.CSS_SELECTOR, "div.arena-panel"))
        assert "same text" in browser.find_element(By.ID, "blind-reveal").text  # eager = sdpa here: no pair
        _screenshot(browser, tmp_path, "Blind check")

        _tab(browser, "Environment")
        wait.until(lambda d: "Local limits" in d.find_element(By.ID, "env-limits-note").text)
        assert "stay with the session" in browser.find_element(By.ID, "env-limits-note").text
        assert _headings(browser, "env-limits")[:3] == ["limit", "value", "variable"]
        _screenshot(browser, tmp_path, "Environment")
        _tab(browser, "Sweep")
        _screenshot(browser, tmp_path, "Sweep")

        errors = browser.execute_script("return window.__arenaErrors")
        assert errors == [], errors
    log = app.log.read_text(errors="replace")
    assert "Traceback" not in log and "gradio.exceptions.Error" not in log, log[-3000:]


def test_sweep_tab_draws_the_speedup_chart(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from arena.data.store import Store

    db = tmp_path / "arena.sqlite"
    with running_app(db) as app:
        browser.get(app.url)
        wait = WebDriverWait(browser, 60)
        tab = wait.until(EC.element_to_be_clickable((By.XPATH, "//button[@role='tab' and normalize-space()='Sweep']")))
        tab.click()
        wait.until(EC.element_to_be_clickable((By.ID, "sweep-run"))).click()
        WebDriverWait(browser, 300).until(
            lambda d: "Finished" in d.find_element(By.ID, "sweep-status").text)
        WebDriverWait(browser, 30).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, "#sweep-plot .js-plotly-plot")))
        # defaults: tiny-llama, eager and sdpa, batches 1,2,4, lengths 64,128, padding 0 and 0.3
        points = Store(db).results(mode="sweep-forward")
        assert len(points) == 2 * 3 * 2 * 2
        assert {p.config for p in points} == {"eager", "sdpa"}
        assert all(p.status == "ok" and p.latency_ms > 0 for p in points)


def test_cancel_keeps_what_was_measured(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from arena.data.store import Store

    db = tmp_path / "arena.sqlite"
    with running_app(db) as app:
        browser.get(app.url)
        wait = WebDriverWait(browser, 60)
        math = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#cfg-sdpa-math input[type=checkbox]")))
        math.click()  # eager, sdpa, sdpa-math
        browser.find_element(By.ID, "run").click()
        WebDriverWait(browser, 300).until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, 'div.arena-panel[data-config="eager"][data-status="done"]')))
        browser.find_element(By.ID, "cancel").click()
        WebDriverWait(browser, 120).until(lambda d: "Finished" in d.find_element(By.ID, "summary").text)
        statuses = {p.get_attribute("data-config"): p.get_attribute("data-status")
                    for p in browser.find_elements(By.CSS_SELECTOR, "div.arena-panel")}
        assert statuses["eager"] == "done"
        assert "cancelled" in statuses.values(), statuses

    store = Store(db)
    rows = store.results()
    assert [r.config for r in rows if r.status == "ok"][:1] == ["eager"]
    assert all(r.status == "ok" or "cancelled" in r.reason for r in rows)
    assert store.runs()[-1]["status"] == "cancelled"
