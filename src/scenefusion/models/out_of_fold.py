"""Out-of-fold member probabilities: what a learning combiner is fitted on when the
validation split is too thin to trust, computed once per member and fold set.

Folds respect groups (recordings / source videos), so a member never predicts rows of a
recording it was trained on.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

from .modalities import align_proba, subset_rows

#: Out-of-fold member probabilities already computed in this block (see share_out_of_fold).
_OOF_MEMO: contextvars.ContextVar[dict[str, np.ndarray] | None] = contextvars.ContextVar(
    "oof_memo", default=None)


@contextlib.contextmanager
def share_out_of_fold() -> Iterator[None]:
    """Within the block, fusion models whose combiners learn out of fold reuse each other's
    out-of-fold member probabilities instead of refitting the same members on the same folds.

    A comparison grid fits ``late:weighted``, ``late:stacking`` and ``hybrid:*`` on the same
    members and folds; each used to refit every member k times. Reuse is keyed by the member's
    unfitted parameters, its input, the labels and the folds, so only identical work is shared
    and the probabilities are the ones a refit would give (the fits are seeded).
    """
    token = _OOF_MEMO.set({})
    try:
        yield
    finally:
        _OOF_MEMO.reset(token)


def cv_splits(y: np.ndarray, groups: np.ndarray | None, cv: int, random_state: int | None
              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """At most ``cv`` stratified folds, grouped when ``groups`` is given."""
    dummy = np.zeros(len(y))
    if groups is not None:
        groups = np.asarray(groups)
        n_splits = min(cv, len(np.unique(groups)))
        if n_splits < 2:
            raise ValueError("need at least two groups for out-of-fold predictions")
        splitter: Any = StratifiedGroupKFold(n_splits=n_splits, shuffle=True,
                                             random_state=random_state)
    else:
        n_splits = min(cv, int(np.unique(y, return_counts=True)[1].min()))
        if n_splits < 2:
            raise ValueError("every class needs >= 2 training rows for out-of-fold predictions")
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return list(splitter.split(dummy, y, groups))


def out_of_fold_proba(est: Any, inp: Any, y: np.ndarray,
                      splits: list[tuple[np.ndarray, np.ndarray]], classes: np.ndarray
                      ) -> np.ndarray:
    """(N, K) probabilities of each row from a clone of ``est`` fitted without its fold.

    Array inputs go through ``cross_val_predict``; dict inputs (the hybrid's early member)
    use the identical loop by hand because ``cross_val_predict`` cannot index a dict.
    """
    memo = _OOF_MEMO.get()
    key = None if memo is None else joblib.hash((est, inp, y, splits, classes))
    if key is not None and key in memo:
        return memo[key]
    if isinstance(inp, np.ndarray):
        P = np.asarray(cross_val_predict(est, inp, y, cv=splits, method="predict_proba"),
                       dtype=np.float64)
    else:
        P = np.zeros((len(y), len(classes)))
        for tr, te in splits:
            fold = clone(est).fit(subset_rows(inp, tr), y[tr])
            P[te] = align_proba(fold.predict_proba(subset_rows(inp, te)), fold.classes_, classes)
    if key is not None:
        P.setflags(write=False)  # shared from now on: nobody may edit it
        memo[key] = P
    return P
