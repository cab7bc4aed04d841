"""Where the comparison grid's independent fits run: here, one after the other (default), or
as Ray tasks on a local or remote Ray cluster.

A runner has one method, ``map(fn, jobs, shared, on_done)``: ``fn(job, shared)`` for every
job, results in job order. ``shared`` (the features and the split) is shipped once, not once
per job. The fits are pure functions of their arguments with fixed seeds, so the results do
not depend on the runner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from .errors import InvalidValue

RUNNERS = ("local", "ray")
log = logging.getLogger(__name__)


def connect(address: str | None = None, num_cpus: int | None = None) -> float:
    """Join the Ray cluster at `address` (or start a local one on this machine's cores): the
    one way scenefusion joins Ray, for the grid and for extraction. Returns the seconds it
    took, 0 when this process was already connected."""
    try:
        import ray
    except ImportError:
        raise InvalidValue("--runner ray needs Ray: pip install -e '.[ray]'") from None
    if ray.is_initialized():
        return 0.0
    start = time.perf_counter()
    ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    log.info("Ray cluster: %s", ray.cluster_resources())
    return time.perf_counter() - start


class RayRunner:
    """Ray tasks, one CPU each. Without an address, ``ray.init()`` starts a local cluster on
    this machine's cores; with one (``ray://head:10001`` or ``auto``) it joins that cluster,
    whose workers must have scenefusion installed."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
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
