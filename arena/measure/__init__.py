"""Trackers, one job each: clocks (TTFT, per-token), memory, energy, the device's bandwidth and
the decode limit it sets, and quality against the baseline."""
