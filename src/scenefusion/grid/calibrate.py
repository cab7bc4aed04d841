"""What a run saves beside each model: a calibration temperature kept only where it helps on
held-out groups, and whether a fused row beat its members on the selection estimate."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..evaluation.calibration import Calibration
from .jobs import GridData
from .rows import Candidate


def columns(model: Any, y: np.ndarray) -> np.ndarray:
    """Class indices `y` as column indices of `model.predict_proba`."""
    return np.searchsorted(np.asarray(model.classes_), y)


def calibrate(candidate: Candidate, data: GridData, y_test: np.ndarray) -> Calibration | None:
    """A temperature for a saved model, fitted on its out-of-fold training predictions where
    selection used them, else on validation; kept only if it lowers ECE on held-out groups
    (None without either)."""
    model = candidate.model
    if candidate.oof_proba is not None:
        proba, rows, where = candidate.oof_proba, data.train, "out-of-fold training predictions"
    elif candidate.val_proba is not None and len(data.val):
        proba, rows, where = candidate.val_proba, data.val, "validation split"
    else:
        return None
    return Calibration.fit_checked(proba, columns(model, data.y[rows]), data.groups[rows],
                                   candidate.test_proba, columns(model, y_test), where)


def calibration_note(folder: str, c: Calibration) -> str:
    held_out = ("" if c.held_out_ece_before is None else
                f"held-out-group ECE {c.held_out_ece_before:.3f} -> {c.held_out_ece_after:.3f}")
    if c.held_out_confidence is not None and c.held_out_accuracy is not None:
        held_out += (f"{'; ' if held_out else ''}on held-out groups {c.held_out_confidence:.0%} "
                     f"sure on average, right {c.held_out_accuracy:.0%} of the time")
    if not c.applied:
        return (f"{folder}/ not calibrated: a temperature fitted on the {c.fitted_on} did not "
                f"lower ECE on held-out groups ({held_out or 'too few groups to check'}); "
                f"test ECE {c.ece_before:.3f}")
    return (f"{folder}/ calibrated on the {c.fitted_on}: temperature {c.temperature:.2f} "
            f"({held_out}), test ECE {c.ece_before:.3f} -> {c.ece_after:.3f}")


def below_best_member(fused: Candidate, candidates: list[Candidate], selection: str) -> str:
    """A note when a fused row's selection estimate is below its best member's ("" if not)."""
    by_name = {c.name: c for c in candidates}
    members = [by_name[m.name] for m in fused.spec.members if m.name in by_name]
    if not members:
        return ""
    best = max(members, key=lambda c: c.val_rank)
    if fused.val_rank[0] >= best.val_rank[0]:
        return ""
    what = "grouped cross-validation" if selection == "cv" else "validation"
    return (f"{fused.name} is below its best member on {what} ({fused.val_rank[0]:.3f} < "
            f"{best.name} {best.val_rank[0]:.3f}): fusion does not help here")
