"""Byte units: the one place that says what a MiB is (the results' "MB" columns are MiB)."""

from __future__ import annotations

MiB = 2**20
GiB = 2**30


def mib(n_bytes: float) -> float:
    """Bytes -> MiB, the unit of every *_mb field."""
    return n_bytes / MiB
