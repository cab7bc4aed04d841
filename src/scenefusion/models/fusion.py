"""Late and hybrid fusion (probability level).

Modalities travel as ``dict[str, np.ndarray]``, e.g. ``{"image": (N, D), "audio": (N, T, C)}``.
Stable ids: ``early``, ``late:<method>`` and ``hybrid:<method>``, one pair per registered late
combiner (:mod:`scenefusion.models.combiners`: mean, weighted, product, stacking, ...). A late
or hybrid model is given its combiner as an unfitted prototype (``combiner=``, with its
settings; scikit-learn's meta-estimator style) or by id (``method=``, default settings); each
fit learns into a fresh copy. A combiner that learns is fitted on validation predictions or on
out-of-fold predictions of the training rows, never on in-sample or test predictions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from ..data.folds import training_folds
from .base import Capabilities, fit_model, prepare_input
from .combiners import Combiner, make_combiner
from .early import EarlyFusion
from .modalities import (
    FUSION_CAPABILITIES,
    Modalities,
    align_proba,
    check_mapping,
    present,
    refittable,
    resolve_model,
)
from .out_of_fold import out_of_fold_proba
from .pooling import guard_folds, thin_evidence

log = logging.getLogger(__name__)


# -- probability-level fusion -----------------------------------------------------------------
class _ProbabilityFusion(ClassifierMixin, BaseEstimator):
    """Shared machinery of late and hybrid fusion: members, combiners, fallback."""

    _family: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = FUSION_CAPABILITIES

    # subclasses define the members and what each needs
    def _member_specs(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def _required(self, name: str) -> tuple[str, ...]:
        return (name,)

    def _member_input(self, name: str, member: Any, X: Modalities) -> Any:
        return prepare_input(member, X[name])

    @property
    def fusion_id(self) -> str:
        """Stable id, e.g. ``late:stacking``."""
        return f"{self._family}:{self._prototype().name()}"

    def _prototype(self) -> Combiner:
        """The combiner this model learns with: ``combiner``, else ``method`` (default mean)."""
        if self.combiner is None:
            return make_combiner(self.method or "mean")
        if not isinstance(self.combiner, Combiner):
            raise TypeError(f"combiner must be a Combiner (e.g. make_combiner('stacking')), "
                            f"got {type(self.combiner).__name__}")
        if self.method is not None and self.method != self.combiner.id:
            raise ValueError(f"method {self.method!r} and combiner {self.combiner!r} disagree: "
                             f"give one of them")
        return self.combiner

    def fresh_combiner(self) -> Combiner:
        """An unfitted combiner with this model's settings: what :meth:`fit` learns into, and
        what a cross-validation of the fused model refits on each fold."""
        return self._prototype().clone()

    # -- fitting ------------------------------------------------------------------------------
    def _oof_proba(
        self, specs: dict[str, Any], X: Modalities, y: np.ndarray, splits: list
    ) -> dict[str, np.ndarray]:
        """Out-of-fold train probabilities of fresh clones of every member (same folds)."""
        return {name: out_of_fold_proba(est, self._member_input(name, est, X), y, splits,
                                        self.classes_)
                for name, est in ((n, refittable(spec)) for n, spec in specs.items())}

    def _member_proba(self, name: str, X: Modalities) -> np.ndarray:
        member = self.members_[name]
        P = member.predict_proba(self._member_input(name, member, X))
        return align_proba(np.asarray(P, dtype=np.float64), member.classes_, self.classes_)

    def fit(
        self,
        X: Modalities,
        y: np.ndarray,
        X_val: Modalities | None = None,
        y_val: np.ndarray | None = None,
        groups: np.ndarray | None = None,
    ) -> _ProbabilityFusion:
        """Fit members on train (a ``FrozenEstimator`` member is used as it is), then the
        combiner.

        Where the combiner (``weighted``'s weights, ``stacking``'s meta-learner) learns is
        ``stack_on``: ``"val"`` (validation predictions of the fitted members), ``"oof"``
        (out-of-fold train predictions; folds respect ``groups``: what to use when the
        validation split holds too few groups to be trusted), or None: stacking out-of-fold,
        weighted on validation when given. Test data are never involved.
        """
        combiner = self.fresh_combiner()
        X = check_mapping(X)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        specs = self._member_specs()
        if not specs:
            raise ValueError("fusion needs at least one member model")
        for name in specs:
            missing = [m for m in self._required(name) if not present(X, m)]
            if missing:
                raise ValueError(f"training data lack modality {missing} needed by {name!r}")
        has_val = X_val is not None and y_val is not None
        if has_val:
            X_val = check_mapping(X_val, "X_val")
            lacking = sorted(
                {m for n in specs for m in self._required(n) if not present(X_val, m)}
            )
            if lacking:
                raise ValueError(f"validation data lack modalities {lacking}")
        self.member_names_ = list(specs)
        self.members_: dict[str, Any] = {}
        for name, spec in specs.items():
            est = clone(resolve_model(spec))  # a FrozenEstimator clones to itself: kept as fitted
            val_in = self._member_input(name, est, X_val) if has_val else None
            self.members_[name] = fit_model(
                est, self._member_input(name, est, X), y, val_in, y_val if has_val else None
            )
        self.combiner_source_: str | None = None
        if combiner.learns or combiner.guarded:
            if self.stack_on not in (None, "oof", "val"):
                raise ValueError(f"stack_on must be 'oof', 'val' or None, got {self.stack_on!r}")
            if self.stack_on == "val" and not has_val:
                raise ValueError("stack_on='val' needs X_val and y_val")
            use_val = self.stack_on == "val" or (
                self.stack_on is None and combiner.prefers_validation and has_val)
            if use_val:
                probas = {n: self._member_proba(n, X_val) for n in self.member_names_}
                y_comb, self.combiner_source_ = np.asarray(y_val), "val"
                # validation rows are held out from every member: folds only keep the
                # guard from scoring the combiner on what it learnt
                splits, thin = guard_folds(y_comb, None, self.cv, self.random_state)
            else:
                folds = training_folds(y, groups, self.cv, self.random_state)
                probas = self._oof_proba(specs, X, y, list(folds))
                y_comb, self.combiner_source_ = y, "oof"
                splits, thin = folds.splits, thin_evidence(folds)
            check = None if use_val or not has_val else (
                {n: self._member_proba(n, X_val) for n in self.member_names_}, np.asarray(y_val))
            combiner.learn(probas, y_comb, self.classes_, folds=splits, thin=thin, check=check)
        self.combiner_ = combiner
        return self

    @property
    def guard_note_(self) -> str | None:
        """Why a guarded combiner answers with one member alone (None when it fuses)."""
        return getattr(self.combiner_, "guard_note", None)

    @property
    def weights_(self) -> dict[str, float] | None:
        """The tuned member weights of a ``weighted`` combiner (None for the others)."""
        return getattr(self.combiner_, "weights", None)

    @property
    def meta_(self) -> Any:
        """The fitted meta-learner of a ``stacking`` combiner (None for the others)."""
        return getattr(self.combiner_, "meta", None)

    def member_weights(self) -> dict[str, float]:
        """How much each member counts in the fused probabilities, summing to 1: the tuned
        weights (``weighted``), equal shares (``mean``, ``product``), or each member's share of
        the stacking meta-learner's absolute coefficients. Shown in reports, so a weak
        modality's pull on a fused run is visible."""
        check_is_fitted(self, "members_")
        names = self.member_names_
        raw = np.asarray(self.combiner_.member_shares(names), dtype=float)
        total = raw.sum()
        shares = raw / total if total > 0 else np.full(len(names), 1.0 / len(names))
        return {n: round(float(w), 4) for n, w in zip(names, shares, strict=True)}

    def predict_proba(self, X: Modalities) -> np.ndarray:
        """(N, K) fused probabilities.

        If a modality is absent (missing key or ``None``), members that need it are skipped and
        the remaining ones are combined (weights renormalised; stacking falls back to their
        mean). What happened is logged as a warning and recorded in ``last_used_members_``,
        ``last_used_modalities_`` and ``last_missing_modalities_``.
        """
        check_is_fitted(self, "members_")
        X = check_mapping(X)
        available = [
            n for n in self.member_names_ if all(present(X, m) for m in self._required(n))
        ]
        needed = sorted({m for n in self.member_names_ for m in self._required(n)})
        missing = tuple(m for m in needed if not present(X, m))
        if not available:
            raise ValueError(f"no member can predict: missing modalities {', '.join(missing)}")
        self.last_used_members_ = tuple(available)
        self.last_used_modalities_ = tuple(
            m for m in needed if any(m in self._required(n) for n in available)
        )
        self.last_missing_modalities_ = missing
        complete = len(available) == len(self.member_names_)
        if not complete:
            log.warning(
                "%s: modalities %s missing; falling back to members %s",
                self.fusion_id,
                list(missing),
                available,
            )
        probas = {n: self._member_proba(n, X) for n in available}
        return self.combiner_.answer(probas, complete)

    def member_probabilities(self, X: Modalities) -> dict[str, np.ndarray]:
        """Each member's own (N, K) probabilities for the members that can predict ``X``:
        what the combiner weighs, shown beside a fused answer to say which modality decided."""
        check_is_fitted(self, "members_")
        X = check_mapping(X)
        return {n: self._member_proba(n, X) for n in self.member_names_
                if all(present(X, m) for m in self._required(n))}

    def predict(self, X: Modalities) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class LateFusion(_ProbabilityFusion):
    """Decision-level fusion of one model per modality (``models`` keyed by modality name).

    Members may be model ids, unfitted estimators (cloned and fitted here) or fitted ones
    wrapped in ``sklearn.frozen.FrozenEstimator``, used as they are. Sequence audio is pooled
    automatically for 2-D members and passed whole to sequence models (``lstm``). The combiner
    is ``combiner`` (an unfitted prototype with its settings) or the registered ``method``
    with default settings (neither: ``mean``).
    """

    _family: ClassVar[str] = "late"

    def __init__(
        self,
        models: Mapping[str, Any] | None = None,
        method: str | None = None,
        *,
        combiner: Combiner | None = None,
        cv: int = 5,
        stack_on: str | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.models = models
        self.method = method
        self.combiner = combiner
        self.cv = cv
        self.stack_on = stack_on
        self.random_state = random_state

    def _member_specs(self) -> dict[str, Any]:
        if self.models is None:
            return {"image": "logreg", "audio": "logreg"}
        return dict(self.models)


class HybridFusion(_ProbabilityFusion):
    """Early-fused model + one model per modality, combined by a late combiner.

    ``early`` is an :class:`EarlyFusion` (or a model id, wrapped in one over ``modalities``);
    it runs only when all its modalities are present, so a missing modality degrades to the
    unimodal members instead of failing. The combiner is given as for :class:`LateFusion`.
    """

    _family: ClassVar[str] = "hybrid"
    EARLY: ClassVar[str] = "early"

    def __init__(
        self,
        early: Any = "logreg",
        models: Mapping[str, Any] | None = None,
        method: str | None = None,
        *,
        combiner: Combiner | None = None,
        modalities: Sequence[str] = ("image", "audio"),
        pca_image: int | None = None,
        cv: int = 5,
        stack_on: str | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.early = early
        self.models = models
        self.method = method
        self.combiner = combiner
        self.modalities = modalities
        self.pca_image = pca_image
        self.cv = cv
        self.stack_on = stack_on
        self.random_state = random_state

    def _early_spec(self) -> Any:
        if isinstance(self.early, str):
            return EarlyFusion(
                model=self.early,
                pca_image=self.pca_image,
                modalities=tuple(self.modalities),
                random_state=self.random_state,
            )
        return self.early

    def _member_specs(self) -> dict[str, Any]:
        default = self.early if isinstance(self.early, str) else "logreg"
        unimodal = (
            dict(self.models) if self.models is not None else {m: default for m in self.modalities}
        )
        if self.EARLY in unimodal:
            raise ValueError(f"{self.EARLY!r} is reserved for the early-fused member")
        return {self.EARLY: self._early_spec(), **unimodal}

    def _required(self, name: str) -> tuple[str, ...]:
        if name == self.EARLY:
            return tuple(self._early_spec().modalities)
        return (name,)

    def _member_input(self, name: str, member: Any, X: Modalities) -> Any:
        return X if name == self.EARLY else prepare_input(member, X[name])
