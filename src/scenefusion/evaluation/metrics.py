"""Scalar and per-class metrics for one run, with an honest (group-aware) bootstrap CI.

Every run (a single-modality model or a fusion strategy) is reduced to an
:class:`EvaluationResult`, a plain record that serialises to JSON, so reports can be
re-rendered from a saved run without retraining anything.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
)

from .ordering import order_by_selection

log = logging.getLogger(__name__)

#: Columns of :func:`comparison_table`, in order.
COMPARISON_COLUMNS: list[str] = [
    "name",
    "accuracy",
    "ci_low",
    "ci_high",
    "balanced_accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "log_loss", "n_test", "val_accuracy", "cv_accuracy",
]

# Cap on how many resampled indices are materialised at once (~16 MB of int64), so the
# bootstrap stays vectorised without allocating n_bootstrap * n_rows in one go.
_MAX_DRAWS_PER_CHUNK = 2_000_000
# Rows whose probabilities sum this far from 1 are rejected as "not probabilities";
# smaller drift (float32 softmax) is silently renormalised.
_PROBA_SUM_TOL = 1e-3


def _finite_or_none(x: float | None) -> float | None:
    """JSON has no NaN/inf; map them to null so metrics.json stays strictly valid."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _none_to_nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


@dataclass(eq=False)
class EvaluationResult:
    """Everything we report about one run on one test split.

    Macro precision/recall/F1 average over *all* K classes (``labels=range(K)``), exactly
    like the classification report, so a class absent from the test split counts as 0
    there; ``balanced_accuracy`` follows scikit-learn and averages recall over the classes
    present in ``y_true`` only. Both are the same for every run on the same split, so
    comparisons stay fair. ``extra`` is free-form metadata and must be JSON-serialisable.
    """

    name: str
    class_names: list[str]
    n_test: int
    accuracy: float
    balanced_accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_f1: float
    log_loss: float
    precision_per_class: list[float]
    recall_per_class: list[float]
    f1_per_class: list[float]
    support_per_class: list[int]
    confusion_matrix: np.ndarray
    classification_report: str
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float = 0.95
    n_bootstrap: int = 0
    bootstrap_unit: str = "frame"  # "group" when whole source videos were resampled
    n_groups: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def per_class_table(self) -> pd.DataFrame:
        """Per-class precision/recall/F1/support as a table (one row per class)."""
        return pd.DataFrame(
            {
                "class": self.class_names,
                "precision": self.precision_per_class,
                "recall": self.recall_per_class,
                "f1": self.f1_per_class,
                "support": self.support_per_class,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python, JSON-serialisable form (NaN/inf become None)."""
        return {
            "name": self.name,
            "class_names": list(self.class_names),
            "n_test": int(self.n_test),
            "accuracy": _finite_or_none(self.accuracy),
            "balanced_accuracy": _finite_or_none(self.balanced_accuracy),
            "macro_precision": _finite_or_none(self.macro_precision),
            "macro_recall": _finite_or_none(self.macro_recall),
            "macro_f1": _finite_or_none(self.macro_f1),
            "weighted_f1": _finite_or_none(self.weighted_f1),
            "log_loss": _finite_or_none(self.log_loss),
            "precision_per_class": [_finite_or_none(v) for v in self.precision_per_class],
            "recall_per_class": [_finite_or_none(v) for v in self.recall_per_class],
            "f1_per_class": [_finite_or_none(v) for v in self.f1_per_class],
            "support_per_class": [int(v) for v in self.support_per_class],
            "confusion_matrix": np.asarray(self.confusion_matrix).astype(int).tolist(),
            "classification_report": self.classification_report,
            "ci_low": _finite_or_none(self.ci_low),
            "ci_high": _finite_or_none(self.ci_high),
            "ci_level": float(self.ci_level),
            "n_bootstrap": int(self.n_bootstrap),
            "bootstrap_unit": self.bootstrap_unit,
            "n_groups": None if self.n_groups is None else int(self.n_groups),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluationResult:
        """Inverse of :meth:`to_dict`, so saved runs can be re-reported without retraining."""
        return cls(
            name=str(d["name"]),
            class_names=[str(c) for c in d["class_names"]],
            n_test=int(d["n_test"]),
            accuracy=_none_to_nan(d["accuracy"]),
            balanced_accuracy=_none_to_nan(d["balanced_accuracy"]),
            macro_precision=_none_to_nan(d["macro_precision"]),
            macro_recall=_none_to_nan(d["macro_recall"]),
            macro_f1=_none_to_nan(d["macro_f1"]),
            weighted_f1=_none_to_nan(d["weighted_f1"]),
            log_loss=_none_to_nan(d["log_loss"]),
            precision_per_class=[_none_to_nan(v) for v in d["precision_per_class"]],
            recall_per_class=[_none_to_nan(v) for v in d["recall_per_class"]],
            f1_per_class=[_none_to_nan(v) for v in d["f1_per_class"]],
            support_per_class=[int(v) for v in d["support_per_class"]],
            confusion_matrix=np.asarray(d["confusion_matrix"], dtype=np.int64),
            classification_report=str(d["classification_report"]),
            ci_low=None if d.get("ci_low") is None else float(d["ci_low"]),
            ci_high=None if d.get("ci_high") is None else float(d["ci_high"]),
            ci_level=float(d.get("ci_level", 0.95)),
            n_bootstrap=int(d.get("n_bootstrap", 0)),
            bootstrap_unit=str(d.get("bootstrap_unit", "frame")),
            n_groups=None if d.get("n_groups") is None else int(d["n_groups"]),
            extra=dict(d.get("extra") or {}),
        )

    def __eq__(self, other: object) -> bool:
        # Value equality via the serialised form (dataclass eq would choke on the ndarray).
        if not isinstance(other, EvaluationResult):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable record


def _validate_inputs(
    y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str], groups: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if p.ndim != 2:
        raise ValueError(f"proba must be 2-D (N, K), got shape {p.shape}")
    n, k = p.shape
    if n == 0:
        raise ValueError("cannot evaluate on an empty test set")
    if len(y) != n:
        raise ValueError(f"y_true has {len(y)} rows but proba has {n}")
    if len(class_names) != k:
        raise ValueError(f"proba has {k} columns but {len(class_names)} class_names were given")
    if k < 2:
        raise ValueError("need at least 2 classes")
    if not np.issubdtype(y.dtype, np.integer):
        integral = np.issubdtype(y.dtype, np.floating) and bool(
            np.all(np.isfinite(y)) and np.all(y == np.round(y))
        )
        if integral:
            y = y.astype(np.int64)
        else:
            raise ValueError(f"y_true must hold integer class indices, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"y_true values must lie in [0, {k - 1}], got [{y.min()}, {y.max()}]")
    if not np.all(np.isfinite(p)):
        raise ValueError("proba contains NaN or inf")
    if p.min() < 0:
        raise ValueError("proba contains negative values; pass probabilities, not scores")
    sums = p.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > _PROBA_SUM_TOL):
        worst = float(sums[np.argmax(np.abs(sums - 1.0))])
        raise ValueError(
            f"proba rows must sum to 1 (one row sums to {worst:.6g}); "
            "pass predict_proba output, not decision scores"
        )
    p = p / sums[:, None]  # remove float32-softmax drift so log_loss does not warn
    g = None
    if groups is not None:
        g = np.asarray(groups)
        if g.ndim != 1 or len(g) != n:
            raise ValueError(f"groups must be 1-D with {n} entries, got shape {g.shape}")
    return y.astype(np.int64, copy=False), p, g


def bootstrap_accuracy(
    correct: np.ndarray,
    groups: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Bootstrap replicates of accuracy; resample whole groups when ``groups`` is given.

    With groups, each replicate draws G groups with replacement and pools their frames
    (accuracy = hits / frames over the drawn groups), i.e. a cluster bootstrap. Frames of one
    source video are near-duplicates, so resampling frames independently would pretend we
    have far more independent evidence than we do and give a falsely narrow CI.

    Vectorised with numpy and processed in chunks to bound memory; deterministic by ``seed``.
    """
    c = np.asarray(correct, dtype=np.float64)
    if groups is None:
        hits = c
        sizes: np.ndarray | None = None
    else:
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        inverse = inverse.ravel()
        hits = np.bincount(inverse, weights=c)
        sizes = np.bincount(inverse).astype(np.float64)
    n_units = len(hits)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_bootstrap, dtype=np.float64)
    chunk = max(1, min(n_bootstrap, _MAX_DRAWS_PER_CHUNK // max(n_units, 1)))
    for start in range(0, n_bootstrap, chunk):
        stop = min(start + chunk, n_bootstrap)
        idx = rng.integers(0, n_units, size=(stop - start, n_units))
        h = hits[idx].sum(axis=1)
        stats[start:stop] = h / (sizes[idx].sum(axis=1) if sizes is not None else n_units)
    return stats


def confusion_counts(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class index, columns = ``argmax(proba)``: the matrix
    :func:`evaluate` reports (also computed early, to draw it while training goes on)."""
    pred = np.argmax(np.asarray(proba), axis=1)
    return confusion_matrix(np.asarray(y_true), pred, labels=list(range(n_classes))).astype(
        np.int64)


def evaluate(
    name: str,
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str],
    groups: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
) -> EvaluationResult:
    """Score one run's test-set probabilities.

    Predictions are ``argmax(proba)`` (ties go to the lowest class index). All label-aware
    metrics use ``labels=range(K)`` so a class missing from the test split neither crashes
    log-loss nor silently shrinks the confusion matrix.

    The accuracy CI is a percentile bootstrap. Pass ``groups`` (the source-video id of
    each row): whole videos are then resampled with replacement, because frames cut from
    one video are near-duplicates and a frame-level bootstrap would report a falsely narrow
    interval. ``n_bootstrap=0`` skips the CI (``ci_low``/``ci_high`` stay None).
    """
    if n_bootstrap < 0:
        raise ValueError("n_bootstrap must be >= 0")
    if not 0.0 < ci_level < 1.0:
        raise ValueError("ci_level must lie in (0, 1)")
    y, p, g = _validate_inputs(y_true, proba, class_names, groups)
    names = [str(c) for c in class_names]
    k = len(names)
    labels = list(range(k))
    y_pred = np.argmax(p, axis=1)

    prec, rec, f1, support = precision_recall_fscore_support(
        y, y_pred, labels=labels, average=None, zero_division=0
    )
    macro_p, macro_r, macro_f1, _ = precision_recall_fscore_support(
        y, y_pred, labels=labels, average="macro", zero_division=0
    )
    _, _, weighted_f1, _ = precision_recall_fscore_support(
        y, y_pred, labels=labels, average="weighted", zero_division=0
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Warns when y_pred has classes absent from y_true; that is expected here.
        bal_acc = balanced_accuracy_score(y, y_pred)
    for w in caught:
        log.debug("%s: balanced_accuracy_score: %s", name, w.message)
    report = classification_report(
        y, y_pred, labels=labels, target_names=names, zero_division=0, digits=4
    )
    cm = confusion_counts(y, p, k)
    ll = log_loss(y, p, labels=labels)

    ci_low = ci_high = None
    n_groups = None
    unit = "frame"
    if g is not None:
        n_groups = int(len(np.unique(g)))
        unit = "group"
    if n_bootstrap > 0:
        if n_groups is not None and n_groups < 2:
            log.warning("%s: only %d group(s); the bootstrap CI is degenerate", name, n_groups)
        correct = (y_pred == y).astype(np.float64)
        stats = bootstrap_accuracy(correct, g, n_bootstrap=n_bootstrap, seed=seed)
        alpha = (1.0 - ci_level) / 2.0
        lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
        ci_low, ci_high = float(lo), float(hi)

    result = EvaluationResult(
        name=str(name),
        class_names=names,
        n_test=int(len(y)),
        accuracy=float(accuracy_score(y, y_pred)),
        balanced_accuracy=float(bal_acc),
        macro_precision=float(macro_p),
        macro_recall=float(macro_r),
        macro_f1=float(macro_f1),
        weighted_f1=float(weighted_f1),
        log_loss=float(ll),
        precision_per_class=[float(v) for v in prec],
        recall_per_class=[float(v) for v in rec],
        f1_per_class=[float(v) for v in f1],
        support_per_class=[int(v) for v in support],
        confusion_matrix=cm.astype(np.int64),
        classification_report=report,
        ci_low=ci_low,
        ci_high=ci_high,
        ci_level=float(ci_level),
        n_bootstrap=int(n_bootstrap),
        bootstrap_unit=unit,
        n_groups=n_groups,
    )
    log.info(
        "%s: accuracy=%.4f [%s] macro_f1=%.4f n=%d",
        name,
        result.accuracy,
        "no CI" if ci_low is None else f"{ci_low:.4f}, {ci_high:.4f}",
        result.macro_f1,
        result.n_test,
    )
    return result


def comparison_table(results: Sequence[EvaluationResult]) -> pd.DataFrame:
    """One row per run, ranked by the run's selection figure (see :mod:`.ordering`)."""
    rows = [
        {
            "name": r.name,
            "accuracy": r.accuracy,
            "ci_low": _none_to_nan(r.ci_low),
            "ci_high": _none_to_nan(r.ci_high),
            "balanced_accuracy": r.balanced_accuracy,
            "macro_precision": r.macro_precision,
            "macro_recall": r.macro_recall,
            "macro_f1": r.macro_f1,
            "log_loss": r.log_loss,
            "n_test": int(r.n_test),
            # what model selection saw: validation and, where grouped cross-validation over the
            # training groups picked the models, its accuracy (NaN when unknown)
            "val_accuracy": _none_to_nan(r.extra.get("val_accuracy")),
            "cv_accuracy": _none_to_nan(r.extra.get("cv_accuracy")),
        }
        for r in results
    ]
    df = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    if df.empty:
        return df
    return order_by_selection(df, results)
