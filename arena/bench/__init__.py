"""What the benchmark scripts (benchmarks/) and their tests share: one way to turn command-line
settings into a measured run (`runs`), the GPU stage table and its resumable driver (`stages`,
`driver`, `ledger`), the bare reference loops of the fidelity check (`fidelity`), and the tables
and reports made from results (`tables`, `profile`, `sweep_docs`). The top layer, beside `ui`:
it calls the runners and never the other way round.

What lives here and what in benchmarks/: code a test imports, or that two scripts share, lives
here (importable, layered, checked by tests/test_layout.py); benchmarks/ holds only the command
lines, one module each, run as `python -m benchmarks.NAME` from the repository root, which parse
their arguments, call into arena/ and print or write their figures. Nothing in arena/ or tests/
imports benchmarks/."""
