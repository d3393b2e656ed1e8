"""The benchmark command lines, one module each, run from the repository root as
`python -m benchmarks.NAME` (no sys.path patching): each parses its arguments, calls into arena/
and prints or writes its figures, ratios measured side by side.

What lives here and what in arena/bench: a script keeps only what is its own command line;
anything a test imports or two scripts share moves to arena/bench (or arena/testing for the test
helpers a script reuses), where the layering test sees it. Nothing in arena/ or tests/ imports
benchmarks/: tests run a script as a user does, in a subprocess (tests/test_layout.py)."""
