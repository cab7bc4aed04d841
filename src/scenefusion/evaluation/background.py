"""Confusion-matrix PNGs drawn in a helper process while the grid is still training.

Drawing a confusion matrix with matplotlib costs ~0.15 s, mostly text layout, and a default
run draws 20 of them: ~3 s of a ~20 s demo run. Meanwhile training leaves a core idle (small
fits run on one thread, see :mod:`scenefusion.cpu`). So each run's matrix is sent, as soon as
the run is fitted, to one spawned process that draws it into a scratch folder; the report
writer then only moves the finished file into place.

Nothing here can change a result: a drawing is used only if its counts equal the final
evaluation's, and anything that did not arrive (a helper that failed to start, crashed or was
disabled) is drawn in-process by the report writer as before.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def _warm_up() -> None:
    """First job: the helper imports matplotlib while the parent is still training."""
    from . import plots  # noqa: F401


def _draw(cm: np.ndarray, class_names: list[str], title: str, path: str) -> str:
    """The helper process's job: one row-normalised matrix, exactly as the report draws it."""
    from .plots import plot_confusion_matrix

    return str(plot_confusion_matrix(cm, class_names, path, normalize=True, title=title))


def _draw_comparison(results: list, path: str) -> str:
    from .plots import plot_comparison

    return str(plot_comparison(results, path))


class BackgroundPlots:
    """Draws confusion matrices in one helper process; a context manager that removes its
    scratch folder and stops the helper on exit.

    ``enabled=False`` (or a helper that cannot start) makes :meth:`submit` a no-op, so the
    caller's code path is the same either way.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._pool: ProcessPoolExecutor | None = None
        self._scratch: Path | None = None
        self._jobs: dict[str, tuple[np.ndarray, Future]] = {}
        self._comparison: Future | None = None

    def __enter__(self) -> BackgroundPlots:
        if self.enabled:
            try:
                self._scratch = Path(tempfile.mkdtemp(prefix="scenefusion-plots-"))
                # spawn, not fork: the parent holds torch / ONNX Runtime / OpenMP threads,
                # which a forked child would inherit in an undefined state
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"))
                self._pool.submit(_warm_up)  # starts the process now, not at the first plot
            except (OSError, RuntimeError) as err:
                log.info("background plotting off (%s): plots are drawn at the end", err)
                self.enabled = False
        return self

    def _submit(self, draw: Any, *args: Any, file_name: str) -> Future | None:
        """Queue one drawing into the scratch folder; None when the helper is off or broke (a
        crashed helper breaks the pool: what is left is drawn in-process later)."""
        if not self.enabled or self._pool is None or self._scratch is None:
            return None
        try:
            return self._pool.submit(draw, *args, str(self._scratch / file_name))
        except RuntimeError as err:
            log.info("background plotting stopped (%s)", err)
            self.enabled = False
            return None

    @staticmethod
    def _result(future: Future | None, what: str) -> Path | None:
        """The finished drawing's path (waits for it), or None: draw it in-process."""
        if future is None:
            return None
        try:
            return Path(future.result())
        except Exception as err:  # noqa: BLE001 - any failure means: draw it in-process
            log.info("background drawing of %s failed (%s): drawn in-process", what, err)
            return None

    def submit(self, name: str, cm: np.ndarray, class_names: Sequence[str]) -> None:
        """Start drawing run ``name``'s matrix (counts ``cm``); returns at once."""
        if name in self._jobs:
            return
        cm = np.asarray(cm).copy()
        future = self._submit(_draw, cm, [str(c) for c in class_names], name,
                              file_name=f"{len(self._jobs)}.png")
        if future is not None:
            self._jobs[name] = (cm, future)

    def submit_comparison(self, results: Sequence[Any]) -> None:
        """Start drawing the cross-run comparison chart of these final results."""
        self._comparison = self._submit(_draw_comparison, list(results),
                                        file_name="comparison.png")

    def comparison(self) -> Path | None:
        """The comparison chart once drawn (waits for it), or None: draw it in-process."""
        return self._result(self._comparison, "the comparison")

    def finished(self) -> dict[str, tuple[np.ndarray, Path]]:
        """Run name -> (the counts it was drawn from, its PNG) for every drawing that
        succeeded; waits for those still being drawn."""
        done = {name: (cm, self._result(future, name))
                for name, (cm, future) in self._jobs.items()}
        return {name: (cm, path) for name, (cm, path) in done.items() if path is not None}

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
