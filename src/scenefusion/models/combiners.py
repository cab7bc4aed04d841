"""Late combiners: how late and hybrid fusion turn member probabilities into one answer.

Each combiner is a class that registers itself here with :func:`register_combiner`; that one
decorator makes ``late:<id>`` and ``hybrid:<id>`` fusion ids, which config validation,
``scenefusion list`` and the grid read, so a new combiner needs no other edit. A combiner
that learns (``learns = True``) is fitted on member probabilities the fusion model computed on
validation rows or out of fold on training rows, never on in-sample or test predictions.

Member probabilities travel as ``dict[member name, (N, K) array]``, columns in the fusion
model's class order. A combiner's learnt state is saved by the model's persistence as plain
JSON (:meth:`Combiner.get_state`) plus fitted scikit-learn parts (:attr:`Combiner.parts`,
each written as ``<part>.skops`` under the skops allow-list).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss

from ..registry import Registry
from .base import normalise_proba
from .modalities import align_proba, simplex_grid

log = logging.getLogger(__name__)

Probas = dict[str, np.ndarray]


class Combiner:
    """One way of combining member probabilities; subclasses override what they change.

    The keywords are the fusion model's combiner settings; each combiner uses the ones it
    needs. ``combine(probas, complete)`` gets ``complete=False`` when a modality is missing
    and only some members ran: a combiner whose learnt state needs every member must then
    fall back to something that does not (the default: their mean).
    """

    #: fitted on member predictions (validation or out of fold) before it can combine
    learns: ClassVar[bool] = False
    #: where it learns when the fusion model is not told: validation rows when there are
    #: some (True) or out-of-fold training rows (False)
    prefers_validation: ClassVar[bool] = False
    #: fitted scikit-learn objects kept as attributes of these names, saved as <name>.skops
    parts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, weight_step: float = 0.1, meta_C: float = 1.0, clip: float = 1e-7,
                 random_state: int | None = 0) -> None:
        self.weight_step = weight_step
        self.meta_C = meta_C
        self.clip = clip
        self.random_state = random_state

    def fit(self, probas: Probas, y: np.ndarray, classes: np.ndarray) -> Combiner:
        """Learn from member probabilities ``probas`` of rows labelled ``y``."""
        return self

    def combine(self, probas: Probas, complete: bool) -> np.ndarray:
        """(N, K) scores (normalised by the caller) from the members that ran."""
        return np.mean(list(probas.values()), axis=0)

    def shares(self, names: list[str]) -> np.ndarray:
        """How much each member counts (any non-negative scale; reports normalise it)."""
        return np.ones(len(names))

    # -- persistence: plain-JSON state, checked when read back ---------------------------------
    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any], names: list[str], classes: np.ndarray) -> None:
        """Restore what :meth:`get_state` saved; raise ValueError with the reason when it
        does not fit the members or classes (the caller names the manifest)."""

    def check_part(self, part: str, names: list[str], classes: np.ndarray) -> None:
        """Check a loaded part (already set as the attribute ``part``) against the members
        and classes; raise ValueError with the reason (the caller names the part's file)."""


#: Combiner id -> its class.
COMBINERS: Registry[type[Combiner]] = Registry("late combiner")

C = TypeVar("C", bound=type[Combiner])


def register_combiner(id: str, *, description: str) -> Callable[[C], C]:
    """Class decorator: register a combiner; ``late:<id>`` and ``hybrid:<id>`` become fusion
    ids (:data:`scenefusion.models.fusion.FUSION` reads this registry)."""
    return COMBINERS.register(id, description=description)


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
                   description="normalised product (geometric mean) of the members' probabilities")
class ProductCombiner(Combiner):
    """Geometric mean: one member that is sure a class is wrong vetoes it (probabilities are
    clipped at ``clip`` so a zero does not veto outright)."""

    def combine(self, probas: Probas, complete: bool) -> np.ndarray:
        logs = np.mean([np.log(np.clip(p, self.clip, 1.0)) for p in probas.values()], axis=0)
        return np.exp(logs - logs.max(axis=1, keepdims=True))


@register_combiner("stacking", description="logistic-regression meta-learner on validation "
                                           "(or out-of-fold) predictions")
class StackingCombiner(Combiner):
    """A logistic regression (``C = meta_C``) on the members' concatenated probabilities.
    With a member missing it cannot run, so the members that ran are averaged."""

    learns = True
    parts = ("meta",)

    def fit(self, probas: Probas, y: np.ndarray, classes: np.ndarray) -> StackingCombiner:
        self.classes = classes
        meta = LogisticRegression(C=self.meta_C, max_iter=2000, random_state=self.random_state)
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
    #: significance a member's accuracy must reach above the majority-class rate
    alpha: ClassVar[float] = 0.01

    def fit(self, probas: Probas, y: np.ndarray, classes: np.ndarray) -> ShrunkCombiner:
        from scipy.stats import binomtest

        names, n = list(probas), len(y)
        majority = np.unique(y, return_counts=True)[1].max() / n
        correct = {m: int(np.sum(classes[p.argmax(axis=1)] == y)) for m, p in probas.items()}
        useful = [m for m in names if binomtest(correct[m], n, majority,
                                                alternative="greater").pvalue < self.alpha]
        losses = {m: log_loss(y, normalise_proba(probas[m]), labels=classes) for m in names}
        best = max(useful or names, key=lambda m: (correct[m], -losses[m]))
        stack = np.stack([probas[m] for m in names])
        vertex = np.array([float(m == best) for m in names])
        penalty = 1.0 / np.sqrt(n)
        best_key, best_w = None, vertex
        for w in simplex_grid(len(names), self.weight_step):
            if any(w[i] > 0 for i, m in enumerate(names) if m not in useful and m != best):
                continue
            P = normalise_proba(np.tensordot(w, stack, axes=1))
            gain = accuracy_score(y, classes[P.argmax(axis=1)]) - penalty * np.abs(
                w - vertex).sum() / 2
            key = (round(gain, 12), -log_loss(y, P, labels=classes))
            if best_key is None or key > best_key:
                best_key, best_w = key, w
        self.weights = {m: float(v) for m, v in zip(names, best_w, strict=True)}
        self.useful = useful
        log.info("shrunk combiner: weights %s (members above chance: %s)", self.weights, useful)
        return self
