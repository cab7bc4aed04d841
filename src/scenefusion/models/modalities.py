"""Helpers on modality dicts (``{"image": (N, D), "audio": (N, T, C)}``) shared by early, late
and hybrid fusion: presence checks, row subsets, member resolution and probability alignment."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator

from .base import Capabilities, make_model

Modalities = Mapping[str, np.ndarray | None]

#: What every fusion estimator can do: learn combiners on a validation set; keep groups
#: together in out-of-fold predictions.
FUSION_CAPABILITIES = Capabilities(uses_validation=True, uses_groups=True)


def present(X: Modalities | None, key: str) -> bool:
    return X is not None and key in X and X[key] is not None


def subset_rows(X: Modalities, idx: np.ndarray) -> dict[str, np.ndarray | None]:
    return {k: None if v is None else np.asarray(v)[idx] for k, v in X.items()}


def check_mapping(X: Any, what: str = "X") -> Modalities:
    if not isinstance(X, Mapping):
        raise TypeError(f"{what} must be a dict of modality -> array, got {type(X).__name__}")
    sizes = {k: len(v) for k, v in X.items() if v is not None}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{what}: modalities have different numbers of rows: {sizes}")
    return X


def resolve_model(model: Any) -> Any:
    """A model id string becomes a fresh registry model; an estimator is used as given."""
    return make_model(model) if isinstance(model, str) else model


def refittable(model: Any) -> Any:
    """An unfitted copy of a member for out-of-fold refits: a frozen (prefit) member is
    unwrapped first, because cloning a ``FrozenEstimator`` returns the fitted model itself."""
    if isinstance(model, FrozenEstimator):
        model = model.estimator
    return clone(resolve_model(model))


def align_proba(P: np.ndarray, member_classes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Reorder/expand a member's probability columns to the fusion's ``classes_``."""
    member_classes = np.asarray(member_classes)
    if np.array_equal(member_classes, classes):
        return P
    if not np.isin(member_classes, classes).all():
        raise ValueError(f"member classes {member_classes} not a subset of {classes}")
    out = np.zeros((len(P), len(classes)))
    out[:, np.searchsorted(classes, member_classes)] = P
    return out


def simplex_grid(n_members: int, step: float) -> np.ndarray:
    """All weight vectors on the simplex with resolution ``step`` (stars and bars)."""
    n = max(1, int(round(1.0 / step)))
    rows = []
    for bars in itertools.combinations(range(n + n_members - 1), n_members - 1):
        edges = (-1, *bars, n + n_members - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(n_members)])
    return np.asarray(rows, dtype=np.float64) / n


