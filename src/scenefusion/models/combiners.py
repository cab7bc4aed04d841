"""Late combiners: how late and hybrid fusion turn member probabilities into one answer.

Each combiner is a class that registers itself here with :func:`register_combiner`; that one
decorator makes ``late:<id>`` and ``hybrid:<id>`` fusion ids, which config validation,
``scenefusion list`` and the grid read, so a new combiner needs no other edit. Its settings
are annotated class attributes with defaults (:mod:`scenefusion.models.combiner_base`), set
from a config's ``fusion.params`` through :func:`resolve_combiner`. A combiner that learns
(``learns = True``) is fitted on member probabilities the fusion model computed on validation
rows or out of fold on training rows, never on in-sample or test predictions.

The defaults ``product``, ``stacking`` and ``shrunk`` are *guarded* (:meth:`Combiner.learn`):
calibrated members, and the learnt rule kept only where held-out folds say it beats the best
member alone. Unguarded combiners (``mean``, ``weighted``, a user's own) do what they say, so
the comparison still shows what naive rules do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

import numpy as np
from pydantic import Field
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss

from ..errors import InvalidValue
from ..registry import Registry
from .base import normalise_proba
from .combiner_base import Combiner, Probas, unknown_settings
from .modalities import align_proba, simplex_grid
from .pooling import log_linear_pool, shrunk_weights

__all__ = ["COMBINERS", "Combiner", "make_combiner", "register_combiner", "resolve_combiner"]

log = logging.getLogger(__name__)

#: a weight grid's resolution (1/step grid points per member; finer grows combinatorially)
WeightStep = Annotated[float, Field(ge=0.01, le=1.0)]

#: Combiner id -> its class.
COMBINERS: Registry[type[Combiner]] = Registry("late combiner")

C = TypeVar("C", bound=type[Combiner])


def register_combiner(id: str, *, description: str) -> Callable[[C], C]:
    """Class decorator: register a combiner under ``id`` (kept as ``cls.id``);
    ``late:<id>`` and ``hybrid:<id>`` become fusion ids
    (:data:`scenefusion.models.fusion.FUSION` reads this registry)."""

    def add(cls: C) -> C:
        COMBINERS.register(id, cls, description=description)
        cls.id = id
        return cls

    return add


def make_combiner(id: str, **settings: Any) -> Combiner:
    """An unfitted combiner ``id`` with ``settings``; an unknown id names the registered ones,
    an unknown setting or a bad value names the combiner and its settings."""
    cls = COMBINERS.get(id)
    unknown = [n for n in settings if n not in cls.setting_names()]
    if unknown:
        raise InvalidValue(unknown_settings(cls, unknown))
    return cls(**settings)


def resolve_combiner(id: str, settings: Mapping[str, Any] | None = None) -> Combiner:
    """The prototype of combiner ``id`` with ``settings`` (a config's ``fusion.params[id]``;
    None: its defaults), checked: what a late or hybrid model is given and clones per fit."""
    return make_combiner(id, **dict(settings or {}))


@register_combiner("mean", description="average of the members' probabilities")
class MeanCombiner(Combiner):
    """Every member counts the same."""


@register_combiner("weighted",
                   description="weighted average, weights searched on validation predictions")
class WeightedCombiner(Combiner):
    """A weighted average; the weights come from a simplex grid search (step ``weight_step``)
    that maximises accuracy, ties broken by the lower log-loss."""

    learns = True
    prefers_validation = True
    weight_step: WeightStep = 0.1

    def fit(self, probas: Probas, y: np.ndarray, classes: np.ndarray) -> WeightedCombiner:
        names = list(probas)
        stack = np.stack([probas[n] for n in names])  # (M, N, K)
        best_key, best_w = None, None
        for w in simplex_grid(len(names), self.weight_step):
            P = normalise_proba(np.tensordot(w, stack, axes=1))
            key = (accuracy_score(y, classes[np.argmax(P, axis=1)]),
                   -log_loss(y, P, labels=classes))
            if best_key is None or key > best_key:
                best_key, best_w = key, w
        self.weights = {n: float(v) for n, v in zip(names, best_w, strict=True)}
        log.info("weighted combiner: tuned weights %s (acc=%.3f)", self.weights, best_key[0])
        return self

    def combine(self, probas: Probas, complete: bool) -> np.ndarray:
        w = np.array([self.weights[n] for n in probas])
        if w.sum() <= 0:  # only members weighted 0 could run: fall back to their mean
            w = np.ones(len(w))
        return sum(wi * p for wi, p in zip(w / w.sum(), probas.values(), strict=True))

    def shares(self, names: list[str]) -> np.ndarray:
        return np.array([self.weights[n] for n in names], dtype=float)

    def get_state(self) -> dict[str, Any]:
        return {"weights": self.weights}

    def set_state(self, state: dict[str, Any], names: list[str], classes: np.ndarray) -> None:
        weights = state.get("weights")
        if (not isinstance(weights, dict) or set(weights) != set(names) or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and np.isfinite(w)
                and w >= 0 for w in weights.values())):
            raise ValueError(f"state 'weights' must give a non-negative number for each "
                             f"member {names}")
        self.weights = dict(weights)


@register_combiner("product",
                   description="weighted product (log-linear pooling) of calibrated members, "
                               "weights out of fold, shrunk toward the best member")
class ProductCombiner(Combiner):
    """Weighted geometric mean of the members' calibrated probabilities: a member that is sure
    a class is wrong can veto it, as much as its weight allows (probabilities are clipped at
    ``clip`` so a zero does not veto outright). The weights are learnt like ``shrunk``'s
    (:func:`shrunk_weights`): with no evidence that mixing helps, the best member alone."""

    learns = True
    guarded = True
    weight_step: WeightStep = 0.1
    clip: Annotated[float, Field(gt=0.0, lt=0.5)] = 1e-7

    def fit(self, probas: Probas, y: np.ndarray, classes: np.ndarray) -> ProductCombiner:
        self.weights = shrunk_weights(probas, y, classes, self.weight_step, self._pool,
                                      anchor=getattr(self, "anchor", None))
        log.info("product combiner: weights %s", self.weights)
        return self

    def _pool(self, weights: np.ndarray, stack: np.ndarray) -> np.ndarray:
        return log_linear_pool(weights, stack, self.clip)

    def combine(self, probas: Probas, complete: bool) -> np.ndarray:
        weights = getattr(self, "weights", None)  # old bundles: an unweighted product
        w = np.array([weights[m] for m in probas]) if weights else np.ones(len(probas))
        if w.sum() <= 0:  # only members weighted 0 could run: their plain product
            w = np.ones(len(w))
        return self._pool(w / w.sum(), np.stack(list(probas.values())))

    def shares(self, names: list[str]) -> np.ndarray:
        weights = getattr(self, "weights", None)
        return np.array([weights[n] for n in names]) if weights else np.ones(len(names))

    def get_state(self) -> dict[str, Any]:
        return {"weights": getattr(self, "weights", None)}

    def set_state(self, state: dict[str, Any], names: list[str], classes: np.ndarray) -> None:
        weights = state.get("weights")
        if weights is None:  # saved before product learnt weights
            self.weights = None
            return
        WeightedCombiner.set_state(self, state, names, classes)  # the same check


@register_combiner("stacking", description="logistic-regression meta-learner on validation "
                                           "(or out-of-fold) predictions")
class StackingCombiner(Combiner):
    """A logistic regression (``C = meta_C``) on the members' concatenated probabilities.
    With a member missing it cannot run, so the members that ran are averaged."""

    learns = True
    guarded = True
    parts = ("meta",)
    meta_C: Annotated[float, Field(gt=0.0)] = 1.0

    def fit(self, probas: Probas, y: np.ndarray, classes: np.ndarray) -> StackingCombiner:
        self.classes = classes
        # lbfgs draws no random numbers: the seed only makes the saved object the same
        meta = LogisticRegression(C=self.meta_C, max_iter=2000, random_state=0)
        self.meta = meta.fit(np.concatenate(list(probas.values()), axis=1), y)
        return self

    def combine(self, probas: Probas, complete: bool) -> np.ndarray:
        if not complete:
            return super().combine(probas, complete)
        P = self.meta.predict_proba(np.concatenate(list(probas.values()), axis=1))
        return align_proba(P, self.meta.classes_, self.classes)

    def shares(self, names: list[str]) -> np.ndarray:
        """Each member's share of the meta-learner's absolute coefficients."""
        coef = np.abs(np.atleast_2d(self.meta.coef_))
        return np.array([b.sum() for b in np.array_split(coef, len(names), axis=1)])

    def set_state(self, state: dict[str, Any], names: list[str], classes: np.ndarray) -> None:
        self.classes = classes

    def check_part(self, part: str, names: list[str], classes: np.ndarray) -> None:
        meta = self.meta
        if [str(c) for c in np.asarray(getattr(meta, "classes_", [])).tolist()] != [
                str(c) for c in classes.tolist()]:
            raise ValueError(f"predicts classes {getattr(meta, 'classes_', None)} but the "
                             f"manifest lists {classes.tolist()}")
        inputs = len(names) * len(classes)
        if getattr(meta, "n_features_in_", inputs) != inputs:
            raise ValueError(f"expects {meta.n_features_in_} inputs but {len(names)} "
                             f"members x {len(classes)} classes give {inputs}")


@register_combiner("shrunk", description="weighted average chosen by out-of-fold log-loss, "
                                         "shrunk toward the better member; a member near "
                                         "chance gets weight 0")
class ShrunkCombiner(WeightedCombiner):
    """Fusion that should only help: a weighted average whose weights maximise accuracy on the
    rows it learns from minus a penalty ``1/sqrt(n)`` per unit of weight moved away from the
    better member (ties: lower log-loss). That member's one-hot vertex is always a candidate,
    so with little evidence, or none that mixing helps, the result is that member alone. A
    member whose accuracy on those rows is not above the majority-class rate (one-sided
    binomial test, p < 0.01) gets weight 0.
    Learns out of fold by default: validation rarely holds enough recordings to trust."""

    prefers_validation = False
    guarded = True
    #: significance a member's accuracy must reach above the majority-class rate
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.01

    def fit(self, probas: Probas, y: np.ndarray, classes: np.ndarray) -> ShrunkCombiner:
        from scipy.stats import binomtest

        names, n = list(probas), len(y)
        majority = np.unique(y, return_counts=True)[1].max() / n
        correct = {m: int(np.sum(classes[p.argmax(axis=1)] == y)) for m, p in probas.items()}
        useful = [m for m in names if binomtest(correct[m], n, majority,
                                                alternative="greater").pvalue < self.alpha]
        self.weights = shrunk_weights(probas, y, classes, self.weight_step,
                                      lambda w, stack: np.tensordot(w, stack, axes=1),
                                      allowed=useful, anchor=getattr(self, "anchor", None))
        self.useful = useful
        log.info("shrunk combiner: weights %s (members above chance: %s)", self.weights, useful)
        return self
