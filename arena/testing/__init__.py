"""Helpers for the tests that production code does not need."""
