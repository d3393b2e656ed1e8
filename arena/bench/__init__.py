"""What the benchmark scripts (benchmarks/) and their tests share: one way to turn command-line
settings into a measured run (`runs`), the GPU stage table and its resumable driver (`stages`,
`driver`, `ledger`), the bare reference loops of the fidelity check (`fidelity`), and the tables
and reports made from results (`tables`, `profile`, `sweep_docs`). The top layer, beside `ui`:
it calls the runners and never the other way round."""
