"""Where the comparison grid's independent fits run: in worker processes on this machine, one
per core (the default), here one after the other (one core), or as Ray tasks on a local or
remote Ray cluster.

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


def _one_thread(fn: Callable[[Any, Any], Any], job: Any, shared: Any) -> Any:
    """``fn(job, shared)`` in a worker, with every library held to one thread: the workers
    share the cores, so intra-op threads on top would only oversubscribe them."""
    from .cpu import limit_threads

    with limit_threads(1):
        return fn(job, shared)


class ProcessRunner:
    """Worker processes on this machine (joblib's loky executor, reused between batches),
    each fit on one thread. Many of the grid's fits are single-threaded or too small for
    two threads to help (SVM, forests' trees, small MLP/LSTM batches), so one fit per core
    uses both cores where one process with two threads mostly used one. ``shared`` arrays
    reach the workers as memory maps, not copies."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def map(self, fn: Callable[[Any, Any], Any], jobs: Sequence[Any], shared: Any,
            on_done: Callable[[Any], None] | None = None) -> list[Any]:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=self.workers, backend="loky", return_as="generator")
        results = []
        for job, result in zip(jobs, parallel(delayed(_one_thread)(fn, job, shared)
                                              for job in jobs), strict=True):
            results.append(result)
            if on_done is not None:
                on_done(job)
        return results


def make_runner(kind: str, address: str | None = None, num_cpus: int | None = None,
                workers: int | None = None) -> RayRunner | ProcessRunner | None:
    """The runner for a config's ``runner.kind``; None means run here, one fit after another
    (``local`` with a single worker: one usable core, or ``runner.workers: 1``)."""
    if kind == "local":
        from .cpu import thread_budget

        workers = workers or thread_budget()
        return ProcessRunner(workers) if workers > 1 else None
    if kind == "ray":
        return RayRunner(address, num_cpus)
    raise InvalidValue(f"unknown runner {kind!r}; choose one of {', '.join(RUNNERS)}")
