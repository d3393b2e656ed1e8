"""Workarounds for defects of the page Gradio 6.17.3 (the pinned version) draws, each with where
it comes from and the upstream change that removes it, so that they go when the pin moves.
tests/test_browser.py fails when one of them stops working (idle script time, rows shown,
console output).

1. Tabs never shown keep the tab bar busy. Gradio mounts a tab's content only when it is first
   selected; until then the tab bar (js/tabs/shared/Tabs.svelte, `_sync_tabs`) re-copies the
   unmounted tabs into its own list, which re-measures the bar, which re-runs the copy: on this
   page about 1.2 s of script per 5 s on an idle page (0.04 s once every tab has been visited).
   A tab with visible="hidden" is mounted at load (its button and its content behave as usual;
   its content's own components still load when first shown), so no tab is left unmounted.
2. A Dataframe whose row count grows shows only the rows it showed first (its virtual window is
   re-read only on a 0 -> N change; gradio-app/gradio#13611, fixed in 6.25 by #13744). A scroll
   event on the table's viewport makes it re-read the window: sent after each change of value.
3. The Dataframe logs "measuring" to the console for every row it draws (a debug line left in
   js/dataframe/shared/Table.svelte, removed in 6.19). The page drops exactly that line.
"""

from __future__ import annotations

import gradio as gr

# Dropped from the console: Gradio 6.17.3's Dataframe debug line, nothing else.
HEAD = """<script>
(() => {
  const log = console.log.bind(console);
  console.log = (...args) => { if (!(args.length === 1 && args[0] === "measuring")) log(...args); };
})();
</script>"""

_REREAD_ROWS = """() => {{
  const viewport = document.querySelector("#{id} .virtual-table-viewport");
  if (viewport) requestAnimationFrame(() => requestAnimationFrame(
    () => viewport.dispatchEvent(new Event("scroll"))));
}}"""


def mount_every_tab(demo: gr.Blocks) -> None:
    """Mount every tab at load (1): visible="hidden" on each tab but the first of its group."""
    for block in demo.blocks.values():
        if isinstance(block, gr.Tabs):
            for tab in [c for c in block.children if isinstance(c, gr.Tab)][1:]:
                if tab.visible is True:
                    tab.visible = "hidden"


def reread_rows(demo: gr.Blocks) -> None:
    """After each change of a Dataframe's value, make it re-read its virtual window (2)."""
    with demo:
        for block in list(demo.blocks.values()):
            if isinstance(block, gr.Dataframe):
                target = block.elem_id or f"component-{block._id}"
                block.change(None, None, None, js=_REREAD_ROWS.format(id=target), queue=False,
                             api_visibility="private")
