"""Attention sweeps: the plan (grid, padding, validation), the runner, the worker and the charts."""
