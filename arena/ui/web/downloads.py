"""Files made for download (leaderboard and sweep CSVs): kept in one folder and removed after a
while, so that a long-running public server does not fill its disk."""

from __future__ import annotations

import time
import uuid
from pathlib import Path


class TempFiles:
    """A folder of download files; each call to `path` first removes those older than max_age_s."""

    def __init__(self, root: Path, max_age_s: float = 600.0) -> None:
        self.root, self.max_age_s = root, max_age_s
        root.mkdir(parents=True, exist_ok=True)

    def _clean(self) -> None:
        cutoff = time.time() - self.max_age_s
        for old in self.root.iterdir():
            try:
                if old.stat().st_mtime < cutoff:
                    old.unlink()
            except OSError:
                pass  # removed by another request meanwhile

    def path(self, name: str) -> Path:
        """A new file's path (a unique prefix: two requests never share it)."""
        self._clean()
        return self.root / f"{uuid.uuid4().hex[:12]}-{name}"

    def named(self, name: str) -> Path:
        """The path `name` always gets, so that writing it again overwrites it (a page's CSV of
        one chart); `name` is made file-name safe."""
        self._clean()
        safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in name)[:200]
        return self.root / safe
