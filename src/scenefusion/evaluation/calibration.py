"""Calibrated confidence: expected calibration error and temperature scaling.

A model that answers 1.000 for a photo it has never seen the like of is not wrong about the
class but about how sure it is. Temperature scaling (one scalar, fitted on the validation split
by log-loss) fixes most of that without changing any prediction: dividing log-probabilities by
T > 0 keeps their order. It works on the probabilities every model returns, so one method
serves classical, torch and fused models alike, and a saved bundle only needs T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.folds import FoldError, training_folds
from ..models.temperature import apply_temperature, fit_temperature

#: Below this margin between the two most probable classes a prediction is reported as a
#: near-tie: the model cannot tell them apart.
LOW_MARGIN = 0.05


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """|accuracy - confidence| averaged over equal-width confidence bins, weighted by the share
    of items in each bin (the usual top-label ECE)."""
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)
    if len(y) == 0:
        return float("nan")
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def cross_fitted(proba: np.ndarray, y: np.ndarray, groups: np.ndarray,
                 max_folds: int = 5) -> np.ndarray | None:
    """Each row's probabilities under a temperature fitted on the other groups (the folds
    every choice uses, pooled: no fold holds out all of a class); None without two groups of
    every class to hold out, where a held-out check would mean nothing."""
    try:
        folds = training_folds(y, groups, max_folds, slice_lone_groups=False)
    except FoldError:
        return None
    scaled = np.empty_like(np.asarray(proba, dtype=np.float64))
    for fit_rows, held_out in folds:
        t = fit_temperature(proba[fit_rows], y[fit_rows])
        scaled[held_out] = apply_temperature(proba[held_out], t)
    return scaled


def cross_fitted_ece(proba: np.ndarray, y: np.ndarray, groups: np.ndarray,
                     max_folds: int = 5) -> tuple[float, float] | None:
    """ECE on held-out groups before and after a temperature fitted on the other groups
    (:func:`cross_fitted`); None where that check would mean nothing."""
    scaled = cross_fitted(proba, y, groups, max_folds)
    if scaled is None:
        return None
    return expected_calibration_error(proba, y), expected_calibration_error(scaled, y)


#: Held-out mean confidence above held-out accuracy by more than this is worth a warning:
#: the model's probabilities overstate how sure it is on recordings it never heard.
OVERCONFIDENT = 0.15


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and what it did, as stored in bundle.json and the run report.

    ``applied`` is False when, on groups held out from the fit, the temperature did not lower
    ECE (``held_out_ece_before`` / ``_after``): the saved model then keeps T = 1, since a
    temperature learnt from a few recordings can make confidence worse on new ones.
    """

    temperature: float
    fitted_on: str
    ece_before: float
    ece_after: float
    n_items: int
    applied: bool = True
    held_out_ece_before: float | None = None
    held_out_ece_after: float | None = None
    #: mean top probability and accuracy on groups held out from what produced the
    #: probabilities, with the kept temperature (cross-fitted when one is kept)
    held_out_confidence: float | None = None
    held_out_accuracy: float | None = None

    @classmethod
    def fit_checked(cls, proba: np.ndarray, y: np.ndarray, groups: np.ndarray,
                    test_proba: np.ndarray, y_test: np.ndarray, fitted_on: str
                    ) -> Calibration:
        """Fit on (proba, y) -- validation rows or out-of-fold training rows -- keep it only
        if cross-fitting over ``groups`` shows it lowers ECE on held-out groups; report test
        ECE before and after what is kept."""
        scaled = cross_fitted(proba, y, groups)
        check = None if scaled is None else (expected_calibration_error(proba, y),
                                             expected_calibration_error(scaled, y))
        t = fit_temperature(proba, y)
        applied = check is not None and check[1] < check[0]
        kept = t if applied else 1.0
        held = np.asarray(scaled if applied else proba, dtype=np.float64)
        return cls(temperature=round(kept, 4), fitted_on=fitted_on,
                   ece_before=round(expected_calibration_error(test_proba, y_test), 4),
                   ece_after=round(expected_calibration_error(
                       apply_temperature(test_proba, kept), y_test), 4),
                   n_items=len(y), applied=applied,
                   held_out_ece_before=None if check is None else round(check[0], 4),
                   held_out_ece_after=None if check is None else round(check[1], 4),
                   held_out_confidence=round(float(held.max(axis=1).mean()), 4),
                   held_out_accuracy=round(float(np.mean(held.argmax(axis=1) == y)), 4))

    @classmethod
    def fit(cls, val_proba: np.ndarray, y_val: np.ndarray, test_proba: np.ndarray,
            y_test: np.ndarray) -> Calibration:
        """Fit on validation; report ECE on the test split before and after."""
        t = fit_temperature(val_proba, y_val)
        return cls(temperature=round(t, 4), fitted_on="validation split",
                   ece_before=round(expected_calibration_error(test_proba, y_test), 4),
                   ece_after=round(expected_calibration_error(
                       apply_temperature(test_proba, t), y_test), 4),
                   n_items=len(y_val))

    def to_dict(self) -> dict[str, float | str | int]:
        return {"method": "temperature", "temperature": self.temperature,
                "fitted_on": self.fitted_on, "test_ece_before": self.ece_before,
                "test_ece_after": self.ece_after, "n_items": self.n_items,
                "applied": self.applied, "held_out_ece_before": self.held_out_ece_before,
                "held_out_ece_after": self.held_out_ece_after,
                "held_out_confidence": self.held_out_confidence,
                "held_out_accuracy": self.held_out_accuracy}


def near_tie(proba_row: np.ndarray, classes: list[str], margin: float = LOW_MARGIN) -> str:
    """A warning when the top two classes are within `margin`, else ""."""
    order = np.argsort(-proba_row)
    if len(order) < 2 or proba_row[order[0]] - proba_row[order[1]] >= margin:
        return ""
    close = [i for i in order if proba_row[order[0]] - proba_row[i] < margin]
    listed = ", ".join(f"{classes[i]} {proba_row[i]:.3f}" for i in close)
    return f"low margin: the model cannot tell {listed} apart"
