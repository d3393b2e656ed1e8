"""The GPU stages, resumable: `python -m benchmarks.gpu --list`, then `python -m benchmarks.gpu STAGE ...`.

The stage table is arena/bench/stages.py and the driver arena/bench/driver.py (its docstring says
how resuming, budgets and outputs work), so that the tests reach both without importing a script.

    python -m benchmarks.gpu --list                                  # stages, minutes, rows done
    python -m benchmarks.gpu default 7b-torch --total-budget-s 540   # stops starting rows after 9 min
    python -m benchmarks.gpu 7b-torch                                # again: continues where it stopped
"""

from __future__ import annotations

import sys

from arena.bench.driver import main

if __name__ == "__main__":
    sys.exit(main())
