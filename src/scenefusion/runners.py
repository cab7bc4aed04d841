"""Where the comparison grid's independent fits run: here, one after the other (default), or
as Ray tasks on a local or remote Ray cluster.

A runner has one method, ``map(fn, jobs, shared, on_done)``: ``fn(job, shared)`` for every
job, results in job order. ``shared`` (the features and the split) is shipped once, not once
per job. The fits are pure functions of their arguments with fixed seeds, so the results do
not depend on the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .errors import InvalidValue

RUNNERS = ("local", "ray")


class RayRunner:
    """Ray tasks, one CPU each. Without an address, ``ray.init()`` starts a local cluster on
    this machine's cores; with one (``ray://head:10001`` or ``auto``) it joins that cluster,
    whose workers must have scenefusion installed."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        from .features.distributed import connect  # the one way scenefusion joins Ray

        connect(address, num_cpus)
        import ray

        self._ray = ray

    def map(self, fn: Callable[[Any, Any], Any], jobs: Sequence[Any], shared: Any,
            on_done: Callable[[Any], None] | None = None) -> list[Any]:
        ray = self._ray
        shared_ref = ray.put(shared)
        task = ray.remote(num_cpus=1)(fn)
        index = {task.remote(job, shared_ref): i for i, job in enumerate(jobs)}
        results: list[Any] = [None] * len(jobs)
        pending = list(index)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            i = index[ready[0]]
            results[i] = ray.get(ready[0])
            if on_done is not None:
                on_done(jobs[i])
        return results


def make_runner(kind: str, address: str | None = None, num_cpus: int | None = None
                ) -> RayRunner | None:
    """The runner for a config's ``runner.kind``; None means run here, one fit after another."""
    if kind == "local":
        return None
    if kind == "ray":
        return RayRunner(address, num_cpus)
    raise InvalidValue(f"unknown runner {kind!r}; choose one of {', '.join(RUNNERS)}")
