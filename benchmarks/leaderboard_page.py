"""The Leaderboard tab as a visitor meets it: the real app on a store of N results and a few
votes, in headless Chromium; times opening the tab and a filter change, from the click until
the page answers and has not changed for 0.5 s (wall) and the browser's script time in between (Chrome's
ScriptDuration), each `--repeat` times. `leaderboard_scale.py` times the queries and figures on
a large store; this times the whole page path, where a small store took 8-17 s before.

    python -m benchmarks.leaderboard_page                  # 100 results (one page), 5 votes
    python -m benchmarks.leaderboard_page --rows 1000 --repeat 5

Needs Debian's chromium and chromium-driver."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


from arena.core.results import Result
from arena.data.store import Store, now
from arena.testing.appserver import running_app
from arena.testing.browser import chrome, script_s, wait_quiet_script

QUIET = wait_quiet_script(120)


def fill(db: Path, rows: int, votes: int) -> None:
    store = Store(db)
    store.add_many(Result(run_id=f"r{i // 2}", config=("eager", "sdpa")[i % 2], status="ok", baseline="eager",
                          model_id="default", model_display="SmolLM2-135M-Instruct (embedded)", hardware="CPU",
                          dtype="fp32", family="attention", mode="arena", created_at=now(),
                          decode_tokens_per_s=30.0 + i % 11, ttft_ms=20.0 + i % 5, peak_memory_mb=700.0 + i % 13,
                          prompt="p", text="t", batch_size=1, env={}, settings={}) for i in range(rows))
    for i in range(votes):
        store.add_vote(dict(pair_id=f"p{i}", run_id="r0", model_id="default", prompt="p", config_a="eager",
                            config_b="sdpa", winner="ab"[i % 2], created_at=now()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--votes", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="filter changes timed")
    args = ap.parse_args()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    tmp = tempfile.TemporaryDirectory()
    db = Path(tmp.name) / "arena.sqlite"
    fill(db, args.rows, args.votes)
    figures: dict[str, object] = {"rows": args.rows, "votes": args.votes}
    with running_app(db) as app:
        browser = chrome(script_timeout_s=180)

        def timed(action) -> tuple[float, float]:
            before, start = script_s(browser), time.monotonic()
            action()
            browser.execute_async_script(QUIET)
            # until the page is responsive and has been quiet for 0.5 s (the wait's own window)
            return round(time.monotonic() - start - 0.5, 2), round(script_s(browser) - before, 2)

        try:
            browser.get(app.url)
            WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#prompt textarea"))
            browser.execute_async_script(QUIET)
            tab = browser.find_element(By.XPATH, "//button[@role='tab' and normalize-space()='Leaderboard']")
            figures["open_wall_s"], figures["open_script_s"] = timed(tab.click)
            caption = browser.find_element(By.ID, "lb-caption").text
            print(f"open the tab: {figures['open_wall_s']} s until quiet, {figures['open_script_s']} s of script "
                  f"({caption[:40]}…)", flush=True)
            walls, scripts = [], []
            for _ in range(args.repeat):
                box = browser.find_element(By.XPATH, "//label[contains(., 'include failed')]//input")
                wall, script = timed(box.click)
                walls.append(wall)
                scripts.append(script)
                print(f"filter change: {wall} s until quiet, {script} s of script", flush=True)
            figures["filter_wall_s_median"] = statistics.median(walls)
            figures["filter_script_s_median"] = statistics.median(scripts)
        finally:
            browser.quit()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
