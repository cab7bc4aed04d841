"""Shared plumbing for every scenefusion classifier: the model registry, declared
capabilities and input helpers.

All models (scikit-learn pipelines and torch networks alike) expose one estimator API --
``fit(X, y, X_val=None, y_val=None)``, ``predict``, ``predict_proba``, ``classes_`` and
``get_params`` -- and declare :class:`Capabilities`, so that fusion, evaluation and the CLI
never need to know what they hold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from scipy import sparse
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from ..registry import Registry
from .sequences import pool_sequence

log = logging.getLogger(__name__)

#: Stable model id -> estimator class; filled by :func:`register_model` when
#: :mod:`scenefusion.models` is imported.
MODELS: Registry[type] = Registry("model")

#: Signature of the optional training-progress callback: ``(epoch, train_loss, val_loss)``.
ProgressCallback = Callable[[int, float, float | None], None]

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class Capabilities:
    """What an estimator can do, declared by its class so that callers ask instead of guessing
    from ``fit``'s signature or a display name.

    ``sequence_input``: wants (N, T, C) sequences (2-D models get sequences pooled).
    ``uses_validation``: ``fit(X, y, X_val, y_val)`` uses a validation set (early stopping,
    tuning, combiner learning). ``reports_progress``: ``fit(..., progress=callback)``.
    ``tunable``: ``tune=True`` runs a small grid search on the validation set.
    ``embedding``: a fitted model has ``embed(X) -> (N, H)``, usable as a learned feature.
    ``uses_groups``: ``fit(..., groups=...)`` keeps source groups together in inner folds.
    ``modalities``: which inputs it is offered for in the comparison grid.
    """

    sequence_input: bool = False
    uses_validation: bool = False
    reports_progress: bool = False
    tunable: bool = False
    embedding: bool = False
    uses_groups: bool = False
    modalities: tuple[str, ...] = ("image", "audio")

    def summary(self) -> str:
        """Short human-readable list, e.g. 'audio; sequence input, embedding'."""
        flags = [name.replace("_", " ") for name in ("sequence_input", "embedding", "tunable")
                 if getattr(self, name)]
        return "; ".join(["+".join(self.modalities), ", ".join(flags)]).rstrip("; ")


#: What a plain scikit-learn estimator (no declaration) can do: 2-D rows, fit(X, y) only.
PLAIN = Capabilities()


def capabilities(model: Any) -> Capabilities:
    """The declared capabilities of ``model`` (also through ``FrozenEstimator``)."""
    caps = getattr(model, "capabilities", None)
    return caps if isinstance(caps, Capabilities) else PLAIN


def register_model(model_id: str, description: str) -> Callable[[T], T]:
    """Class decorator: make a model constructible by its stable id (see :data:`MODELS`)."""

    def decorator(cls: T) -> T:
        MODELS.register(model_id, cls, description=description)
        cls.model_id = model_id
        return cls

    return decorator


def available_models() -> list[str]:
    """Registered model ids. Complete whenever this runs: importing this module runs the
    ``scenefusion.models`` package first, which imports every model module."""
    return MODELS.list()


def make_model(model_id: str, **params: Any) -> Any:
    """Build an unfitted model from its stable id; keywords are its ``__init__`` arguments.

    Unknown ids and unknown hyper-parameters fail here, naming the valid ones, rather than
    after the data have been loaded.
    """
    cls = MODELS.get(model_id)
    try:
        return cls(**params)
    except TypeError:
        valid = sorted(cls().get_params(deep=False))
        bad = sorted(set(params) - set(valid))
        raise ValueError(
            f"invalid hyper-parameter(s) {bad} for model {model_id!r}; valid: {', '.join(valid)}"
        ) from None


def check_hyper_parameters(model: Any) -> Any:
    """Check ``model``'s hyper-parameter values against its declared constraints (scikit-learn's
    ``_parameter_constraints``, on the model and, for a wrapper of a scikit-learn estimator, on
    the estimator it builds) before any data is read; a bad value raises ValueError naming the
    parameter, the rule and the value given."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        if getattr(model, "_parameter_constraints", None):
            model._validate_params()
        build = getattr(model, "_make_estimator", None)
        if build is not None:
            estimator = build(dict(model.resolved_params()))
            # the estimator and any it wraps (e.g. the SVC inside CalibratedClassifierCV)
            for part in [estimator, *estimator.get_params(deep=True).values()]:
                if getattr(part, "_parameter_constraints", None) and hasattr(part,
                                                                            "_validate_params"):
                    part._validate_params()
    except InvalidParameterError as exc:
        raise ValueError(str(exc)) from None
    return model


def fit_model(model: Any, X: Any, y: np.ndarray, X_val: Any = None, y_val: Any = None,
              *, progress: ProgressCallback | None = None, groups: np.ndarray | None = None
              ) -> Any:
    """Fit ``model``, passing the validation set, progress callback and groups only to models
    whose declared capabilities say they use them."""
    caps = capabilities(model)
    kwargs: dict[str, Any] = {}
    if caps.uses_validation and X_val is not None and y_val is not None:
        kwargs.update(X_val=X_val, y_val=y_val)
    if caps.reports_progress and progress is not None:
        kwargs["progress"] = progress
    if caps.uses_groups and groups is not None:
        kwargs["groups"] = groups
    return model.fit(X, y, **kwargs)


def accepts_sequences(model: Any) -> bool:
    """True when ``model`` wants (N, T, C) sequences rather than (N, D) feature rows."""
    return capabilities(model).sequence_input


def prepare_input(model: Any, X: Any) -> Any:
    """Shape ``X`` for ``model``: pool (N, T, C) sequences for 2-D models; sequence models
    need 3-D. Anything else is passed on for scikit-learn's ``validate_data`` to check, so bad
    input (1-D, sparse, NaN, empty) gets scikit-learn's standard messages."""
    if sparse.issparse(X):
        return X
    X = np.asarray(X)
    if accepts_sequences(model):
        if X.ndim != 3:
            raise ValueError(
                f"{type(model).__name__} needs (N, T, C) sequences, got shape {X.shape}"
            )
        return X
    if X.ndim == 3:
        return pool_sequence(X)
    return X


def check_targets(y: Any) -> np.ndarray:
    """Class labels as a 1-D array; a column vector is accepted with a warning and continuous
    targets are refused ("Unknown label type"), as scikit-learn classifiers do."""
    y = column_or_1d(y, warn=True)
    check_classification_targets(y)
    return y


def encode_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (classes_, y_encoded) with classes_ = np.unique(y), as scikit-learn does."""
    y = check_targets(y)
    classes, y_enc = np.unique(y, return_inverse=True)
    return classes, y_enc.astype(np.int64)


def normalise_proba(P: np.ndarray) -> np.ndarray:
    """Float64 copy of ``P`` with non-negative rows summing exactly to 1 (guards float32 drift)."""
    P = np.clip(np.asarray(P, dtype=np.float64), 0.0, None)
    s = P.sum(axis=1, keepdims=True)
    s[s <= 0] = 1.0
    return P / s
