"""A real headless Chromium on the real app: type a prompt, run two configurations, see both
outputs and the charts. Saves a screenshot (ARENA_SCREENSHOT=path to keep it elsewhere)."""

import os
import shutil
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


def test_page_runs_two_configurations(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    with running_app(tmp_path / "arena.sqlite") as app:
        browser.get(app.url)
        wait = WebDriverWait(browser, 60)
        box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#prompt textarea")))
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

        # blind check: two outputs without names, names only after the vote
        browser.find_element(By.CSS_SELECTOR, "#blind button").click()  # open the accordion
        wait.until(EC.element_to_be_clickable((By.ID, "blind-draw"))).click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#blind-a textarea").get_attribute("value"))
        reveal = browser.find_element(By.ID, "blind-reveal")
        assert "sdpa" not in reveal.text and "eager" not in reveal.text
        browser.find_element(By.ID, "vote-tie").click()
        wait.until(lambda d: "was" in d.find_element(By.ID, "blind-reveal").text)
        revealed = browser.find_element(By.ID, "blind-reveal").text
        assert "eager" in revealed and "sdpa" in revealed

        shot = Path(os.environ.get("ARENA_SCREENSHOT") or tmp_path / "arena.png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000


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
