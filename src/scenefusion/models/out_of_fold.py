"""Out-of-fold member probabilities: what a learning combiner is fitted on when the
validation split is too thin to trust, computed once per member and fold set.

Folds respect groups (recordings / source videos), so a member never predicts rows of a
recording it was trained on; they are made by ``data.folds.training_folds``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict

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


def _key(est: Any, inp: Any, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
         classes: np.ndarray) -> str:
    """What identifies a set of out-of-fold probabilities: the unfitted member, its input,
    the labels, the folds and the columns."""
    return joblib.hash((est, inp, y, list(splits), classes))


def remember_out_of_fold(est: Any, inp: Any, y: np.ndarray,
                         splits: list[tuple[np.ndarray, np.ndarray]], classes: np.ndarray,
                         proba: np.ndarray) -> None:
    """Within a :func:`share_out_of_fold` block, record probabilities computed elsewhere (a
    grid row fitted in another process) as what :func:`out_of_fold_proba` would give for
    these arguments, so a fusion model over that member does not refit it fold by fold."""
    memo = _OOF_MEMO.get()
    if memo is not None:
        proba = np.array(proba, dtype=np.float64)
        proba.setflags(write=False)
        memo[_key(est, inp, y, splits, classes)] = proba


def rows_of(inp: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of one array, or of every modality of a mapping."""
    return subset_rows(inp, idx) if isinstance(inp, dict) else inp[idx]


def fold_proba(est: Any, inp: Any, y: np.ndarray, fit_rows: np.ndarray, held_out: np.ndarray,
               classes: np.ndarray) -> np.ndarray:
    """(held-out rows, K) probabilities from a clone of ``est`` fitted on ``fit_rows``: one
    fold of :func:`out_of_fold_proba`, also run on its own (a grid runner's unit of work)."""
    fold = clone(est).fit(rows_of(inp, fit_rows), y[fit_rows])
    return align_proba(np.asarray(fold.predict_proba(rows_of(inp, held_out)), np.float64),
                       fold.classes_, classes)


def out_of_fold_proba(est: Any, inp: Any, y: np.ndarray,
                      splits: list[tuple[np.ndarray, np.ndarray]], classes: np.ndarray
                      ) -> np.ndarray:
    """(N, K) probabilities of each row from a clone of ``est`` fitted without its fold.

    Array inputs go through ``cross_val_predict``; dict inputs (the hybrid's early member)
    use the identical loop by hand because ``cross_val_predict`` cannot index a dict.
    """
    memo = _OOF_MEMO.get()
    key = None if memo is None else _key(est, inp, y, splits, classes)
    if key is not None and key in memo:
        return memo[key]
    if isinstance(inp, np.ndarray):
        P = np.asarray(cross_val_predict(est, inp, y, cv=splits, method="predict_proba"),
                       dtype=np.float64)
    else:
        P = np.zeros((len(y), len(classes)))
        for tr, te in splits:
            P[te] = fold_proba(est, inp, y, tr, te, classes)
    if key is not None:
        P.setflags(write=False)  # shared from now on: nobody may edit it
        memo[key] = P
    return P
