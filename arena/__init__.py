"""Inference Arena: one prompt through several GPU-inference configurations, side by side."""

__version__ = "0.1.0"
