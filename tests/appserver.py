"""The tests' name for the real-server helper (arena/testing/appserver.py, shared with benchmarks)."""

from arena.testing.appserver import ROOT, AppServer, free_port, running_app

__all__ = ["ROOT", "AppServer", "free_port", "running_app"]
