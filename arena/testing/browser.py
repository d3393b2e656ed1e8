"""What the browser checks and the page benchmarks share (tests/test_browser_leaderboard.py,
benchmarks/leaderboard_page.py): a script for Selenium's execute_async_script that resolves once
the page has not changed for 500 ms, with the seconds it waited."""

from __future__ import annotations


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
