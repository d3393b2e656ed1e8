"""What the browser checks and the page benchmarks share (tests/test_browser.py,
tests/test_browser_leaderboard.py, benchmarks/leaderboard_page.py): headless Debian Chromium
through Selenium, the page's script time, and a script for Selenium's execute_async_script that
resolves once the page has not changed for 500 ms, with the seconds it waited."""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
MISSING = "needs Debian's chromium and chromium-driver (scripts/test.sh installs them where apt-get can)"


def chrome(script_timeout_s: float = 90.0) -> Any:
    """A headless Chromium at 1400x1000 (a laptop's window) with its console log kept and
    DevTools' performance metrics on; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--window-size=1400,1000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_script_timeout(script_timeout_s)
    driver.execute_cdp_cmd("Performance.enable", {})
    return driver


def script_s(driver: Any) -> float:
    """Seconds of script the page has run so far (DevTools' ScriptDuration)."""
    metrics = driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "ScriptDuration")


def wait_quiet_script(max_s: float = 60.0) -> str:
    """The script: a MutationObserver on the whole page; it gives up after `max_s` seconds."""
    return """
const done = arguments[arguments.length - 1];
const t0 = performance.now(); let last = t0;
const obs = new MutationObserver(() => { last = performance.now(); });
obs.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
const tick = () => {
  const now = performance.now();
  if (now - last > 500 || now - t0 > %d) { obs.disconnect(); done((now - t0) / 1000); }
  else setTimeout(tick, 50);
};
setTimeout(tick, 600);
""" % int(max_s * 1000)
