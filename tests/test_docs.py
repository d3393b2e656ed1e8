"""The README is a front door (at most 250 lines) and every relative link in it and in docs/ leads
somewhere: a moved section leaves no dangling link behind."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def broken_links(files: list[Path]) -> list[str]:
    """`file: target` for every relative markdown link whose file does not exist."""
    out = []
    for path in files:
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)  # fenced code is not a link
        for target in LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL, or an anchor of this page
            if not (path.parent / target.split("#", 1)[0]).exists():
                out.append(f"{path.relative_to(ROOT)}: {target}")
    return out


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the rest belongs in docs/"


def test_every_relative_link_in_the_readme_and_docs_resolves():
    assert broken_links(documents()) == []


def test_the_link_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("x")
    page.write_text("[ok](there.md#part) [web](https://example.org) [top](#x) ![pic](missing.png)\n"
                    "```\n[in code](nowhere.md)\n```\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert broken_links([page]) == ["page.md: missing.png"]
    finally:
        ROOT = saved
