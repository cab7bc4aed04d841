"""Temperature scaling: one scalar per model that softens (T > 1) or sharpens (T < 1) its
probabilities without changing any prediction (log-probabilities divided by T keep their
order). It lives with the models because fusion calibrates each member before combining them,
and the evaluation layer calibrates saved models with the same two functions.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

_EPS = 1e-12
#: The temperatures searched: from 20x sharper to 20x softer.
T_BOUNDS = (0.05, 20.0)


def _scaled_log_proba(proba: np.ndarray, temperature: float) -> np.ndarray:
    logp = np.log(np.clip(np.asarray(proba, dtype=np.float64), _EPS, 1.0))
    return log_softmax(logp / temperature, axis=1)


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities softened (T > 1) or sharpened (T < 1); argmax unchanged."""
    return np.exp(_scaled_log_proba(proba, temperature))


def _nll(proba: np.ndarray, y: np.ndarray, temperature: float) -> float:
    return float(-_scaled_log_proba(proba, temperature)[np.arange(len(y)), y].mean())


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 that minimises log-loss of `proba` on labels `y` (class indices).

    Without a single error to learn from, log-loss only falls as T -> 0: such a fit says
    nothing about new data, so the answer is then never sharper than the model (T >= 1).
    """
    y = np.asarray(y, dtype=int)
    no_errors = bool(np.all(np.asarray(proba).argmax(axis=1) == y))
    low = 1.0 if no_errors else T_BOUNDS[0]
    found = minimize_scalar(lambda t: _nll(proba, y, t), bounds=(low, T_BOUNDS[1]),
                            method="bounded")
    return float(found.x)
