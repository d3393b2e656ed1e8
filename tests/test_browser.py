"""A real headless Chromium on the real app (`python app.py`), as a first visitor uses it.

Each test collects every defect it sees and fails listing them all: a browser console error or
warning (Gradio's "measuring" debug line included), an error toast left on the page, a traceback
or notice in the server log, a results table showing fewer rows than the run had, a card and the
table disagreeing on a field both show, an idle page spending more than 0.2 s of script per 5 s
(DevTools performance metrics over 10 s), and the server leaking semaphores when stopped.
The first test takes each tab's screenshot (ARENA_SCREENSHOT_DIR=docs refreshes the README's)."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from arena.testing.browser import CHROMIUM, DRIVER, MISSING, chrome, script_s
from tests.appserver import running_app

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason=MISSING)

IDLE_SCRIPT_S_PER_5S = 0.2
TABS = ("Arena", "Blind check", "Leaderboard", "Sweep", "Environment")
# Records every error toast the page shows, even one that disappears before we look.
WATCH_TOASTS = """
window.__arenaErrors = [];
new MutationObserver(() => {
  for (const t of document.querySelectorAll('.toast-body.error')) {
    if (!t.dataset.arenaSeen) { t.dataset.arenaSeen = '1'; window.__arenaErrors.push(t.innerText); }
  }
}).observe(document.body, {childList: true, subtree: true});
"""
# Rows a table draws (a Dataframe's virtual window, a plain HTML table's body), as {heading: cell text}.
TABLE_ROWS = """
const root = document.getElementById(arguments[0]);
const heads = [...root.querySelectorAll('thead th')].map(th => th.innerText.trim()).filter(Boolean);
return [...root.querySelectorAll('.virtual-row, table.lb-html tbody tr')].map(tr => {
  const cells = [...tr.querySelectorAll('.body-cell, td')].map(td => td.innerText.trim());
  return Object.fromEntries(heads.map((h, i) => [h, cells[i]]));
});
"""
# What each card shows: its status and the fields the table shows too.
CARDS = """
return [...document.querySelectorAll('div.arena-panel')].map(p => ({
  config: p.dataset.config, status: p.dataset.status,
  bar: p.querySelector('.arena-bar > div').style.width,
  fields: Object.fromEntries([...p.querySelectorAll('[data-field]')].map(
    x => [x.dataset.field, (x.querySelector('.v') || x).innerText.trim()])),
  agreement: p.querySelector('.arena-quality') ? p.querySelector('.arena-quality').dataset.agreement : null,
  unstable: p.dataset.unstable === '1', over_limit: p.dataset.overLimit === '1',
}));
"""
# A card's field -> the run table's heading for it.
SHARED = {"ttft_ms": "TTFT ms", "decode_tokens_per_s": "decode tok/s", "peak_memory_mb": "peak MB",
          "load_s": "weights load s"}
# A plot's traces as drawn (Plotly keeps them on its element): name, x and y of each.
PLOT_TRACES = """
const plot = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
return plot && plot.data ? plot.data.map(t => ({name: t.name || '', x: [...(t.x || [])], y: [...(t.y || [])]})) : null;
"""
# The boxes of a plot's titles, subplot titles and legend, and whether each pair overlaps.
TITLE_OVERLAPS = """
const plot = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
if (!plot) return null;
const boxes = [...plot.querySelectorAll('.infolayer .gtitle, .infolayer .annotation-text-g, .infolayer .legend')]
  .map(el => ({text: (el.textContent || '').trim().slice(0, 80), r: el.getBoundingClientRect()}))
  .filter(b => b.r.width > 0 && b.r.height > 0);
