"""Running a request: the runner, the worker that measures one configuration, the supervisor of
spawned workers (events, cancel, time limit) and the worker memory limit."""
