"""How late combiners score and pool member probabilities: the best member on given rows,
weights shrunk toward it, weighted log-linear pooling, and the rows and folds their guard
judges a rule on. Shared by the combiners, their guard (:mod:`.combiners`), the fusion models
and the grid's cross-validation of fused rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, log_loss

from ..data.folds import FoldError, Folds, training_folds
from .base import normalise_proba
from .modalities import simplex_grid

Probas = dict[str, np.ndarray]


def score(P: np.ndarray, y: np.ndarray, classes: np.ndarray) -> tuple[float, float]:
    """(accuracy, -log-loss): higher is better, compared in that order."""
    P = normalise_proba(P)
    return (round(float(accuracy_score(y, classes[P.argmax(axis=1)])), 12),
            -log_loss(y, P, labels=classes))


def best_member(probas: Probas, y: np.ndarray, classes: np.ndarray
                ) -> tuple[str, tuple[float, float]]:
    """The member most accurate on these rows (ties: lower log-loss), and its score."""
    scores = {m: score(p, y, classes) for m, p in probas.items()}
    best = max(scores, key=lambda m: scores[m])
    return best, scores[best]


def shrunk_weights(probas: Probas, y: np.ndarray, classes: np.ndarray, step: float,
                   pool: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   allowed: Sequence[str] | None = None, anchor: str | None = None
                   ) -> dict[str, float]:
    """Member weights on the simplex (resolution ``step``) that maximise accuracy of
    ``pool(weights, stacked probabilities)`` minus ``1/sqrt(n)`` per unit of weight moved away
    from the best member (ties: lower log-loss). The best member's one-hot vertex is always a
    candidate, so with little evidence, or none that mixing helps, it is that member alone.
    Members outside ``allowed`` (default: all) other than the best get weight 0; the best is
    ``anchor`` when given (a choice made on other evidence), else chosen on these rows among
    ``allowed`` (among all members when it is empty)."""
    names, n = list(probas), len(y)
    best = anchor or best_member({m: probas[m] for m in (allowed or names)}, y, classes)[0]
    stack = np.stack([probas[m] for m in names])
    vertex = np.array([float(m == best) for m in names])
    penalty = 1.0 / np.sqrt(n)
    best_key, best_w = None, vertex
    for w in simplex_grid(len(names), step):
        if allowed is not None and any(w[i] > 0 for i, m in enumerate(names)
                                       if m not in allowed and m != best):
            continue
        P = normalise_proba(pool(w, stack))
        gain = accuracy_score(y, classes[P.argmax(axis=1)]) - penalty * np.abs(
            w - vertex).sum() / 2
        key = (round(gain, 12), -log_loss(y, P, labels=classes))
        if best_key is None or key > best_key:
            best_key, best_w = key, w
    return {m: float(v) for m, v in zip(names, best_w, strict=True)}


def log_linear_pool(weights: np.ndarray, stack: np.ndarray, clip: float = 1e-7) -> np.ndarray:
    """Weighted geometric pooling of (M, N, K) member probabilities: exp(sum_m w_m log p_m),
    scaled per row (normalise afterwards)."""
    logs = np.tensordot(weights, np.log(np.clip(stack, clip, 1.0)), axes=1)
    return np.exp(logs - logs.max(axis=1, keepdims=True))


def thin_evidence(folds: Folds) -> str | None:
    """Why ``folds`` cannot measure whether fusing helps (a class cut into slices of one group
    shares recordings across them), or None when they can."""
    return (f"no held-out evidence that fusing helps ({'; '.join(folds.notes)})"
            if folds.notes else None)


def guard_folds(y: np.ndarray, groups: np.ndarray | None, n_folds: int, seed: int | None
                ) -> tuple[tuple[tuple[np.ndarray, np.ndarray], ...], str | None]:
    """The folds a guard scores a rule on, over rows it learns from, and why they cannot serve
    (:func:`thin_evidence`; no folds at all when a class has a single row)."""
    try:
        folds = training_folds(y, groups, n_folds, seed)
    except FoldError as err:
        return (), f"no held-out evidence that fusing helps ({err})"
    return folds.splits, thin_evidence(folds)


def with_check_rows(probas: Probas, y: np.ndarray,
                     folds: Sequence[tuple[np.ndarray, np.ndarray]],
                     check: tuple[Probas, np.ndarray]) -> tuple[Probas, np.ndarray, list]:
    """Learning rows followed by the check rows; each fold keeps the check rows on its fitting
    side, and the check rows are one more held-out fold (fitted on the learning rows)."""
    n, n_check = len(y), len(check[1])
    extra = np.arange(n, n + n_check)
    joined = {m: np.concatenate([p, check[0][m]]) for m, p in probas.items()}
    both = [(np.concatenate([fit, extra]), held) for fit, held in folds]
    return joined, np.concatenate([y, check[1]]), [*both, (np.arange(n), extra)]