const out = [];
for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
  const a = boxes[i].r, b = boxes[j].r;
  if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1)
    out.push(boxes[i].text + ' | ' + boxes[j].text);
}
return out;
"""
# Whether an element lies inside the window as it is scrolled now.
IN_VIEW = """
const r = document.querySelector(arguments[0]).getBoundingClientRect();
return r.height > 0 && r.top >= -2 && r.bottom <= window.innerHeight + 2;
"""
SERVER_LOG_PROBLEMS = ("Traceback", "gradio.exceptions.Error", "StarletteDeprecationWarning", "Plausible",
                       "leaked semaphore")


@pytest.fixture
def browser():
    driver = chrome()
    yield driver
    driver.quit()


class Visit:
    """One visitor's page, and every defect seen on it (checked at the end, all at once)."""

    def __init__(self, browser, app) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.d, self.app, self.problems = browser, app, []
        self.wait = WebDriverWait(browser, 60)
        self.long_wait = WebDriverWait(browser, 600)

    def open(self) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC

        self.d.get(self.app.url)
        self.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#prompt textarea")))
        self.d.execute_script(WATCH_TOASTS)

    def el(self, css: str):
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.CSS_SELECTOR, css)

    def els(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.d.find_elements(By.CSS_SELECTOR, css)

    def tab(self, name: str) -> None:
        from selenium.webdriver.common.by import By

        self.d.find_element(By.XPATH, f"//button[@role='tab' and normalize-space()='{name}']").click()

    def open_accordion(self, elem_id: str) -> None:
        if not self.els(f"#{elem_id} .label-wrap.open"):
            self.el(f"#{elem_id} .label-wrap").click()

    def type_prompt(self, text: str) -> None:
        """Replace the prompt as a visitor does (a cleared box that fires no input event keeps
        its old value on the server)."""
        from selenium.webdriver.common.keys import Keys

        box = self.el("#prompt textarea")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.BACKSPACE)
        if text:
            box.send_keys(text)

    def set_number(self, elem_id: str, value: int) -> None:
        from selenium.webdriver.common.keys import Keys

        box = self.wait.until(lambda d: self.el(f"#{elem_id} input[type=number]"))
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(str(value), Keys.TAB)

    def idle(self, when: str, seconds: float = 10.0) -> float:
        """Script seconds per 5 s on the page left alone (DevTools' ScriptDuration)."""
        start = script_s(self.d)
        time.sleep(seconds)
        per_5s = (script_s(self.d) - start) * 5 / seconds
        if per_5s > IDLE_SCRIPT_S_PER_5S:
            self.problems.append(f"idle page {when}: {per_5s:.2f} s of script per 5 s (limit {IDLE_SCRIPT_S_PER_5S})")
        return per_5s

    def summary(self) -> str:
        return self.el("#summary").text

    def wait_for_summary(self, *words: str) -> str:
        self.long_wait.until(lambda d: any(w in self.summary() for w in words),
                             f"the summary never said {' or '.join(words)}: {self.summary()!r}")
        return self.summary()

    def rows(self, elem_id: str) -> list[dict[str, str]]:
        return self.d.execute_script(TABLE_ROWS, elem_id)

    def check_rows(self, elem_id: str, expected: int, what: str) -> list[dict[str, str]]:
        rows = []
        deadline = time.monotonic() + 10  # the table draws its rows a frame or two after its value
        while time.monotonic() < deadline and len(rows) < expected:
            rows = self.rows(elem_id)
            time.sleep(0.25)
        if len(rows) != expected:
            self.problems.append(f"{what} shows {len(rows)} rows, the run had {expected}")
        return rows

    def cards(self) -> list[dict]:
        return self.d.execute_script(CARDS)

    def check_cards_match_table(self) -> None:
        """Every field a card and the run's table both show reads the same in both."""
        table = {r.get("configuration"): r for r in self.rows("run-table")}
        for card in self.cards():
            row = table.get(card["config"])
            if row is None:
                if card["status"] not in ("cancelled", "unavailable") or card["fields"]:
                    self.problems.append(f"{card['config']}: a card with no row in the table")
                continue
            pairs = [("status", card["status"], row.get("status"))]
            pairs += [(f, card["fields"][f], row.get(SHARED[f])) for f in SHARED if f in card["fields"]]
            if card["agreement"]:
                pairs.append(("agreement", card["agreement"], row.get("agree")))
            for field, on_card, in_table in pairs:
                if on_card != in_table:
                    self.problems.append(
                        f"{card['config']}: {field} {on_card!r} on the card, {in_table!r} in the table")

    def traces(self, elem_id: str) -> list[dict]:
        return self.d.execute_script(PLOT_TRACES, elem_id) or []

    def check_titles(self, *elem_ids: str) -> None:
        """No chart's title, subplot title or legend runs over another."""
        for elem_id in elem_ids:
            for pair in self.d.execute_script(TITLE_OVERLAPS, elem_id) or []:
                self.problems.append(f"{elem_id}: chart titles overlap: {pair}")

    def check_limit_flags(self) -> None:
        """A result above its memory-bandwidth limit is flagged in the table and on its card."""
        cards = {c["config"]: c for c in self.cards()}
        for row in self.rows("run-table"):
            cell, config = row.get("% of BW limit") or "–", row.get("configuration")
            flagged = "over its limit" in cell
            value = float(cell.split()[0].replace(",", "")) if cell.split()[0] not in ("–", "") else 0.0
            if value > 100 and not flagged:
                self.problems.append(f"{config}: {cell}% of its limit, unflagged")
            card = cards.get(config)
            if card is not None and card["over_limit"] != flagged:
                self.problems.append(f"{config}: over its limit in the table {flagged}, on the card {card['over_limit']}")

    def check_speedups(self, baseline: str) -> None:
        """No speedup is drawn from an unstable row (or from any row when the baseline is unstable);
        the card and the table agree on the verdict."""
        rows = {r.get("configuration"): r for r in self.rows("run-table")}
        unstable = {c for c, r in rows.items() if r.get("stable") == "unstable"}
        cards = {c["config"]: c for c in self.cards()}
        for config in set(cards) & set(rows):
            if cards[config]["unstable"] != (config in unstable):
                self.problems.append(f"{config}: unstable in the table {config in unstable}, on the card "
                                     f"{cards[config]['unstable']}")
        drawn = [x for t in self.traces("quality-plot") if t["name"] == "decode speedup" for x in t["x"]]
        for config in drawn:
            if config in unstable or baseline in unstable:
                self.problems.append(f"a speedup is drawn for {config}, from an unstable row"
                                     + (" (the baseline)" if config not in unstable else ""))

    def check_blind_pair(self) -> None:
        """The blind check's message is in the window; vote buttons are on only with a pair, and
        a pair never has two texts a reader cannot tell apart."""
        self.check_in_view("#blind-status", "the blind check's message")
        self.check_in_view("#blind-votes", "the blind check's vote buttons")
        votes = [self.el(f"#vote-{v}") for v in ("a", "b", "tie", "both_bad")]
        a = self.el("#blind-a textarea").get_attribute("value")
        b = self.el("#blind-b textarea").get_attribute("value")
        on = [v.is_enabled() for v in votes]
        if any(on) and " ".join(a.split()) == " ".join(b.split()):
            self.problems.append(f"a vote is asked on two equal texts: {a[:80]!r}")
        if any(on) and not (a and b):
            self.problems.append("vote buttons enabled with no pair shown")

    def check_in_view(self, css: str, what: str) -> None:
        if not self.d.execute_script(IN_VIEW, css):
            self.problems.append(f"{what} is outside the window")

    def check_console(self) -> None:
        for entry in self.d.get_log("browser"):
            if entry["level"] in ("SEVERE", "WARNING") or '"measuring"' in entry["message"]:
                self.problems.append(f"browser console {entry['level']}: {entry['message'][:300]}")

    def check_toasts(self) -> None:
        shown = self.d.execute_script("return window.__arenaErrors") or []
        left = [t.text for t in self.els(".toast-body.error") if t.is_displayed()]
        self.problems += [f"error toast: {t}" for t in shown] + [f"error toast left on the page: {t}" for t in left]

    def screenshot(self, folder: Path, name: str) -> None:
        """The tab as a tall window shows it (the README's pictures)."""
        shot = folder / f"screenshot-{name.lower().replace(' ', '-')}.png"
        size = self.d.get_window_size()
        self.d.set_window_size(1400, 2000)
        self.d.execute_script("window.scrollTo(0, 0)")
        time.sleep(1)  # charts redraw at the new width
        assert self.d.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        self.d.set_window_size(size["width"], size["height"])

    def stop_and_check_server(self) -> None:
        """Stop the server as a container stop does (SIGTERM) and read its log."""
        self.app.kill(signal.SIGTERM)
        time.sleep(2)  # multiprocessing's resource tracker reports leaks just after the server exits
        log = self.app.log.read_text(errors="replace")
        for word in SERVER_LOG_PROBLEMS:
            if word in log:
                at = log.index(word)
                self.problems.append(f"server log: {log[max(0, at - 300):at + 300]}")

    def assert_no_problems(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def _screens(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ARENA_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_first_visit_on_a_fresh_home(browser, tmp_path):
    """A new install (fresh ARENA_HOME: the embedded model is converted on the first run) that
    keeps prompts private: the first run with its preparation stage, a refused run after it,
    then every tab."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    screens = _screens(tmp_path)
    # analytics left to the app's default (off): nothing may try to reach Gradio's service
    env = {"ARENA_SHARE_OUTPUTS": "0", "ARENA_HOME": str(tmp_path / "home"), "GRADIO_ANALYTICS_ENABLED": None}
    with running_app(tmp_path / "arena.sqlite", env=env) as app:
        page = Visit(browser, app)
        page.open()
        page.idle("after loading")
        # before any run the results table has its real headings, not "1 2 3"
        heads = [c.text.strip() for c in page.els("#run-table thead th") if c.text.strip()]
        assert heads[:3] == ["configuration", "status", "dtype"], heads
        # Run is beside the prompt, within the first screen
        assert page.el("#run").location["y"] < 700
        page.type_prompt("Name the capital of France in one word.")
        assert "2 of" in page.el("#family-attention").text  # eager and sdpa, checked by default
        page.open_accordion("family-attention")
        page.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#cfg-sdpa-math input"))).click()
        page.wait.until(lambda d: "3 of" in page.el("#family-attention").text)
        for name in ("eager", "sdpa", "sdpa-math"):
            assert page.el(f"#cfg-{name} input[type=checkbox]").is_selected()
        assert not page.el("#cfg-flash-attention-2 input[type=checkbox]").is_enabled()
        assert "unavailable" in page.el("#cfg-flash-attention-2").text
        assert "arena-cfg-off" in page.el("#cfg-flash-attention-2").get_attribute("class")  # greyed
        assert page.els('#notice a[href="#measuring"]')  # "how each number is measured" is a link
        page.open_accordion("settings")
        page.set_number("max-new", 6)

        page.el("#run").click()
        # the embedded model's one-time conversion is a stage of the run, with its steps
        page.long_wait.until(lambda d: re.search(r"Preparing the embedded model .* step \d of 3",
                                                 page.el("#panels").text),
                             "no stage while the embedded model is converted")
        page.wait_for_summary("Finished", "stopped", "Not started")
        cards = page.cards()
        assert [c["status"] for c in cards] == ["done"] * 3, cards
        texts = [t.text for t in page.els("div.arena-panel pre.arena-text")]
        assert all(t.strip() for t in texts), texts
        page.check_rows("run-table", 3, "the run's table")
        page.check_cards_match_table()
        page.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#quality-plot .js-plotly-plot"))
        assert page.els("#speed-plot .js-plotly-plot")
        page.check_titles("speed-plot", "quality-plot")
        page.check_limit_flags()
        page.check_speedups("eager")
        for opened in ("family-attention", "settings"):  # closed again, as a visitor leaves them
            page.el(f"#{opened} .label-wrap").click()
        page.screenshot(screens, "Arena")
        page.idle("after a run")

        # a refused run: said in place; the previous run's cards and table do not stay
        page.type_prompt("")
        page.el("#run").click()
        summary = page.wait_for_summary("Not started")
        assert "prompt is empty" in summary, summary
        assert not page.cards(), "the previous run's cards stayed after a refused run"
        assert "Not started" in page.el("#panels").text
        page.check_rows("run-table", 0, "the run's table after a refused run")
        page.el("#hub-id textarea, #hub-id input").send_keys("x")  # nothing covers the Hub id box

        # the leaderboard, drawn when its tab is opened: the run's rows are there
        page.tab("Leaderboard")
        page.wait.until(lambda d: "Results 1–3 of 3" in page.el("#lb-caption").text)
        heads = [c.text.strip() for c in page.els("#lb-table thead th") if c.text.strip()]
        assert heads[:7] == ["model", "configuration", "decode tok/s", "TTFT ms", "peak MB", "% of BW limit",
                             "agree"], heads
        page.check_rows("lb-table", 3, "the leaderboard")
        page.screenshot(screens, "Leaderboard")
        # its CSV: every measurement, no prompt and no generated text
        page.el("#lb-csv").click()
        link = page.wait.until(lambda d: page.el("#lb-csv-file a[href]"))
        with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as r:
            csv = r.read().decode()
        header = csv.splitlines()[0].split(",")
        assert "decode_tokens_per_s" in header and "config" in header
        assert "prompt" not in header and "text" not in header and "capital of France" not in csv

        # the blind check is its own tab: the named cards are out of sight there
        page.tab("Blind check")
        page.wait.until(EC.element_to_be_clickable((By.ID, "blind-draw"))).click()
        page.wait.until(lambda d: page.el("#blind-status").text)
        page.check_blind_pair()
        assert not any(p.is_displayed() for p in page.els("div.arena-panel"))
        page.screenshot(screens, "Blind check")

        page.tab("Environment")
        page.wait.until(lambda d: "Local limits" in page.el("#env-limits-note").text)
        note = page.el("#env-limits-note").text
        assert "stay with the session" in note and "No usage statistics are sent" in note
        heads = [c.text.strip() for c in page.els("#env-limits thead th") if c.text.strip()]
        assert heads[:3] == ["limit", "value", "variable"], heads
        page.screenshot(screens, "Environment")
        page.tab("Sweep")
        page.screenshot(screens, "Sweep")
        page.tab("Arena")
        page.idle("after visiting every tab")

        page.check_toasts()
        page.check_console()
        page.stop_and_check_server()
    page.assert_no_problems()


def test_sweep_tab_draws_the_speedup_chart(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    from arena.data.store import Store

    db = tmp_path / "arena.sqlite"
    with running_app(db) as app:
        page = Visit(browser, app)
        page.open()
        page.tab("Sweep")
        page.wait.until(EC.element_to_be_clickable((By.ID, "sweep-run"))).click()
        page.long_wait.until(lambda d: "Finished" in page.el("#sweep-status").text)
        page.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#sweep-plot .js-plotly-plot")))
        # defaults: tiny-llama, eager and sdpa, batches 1,2,4, lengths 64,128, padding 0 and 0.3
        page.check_rows("sweep-points", 2 * 3 * 2 * 2, "the sweep's points table")
        page.check_toasts()
        page.check_console()
        page.stop_and_check_server()
    points = Store(db).results(mode="sweep-forward")
    assert len(points) == 2 * 3 * 2 * 2
    assert {p.config for p in points} == {"eager", "sdpa"}
    assert all(p.status == "ok" and p.latency_ms > 0 for p in points)
    page.assert_no_problems()


def test_cancel_keeps_what_was_measured(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    from arena.data.store import Store

    db = tmp_path / "arena.sqlite"
    # eager's worker hangs as it starts scoring NLL, after its timings: Cancel is pressed there
    with running_app(db, env={"ARENA_FAULT_INJECT": "eager=nll-hang"}) as app:
        page = Visit(browser, app)
        page.open()
        page.open_accordion("family-attention")
        page.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#cfg-sdpa-math input"))).click()
        page.el("#run").click()  # eager, sdpa, sdpa-math
        page.long_wait.until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, 'div.arena-panel[data-config="eager"][data-status="scoring"]')))
        page.el("#cancel").click()
        summary = page.wait_for_summary("Cancelled", "Finished")
        assert summary.startswith("Cancelled") and "kept" in summary, summary
        cards = {c["config"]: c for c in page.cards()}
        assert cards["eager"]["status"] == "done"
        assert "cancelled" in {c["status"] for c in cards.values()}, cards
        for card in cards.values():  # a configuration that never ran does not show a full bar
            if card["status"] == "cancelled" and not card["fields"]:
                assert card["bar"] != "100%", card
        page.check_rows("run-table", len(Store(db).results()), "the run's table")
        page.check_cards_match_table()
        # what was measured before the cancel is in both charts, not "no measured configuration yet"
        measured = sorted(c for c, card in cards.items() if card["status"] == "done")
        page.wait.until(lambda d: page.traces("speed-plot"))
        drawn = sorted({x for t in page.traces("speed-plot") if t["name"] == "decode tok/s" for x in t["x"]})
        if drawn != measured:
            page.problems.append(f"after a cancel the speed chart draws {drawn}, measured were {measured}")
        for plot in ("speed-plot", "quality-plot"):
            if "no measured configuration yet" in page.el(f"#{plot}").text:
                page.problems.append(f"after a cancel {plot} says no measured configuration yet")
        page.check_toasts()
        page.check_console()
        page.stop_and_check_server()

    store = Store(db)
    rows = store.results()
    assert [r.config for r in rows if r.status == "ok"][:1] == ["eager"]
    assert all(r.status == "ok" or "cancelled" in r.reason for r in rows)
    assert store.runs()[-1]["status"] == "cancelled"
    page.assert_no_problems()


def test_flagged_rows_and_chart_titles(browser, tmp_path):
    """A row over its limit (an injected bandwidth far below any speed, measured again the same)
    and an unstable row (repeats that slow down) are flagged on cards and table, the unstable one
    has no speedup drawn; the random weights' agreement note must not run over a chart title."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    env = {"ARENA_FAULT_INJECT": "sdpa-math=ramp@10,sdpa=bandwidth@0.000001"}
    with running_app(tmp_path / "arena.sqlite", env=env) as app:
        page = Visit(browser, app)
        page.open()
        from selenium.common.exceptions import StaleElementReferenceException

        for _ in range(5):  # the box is redrawn once after the page loads
            try:
                page.el("#hub-id textarea, #hub-id input").send_keys("synthetic:tiny-llama")
                break
            except StaleElementReferenceException:
                time.sleep(0.5)
        page.open_accordion("family-attention")
        page.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#cfg-sdpa-math input"))).click()
        page.open_accordion("settings")
        page.set_number("max-new", 8)
        page.d.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        page.el("#run").click()
        page.wait.until(lambda d: page.d.execute_script(IN_VIEW, "#summary"))  # the cards come into view
        page.wait_for_summary("Finished", "stopped", "Not started")
        page.check_rows("run-table", 3, "the run's table")
        page.check_cards_match_table()
        cards = {c["config"]: c for c in page.cards()}
        assert cards["sdpa"]["over_limit"] and cards["sdpa-math"]["unstable"], cards
        page.wait.until(lambda d: page.traces("quality-plot"))
        page.check_limit_flags()
        page.check_speedups("eager")
        page.check_titles("speed-plot", "quality-plot")
        page.tab("Leaderboard")
        page.wait.until(lambda d: "of 3" in page.el("#lb-caption").text)
        rows = page.rows("lb-table")
        assert {r["configuration"]: r["stable"] for r in rows}["sdpa-math"] == "unstable", rows
        assert page.els("#lb-table tr.lb-unstable")  # greyed, not dropped
        page.check_toasts()
        page.check_console()
        page.stop_and_check_server()
    page.assert_no_problems()


def test_blind_check_messages_stay_by_the_buttons(browser, tmp_path):
    """With no run yet: the vote buttons are off, and the answer to "two outputs of my last
    Arena run" is shown where the visitor is looking, at the window's height of a laptop."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    browser.set_window_size(1366, 768)  # a laptop's screen: the window the page must work in
    with running_app(tmp_path / "arena.sqlite") as app:
        page = Visit(browser, app)
        page.open()
        page.tab("Blind check")
        votes = page.wait.until(lambda d: [page.el(f"#vote-{v}") for v in ("a", "b", "tie", "both_bad")])
        if any(v.is_enabled() for v in votes):
            page.problems.append("vote buttons offered with no pair shown")
        page.wait.until(EC.element_to_be_clickable((By.ID, "blind-draw"))).click()
        page.wait.until(lambda d: page.el("#blind-status").text)
        assert "run at least two configurations" in page.el("#blind-status").text
        page.check_blind_pair()
        page.check_toasts()
        page.check_console()
        page.stop_and_check_server()
    page.assert_no_problems()
