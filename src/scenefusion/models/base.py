"""Shared plumbing for every scenefusion classifier: the model registry and input helpers.

All models (scikit-learn pipelines and torch networks alike) expose one estimator API --
``fit(X, y, X_val=None, y_val=None)``, ``predict``, ``predict_proba``, ``classes_`` and
``get_params`` -- so that fusion, evaluation and the CLI never need to know what they hold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

logger = logging.getLogger(__name__)

#: Stable model id -> estimator class. Filled by the ``@register`` decorator when
#: :mod:`scenefusion.models` is imported.
MODEL_REGISTRY: dict[str, type] = {}

#: Signature of the optional training-progress callback: ``(epoch, train_loss, val_loss)``.
ProgressCallback = Callable[[int, float, float | None], None]

T = TypeVar("T", bound=type)


def register(model_id: str) -> Callable[[T], T]:
    """Class decorator: make a model constructible by its stable string id."""

    def decorator(cls: T) -> T:
        if model_id in MODEL_REGISTRY and MODEL_REGISTRY[model_id] is not cls:
            raise ValueError(f"model id {model_id!r} registered twice")
        cls.model_id = model_id
        MODEL_REGISTRY[model_id] = cls
        return cls

    return decorator


def available_models() -> list[str]:
    """Sorted list of registered model ids (imports the model modules so the list is complete)."""
    import scenefusion.models  # noqa: F401  (registration side effect)

    return sorted(MODEL_REGISTRY)


def make_model(model_id: str, **params: Any) -> Any:
    """Build an unfitted model from its stable id; unknown ids fail loudly, listing valid ones.

    Keyword arguments are the model's constructor arguments. For the classical models any
    keyword that is not a wrapper argument is treated as a hyper-parameter of the underlying
    scikit-learn estimator (``make_model("svm", C=10)``).
    """
    valid = available_models()
    if model_id not in MODEL_REGISTRY:
        raise ValueError(f"unknown model id {model_id!r}; valid ids: {', '.join(valid)}")
    cls = MODEL_REGISTRY[model_id]
    factory = getattr(cls, "from_config", None)
    return factory(**params) if factory is not None else cls(**params)


def accepts_sequences(model: Any) -> bool:
    """True when ``model`` wants (N, T, C) sequences rather than (N, D) feature rows."""
    return bool(getattr(model, "accepts_sequences", False))


def pool_sequence(X: np.ndarray) -> np.ndarray:
    """Summarise (N, T, C) sequences as (N, 4C) [mean | std | min | max] over time.

    Lets order-agnostic classical models use audio MFCC sequences; the block order is fixed so
    that downstream feature indices stay meaningful.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3:
        raise ValueError(f"pool_sequence expects (N, T, C) sequences, got shape {X.shape}")
    return np.concatenate(
        [X.mean(axis=1), X.std(axis=1), X.min(axis=1), X.max(axis=1)], axis=1
    ).astype(np.float32)


def prepare_input(model: Any, X: np.ndarray) -> np.ndarray:
    """Shape ``X`` for ``model``: pool sequences for 2-D models; sequence models need 3-D."""
    X = np.asarray(X)
    if accepts_sequences(model):
        if X.ndim != 3:
            raise ValueError(
                f"{type(model).__name__} needs (N, T, C) sequences, got shape {X.shape}"
            )
        return X
    if X.ndim == 3:
        return pool_sequence(X)
    if X.ndim != 2:
        raise ValueError(f"expected (N, D) features or (N, T, C) sequences, got shape {X.shape}")
    return X


def encode_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (classes_, y_encoded) with classes_ = np.unique(y), as scikit-learn does."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    classes, y_enc = np.unique(y, return_inverse=True)
    return classes, y_enc.astype(np.int64)


def normalise_proba(P: np.ndarray) -> np.ndarray:
    """Float64 copy of ``P`` with non-negative rows summing exactly to 1 (guards float32 drift)."""
    P = np.clip(np.asarray(P, dtype=np.float64), 0.0, None)
    s = P.sum(axis=1, keepdims=True)
    s[s <= 0] = 1.0
    return P / s
