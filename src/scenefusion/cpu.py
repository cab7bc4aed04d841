"""How many CPU threads scenefusion uses, and a cap that holds for every library at once.

torch, ONNX Runtime, OpenBLAS/MKL and OpenMP each start one thread per core of the machine by
default. In a container limited to fewer cores, or beside another busy process, they then
fight for the same cores (measured: a 2-core grid's training 146 s alone, 798 s beside one
busy process). One cap, applied to all of them, is the fix; its default is the number of cores
this process may actually use.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
#: Below this many input values per operation (a training batch, an inference call) extra
#: intra-op threads cost more in hand-off and OpenMP spin-waiting than they gain. Measured on
#: 2 cores beside one busy process: a 96-clip LSTM fit (batches of 32 x 8 x 13) took 3.5-24 s
#: with 2 torch threads and 0.1 s with 1; an MLP on 1,280-d image features (batches of
#: 64 x 1,280) 8.6 s with 2 and 0.1 s with 1. On a quiet machine 1 thread costs at most ~15 %
#: at these sizes; the audio CNN's batches (32 x 100 x 64) still get every core.
SMALL_WORK_CELLS = 131_072
_CAP: contextvars.ContextVar[int | None] = contextvars.ContextVar("thread_cap", default=None)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows: written beside
    every timing, since machines differ from one run to the next."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, lowered by a cgroup (container) CPU
    quota when one is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota(CGROUP_CPU_MAX)
    return max(1, min(cores, quota)) if quota else cores


def _cgroup_quota(path: Path) -> int | None:
    """Whole cores granted by a cgroup v2 ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD")."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def at_most_cores(threads: int | None) -> int | None:
    """``threads`` capped at :func:`usable_cores`, with a warning: more threads than cores only
    oversubscribe the machine, and far more (100000) fail when the libraries allocate their
    pools. None stays None (the default: every usable core)."""
    cores = usable_cores()
    if threads is not None and threads > cores:
        log.warning("threads %d is more than the %d core(s) this process may use; using %d",
                    threads, cores, cores)
        return cores
    return threads


def thread_budget() -> int:
    """Threads a stage may start now: the active :func:`limit_threads` cap, else
    :func:`usable_cores`. Code that sizes its own pools (n_jobs) asks this."""
    return _CAP.get() or usable_cores()


def threads_for_work(cells: int) -> int:
    """Intra-op threads worth starting for one operation on ``cells`` input values: one for
    small work (see :data:`SMALL_WORK_CELLS`), else the :func:`thread_budget`."""
    return 1 if cells < SMALL_WORK_CELLS else thread_budget()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Set torch's intra-op threads to ``n`` for a block, restoring the previous count after
    (torch's setting is process-wide, so a block that lowers it must put it back)."""
    import torch

    previous = torch.get_num_threads()
    if n != previous:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if n != previous:
            torch.set_num_threads(previous)


@contextlib.contextmanager
def limit_threads(threads: int | None = None) -> Iterator[int]:
    """Cap torch's intra-op threads and every BLAS/OpenMP pool at `threads` (default:
    :func:`usable_cores`) for a block; the previous settings come back after it."""
    from threadpoolctl import threadpool_limits

    n = at_most_cores(threads) or usable_cores()
    token = _CAP.set(n)
    try:
        with torch_threads(n), threadpool_limits(limits=n):
            yield n
    finally:
        _CAP.reset(token)
