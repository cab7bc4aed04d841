"""One fit of the grid as a pure function of its arguments (FitJob + GridData -> Candidate),
so any runner, here or as Ray tasks, gives the same candidate."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models import capabilities, fit_model
from ..models.base import prepare_input
from ..models.modalities import refittable
from ..models.out_of_fold import fold_proba, out_of_fold_proba, rows_of
from .rows import Candidate, RunSpec, val_scores


@dataclass(frozen=True)
class Inputs:
    """Which features a fit takes: the audio, one backbone's image embeddings, or both (as a
    modality mapping, for fusion models)."""

    modalities: tuple[str, ...]
    backbone: str | None = None

    @classmethod
    def audio(cls) -> Inputs:
        return cls(("audio",))

    @classmethod
    def image(cls, backbone: str) -> Inputs:
        return cls(("image",), backbone)

    @classmethod
    def both(cls, backbone: str) -> Inputs:
        return cls(("image", "audio"), backbone)


@dataclass(frozen=True)
class FitJob:
    """One fit of the grid: a fresh model, its row spec and which inputs it takes;
    ``cv_folds`` (positions within the training rows) when it is also scored out of fold."""

    spec: RunSpec
    model: Any
    inputs: Inputs
    cv_folds: tuple[tuple[np.ndarray, np.ndarray], ...] | None = None


@dataclass(frozen=True)
class GridData:
    """Everything a fit reads, in one object that a distributed runner ships once."""

    audio: np.ndarray | None
    images: dict[str, np.ndarray]
    y: np.ndarray
    groups: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def inputs(self, wanted: Inputs) -> Any:
        """One array for a one-modality fit, a modality mapping for a fusion fit."""
        arrays = {m: self.audio if m == "audio" else self.images[wanted.backbone]
                  for m in wanted.modalities}
        return next(iter(arrays.values())) if len(arrays) == 1 else arrays


def fold_input(model: Any, X: Any) -> Any:
    """A row's training input as a fusion model hands it to this model as a member (sequences
    pooled for a 2-D model; a modality mapping as it is), so that out-of-fold probabilities
    computed for the row are found again, not recomputed, when fusion asks for them."""
    return X if isinstance(X, dict) else prepare_input(model, X)


@dataclass(frozen=True)
class FoldJob:
    """One fold of a row's out-of-fold estimate, as a unit of work of its own: a fresh copy of
    the row's model fitted without the fold's held-out training rows, which it then predicts.
    A row's final fit and its folds are independent, so a runner can spread them over cores
    (one slow row no longer leaves a core idle while its folds queue behind it)."""

    job: FitJob
    fold: int


def fit_fold(part: FoldJob, data: GridData) -> np.ndarray:
    """(held-out rows, K) probabilities of one fold, columns in class order: what
    :func:`~scenefusion.models.out_of_fold.out_of_fold_proba` computes for that fold."""
    job = part.job
    y = data.y[data.train]
    fit_rows, held_out = job.cv_folds[part.fold]
    inp = fold_input(job.model, rows_of(data.inputs(job.inputs), data.train))
    return fold_proba(refittable(job.model), inp, y, fit_rows, held_out, np.unique(y))


def run_part(part: FitJob | FoldJob, data: GridData) -> Candidate | np.ndarray:
    """A runner's unit of work: a row's final fit (scored on validation and test; its folds
    are separate parts) or one of its folds."""
    if isinstance(part, FoldJob):
        return fit_fold(part, data)
    return fit_and_score(part, data, with_folds=False)


def fit_and_score(job: FitJob, data: GridData, epoch_progress: Callable | None = None,
                  with_folds: bool = True) -> Candidate:
    """Fit one model on train; score it on validation (for selection) and test, and out of
    fold over ``job.cv_folds`` unless ``with_folds`` is False (the runner then fits the folds
    as parts of their own). A pure function of its arguments, so any runner gives the same
    candidate."""
    X = data.inputs(job.inputs)

    def rows(idx: np.ndarray) -> Any:
        return rows_of(X, idx)

    has_val = len(data.val) > 0
    y_va = data.y[data.val] if has_val else None
    X_va = rows(data.val) if has_val else None
    model = job.model
    # where selection is by cross-validation, so is tuning: the thin validation split is
    # not shown to a model that would tune on it
    tunes_on_cv = job.cv_folds is not None and capabilities(model).tunable and getattr(
        model, "tune", False)
    start = time.perf_counter()
    fit_model(model, rows(data.train), data.y[data.train], None if tunes_on_cv else X_va,
              None if tunes_on_cv else y_va, progress=epoch_progress,
              groups=data.groups[data.train])
    seconds = time.perf_counter() - start
    val_proba = model.predict_proba(X_va) if has_val else None
    val_acc, val_ll = (val_scores(val_proba, model.classes_, y_va) if has_val
                       else (None, None))
    candidate = Candidate(job.spec, model, val_acc, val_ll, model.predict_proba(rows(data.test)),
                          seconds, val_proba)
    if job.cv_folds is not None and with_folds:
        y_tr = data.y[data.train]
        oof = out_of_fold_proba(refittable(model), fold_input(model, rows(data.train)), y_tr,
                                list(job.cv_folds), model.classes_)
        candidate.oof_proba = oof
        candidate.cv_accuracy, candidate.cv_log_loss = val_scores(oof, model.classes_, y_tr)
    return candidate
