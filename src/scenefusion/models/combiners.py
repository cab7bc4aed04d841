"""Late combiners: how late and hybrid fusion turn member probabilities into one answer.

Each combiner is a class that registers itself here with :func:`register_combiner`; that one
decorator makes ``late:<id>`` and ``hybrid:<id>`` fusion ids, which config validation,
``scenefusion list`` and the grid read, so a new combiner needs no other edit. A combiner
that learns (``learns = True``) is fitted on member probabilities the fusion model computed on
validation rows or out of fold on training rows, never on in-sample or test predictions.

A *guarded* combiner (``guarded = True``: the defaults ``product``, ``stacking``, ``shrunk``)
can only help, by construction, on the rows it learns from: the fusion model calls
:meth:`Combiner.learn`, which first fits a temperature per member (a member confidently wrong
on recordings it never heard is softened before it can outvote the others), then learns, then
scores the learnt rule on folds it did not learn from; when those held-out rows say the rule
does not beat the best member alone, or when the evidence is too thin to say anything (a class
with a single training group, whose folds cannot hold a recording out), the rule is the best
member alone. Unguarded combiners (``mean``, ``weighted``, a user's own) do what they say,
so the comparison still shows what naive rules do.

Member probabilities travel as ``dict[member name, (N, K) array]``, columns in the fusion
model's class order. A combiner's learnt state is saved by the model's persistence as plain
JSON (:meth:`Combiner.get_state`) plus fitted scikit-learn parts (:attr:`Combiner.parts`,
each written as ``<part>.skops`` under the skops allow-list).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss

from ..registry import Registry
from .base import normalise_proba
from .modalities import align_proba, simplex_grid
from .pooling import best_member, log_linear_pool, score, shrunk_weights, with_check_rows
from .temperature import apply_temperature, fit_temperature

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

    # -- the guard: calibrated members, learnt rule kept only where held-out rows back it ------
    #: calibrate members, fall back to the best member on thin or contrary evidence
    guarded: ClassVar[bool] = False

    def settings(self) -> dict[str, Any]:
        return {"weight_step": self.weight_step, "meta_C": self.meta_C, "clip": self.clip,
                "random_state": self.random_state}

    def learn(self, probas: Probas, y: np.ndarray, classes: np.ndarray,
              folds: Sequence[tuple[np.ndarray, np.ndarray]] = (), thin: str | None = None,
              check: tuple[Probas, np.ndarray] | None = None) -> Combiner:
        """What the fusion model calls: :meth:`fit`, guarded for a guarded combiner.

        ``folds`` (over the rows given) let the guard score the learnt rule on rows it did not
        learn from; ``thin`` says why those rows cannot measure generalisation (then the rule
        is the best member alone). ``check`` is (member probabilities, labels) of held-out
        groups scored by the *final* members (the validation split): out-of-fold members are
        trained on less and can rank the members differently from the final ones, so a
        guarded combiner learns from both sets of rows together, and the validation rows are
        one more fold the guard holds out (on the few-recordings benchmark this beat
        learning out of fold alone and beat vetoing by validation alone)."""
        self.temperatures: dict[str, float] = {}
        self.solo: str | None = None
        self.guard_note: str | None = None
        if not self.guarded:
            return self.fit(probas, y, classes) if self.learns else self
        if check is not None:
            probas, y, folds = with_check_rows(probas, y, folds, check)
        index = np.searchsorted(classes, y)
        self.temperatures = {m: round(fit_temperature(p, index), 4) for m, p in probas.items()}
        calibrated = self._calibrated(probas)
        self.anchor, anchor_key = best_member(calibrated, y, classes)
        if self.learns:  # also when thin: a saved combiner always has its learnt parts
            self.fit(calibrated, y, classes)
        if thin:
            self.solo, self.guard_note = self.anchor, f"{self.anchor} alone: {thin}"
            return self
        if folds:
            fused = np.zeros((len(y), len(classes)))
            for fit_rows, held_out in folds:
                inner = type(self)(**self.settings()).learn(
                    {m: p[fit_rows] for m, p in probas.items()}, y[fit_rows], classes)
                fused[held_out] = inner.answer({m: p[held_out] for m, p in probas.items()},
                                               True)
            key = score(fused, y, classes)
            if key <= anchor_key:
                self.solo = self.anchor
                self.guard_note = (f"{self.anchor} alone: on held-out folds the rule scored "
                                   f"accuracy {key[0]:.3f} against {anchor_key[0]:.3f} for "
                                   f"{self.anchor} alone")
        return self

    def answer(self, probas: Probas, complete: bool) -> np.ndarray:
        """(N, K) normalised fused probabilities (what the fusion model returns)."""
        temperatures = getattr(self, "temperatures", {})
        solo = getattr(self, "solo", None)
        probas = self._calibrated(probas) if temperatures else probas
        if solo is not None:
            if solo in probas:
                return normalise_proba(probas[solo])
            complete = False  # the chosen member could not run: the rule for what did
        return normalise_proba(self.combine(probas, complete))

    def member_shares(self, names: list[str]) -> np.ndarray:
        solo = getattr(self, "solo", None)
        if solo is not None:
            return np.array([float(n == solo) for n in names])
        return np.asarray(self.shares(names), dtype=float)

    def _calibrated(self, probas: Probas) -> Probas:
        temperatures = getattr(self, "temperatures", {})
        return {m: apply_temperature(p, temperatures[m]) if m in temperatures else p
                for m, p in probas.items()}

    def full_state(self) -> dict[str, Any]:
        """:meth:`get_state` plus the guard's temperatures and fallback (plain JSON)."""
        state = self.get_state()
        if self.guarded:
            state["guard"] = {"temperatures": getattr(self, "temperatures", {}),
                              "solo": getattr(self, "solo", None),
                              "note": getattr(self, "guard_note", None)}
        return state

    def restore(self, state: dict[str, Any], names: list[str], classes: np.ndarray) -> None:
        """Inverse of :meth:`full_state`; ValueError with the reason when it does not fit."""
        guard = state.get("guard", {"temperatures": {}, "solo": None, "note": None})
        temperatures = guard.get("temperatures") if isinstance(guard, dict) else None
        if (not isinstance(temperatures, dict) or not set(temperatures) <= set(names)
                or not all(isinstance(t, (int, float)) and not isinstance(t, bool)
                           and np.isfinite(t) and t > 0 for t in temperatures.values())):
            raise ValueError(f"state 'guard.temperatures' must give a positive number for "
                             f"members of {names}")
        solo = guard.get("solo")
        if solo is not None and solo not in names:
            raise ValueError(f"state 'guard.solo' must name one of the members {names}")
        self.temperatures, self.solo = dict(temperatures), solo
        self.guard_note = guard.get("note")
        self.set_state(state, names, classes)


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
                   description="weighted product (log-linear pooling) of calibrated members, "
                               "weights out of fold, shrunk toward the best member")
class ProductCombiner(Combiner):
    """Weighted geometric mean of the members' calibrated probabilities: a member that is sure
    a class is wrong can veto it, as much as its weight allows (probabilities are clipped at
    ``clip`` so a zero does not veto outright). The weights are learnt like ``shrunk``'s
    (:func:`shrunk_weights`): with no evidence that mixing helps, the best member alone."""

    learns = True
    guarded = True

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
    guarded = True
    #: significance a member's accuracy must reach above the majority-class rate
    alpha: ClassVar[float] = 0.01

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
