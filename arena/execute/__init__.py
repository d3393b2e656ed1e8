"""Running a request: the runner, the launchers and their one supervising loop (a warm pool
worker, this process, one process per tensor-parallel rank), the worker that measures one
configuration, the worker memory limit and the fault points tests reach."""
