"""Late and hybrid fusion (probability level), and the registry of every fusion method.

Modalities travel as ``dict[str, np.ndarray]``, e.g. ``{"image": (N, D), "audio": (N, T, C)}``.
Stable ids: ``early``, ``late:<method>`` and ``hybrid:<method>`` with method in
``mean | weighted | product | stacking``. Any combiner that is learnt (weights, stacking
meta-learner) is fitted on validation predictions or on out-of-fold predictions of the
training rows, never on in-sample or test predictions.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import joblib
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
from sklearn.utils.validation import check_is_fitted

from scenefusion.models.base import Capabilities, fit_model, normalise_proba, prepare_input
from scenefusion.models.early import EarlyFusion
from scenefusion.models.modalities import (
    FUSION_CAPABILITIES,
    Modalities,
    align_proba,
    check_mapping,
    present,
    refittable,
    resolve_model,
    simplex_grid,
    subset_rows,
)
from scenefusion.registry import Registry

log = logging.getLogger(__name__)

#: How late and hybrid fusion combine member probabilities, with what each does.
LATE_METHODS: dict[str, str] = {
    "mean": "average of the members' probabilities",
    "weighted": "weighted average, weights searched on validation predictions",
    "product": "normalised product (geometric mean) of the members' probabilities",
    "stacking": "logistic-regression meta-learner on validation (or out-of-fold) predictions",
}


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
        return f"{self._family}:{self.method}"

    # -- fitting ------------------------------------------------------------------------------
    def _cv_splits(
        self, y: np.ndarray, groups: np.ndarray | None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        dummy = np.zeros(len(y))
        if groups is not None:
            groups = np.asarray(groups)
            n_splits = min(self.cv, len(np.unique(groups)))
            if n_splits < 2:
                raise ValueError("need at least two groups for out-of-fold predictions")
            splitter: Any = StratifiedGroupKFold(
                n_splits=n_splits, shuffle=True, random_state=self.random_state
            )
        else:
            n_splits = min(self.cv, int(np.unique(y, return_counts=True)[1].min()))
            if n_splits < 2:
                raise ValueError("every class needs >= 2 training rows for out-of-fold predictions")
            splitter = StratifiedKFold(
                n_splits=n_splits, shuffle=True, random_state=self.random_state
            )
        return list(splitter.split(dummy, y, groups))

    def _oof_proba(
        self, specs: dict[str, Any], X: Modalities, y: np.ndarray, groups: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """Out-of-fold train probabilities of fresh clones of every member (same folds for all).

        Array inputs go through ``cross_val_predict``; dict inputs (the hybrid's early member)
        use the identical loop by hand because ``cross_val_predict`` cannot index a dict.
        """
        splits = self._cv_splits(y, groups)
        memo = _OOF_MEMO.get()
        out: dict[str, np.ndarray] = {}
        for name, spec in specs.items():
            est = refittable(spec)
            inp = self._member_input(name, est, X)
            key = None if memo is None else joblib.hash((est, inp, y, splits, self.classes_))
            if key is not None and key in memo:
                out[name] = memo[key]
            elif isinstance(inp, np.ndarray):
                P = cross_val_predict(est, inp, y, cv=splits, method="predict_proba")
                out[name] = np.asarray(P, dtype=np.float64)
            else:
                P = np.zeros((len(y), len(self.classes_)))
                for tr, te in splits:
                    fold = clone(est).fit(subset_rows(inp, tr), y[tr])
                    P[te] = align_proba(
                        fold.predict_proba(subset_rows(inp, te)), fold.classes_, self.classes_
                    )
                out[name] = P
            if key is not None:
                out[name].setflags(write=False)  # shared from now on: nobody may edit it
                memo[key] = out[name]
        return out

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
        if self.method not in LATE_METHODS:
            raise ValueError(f"method must be one of {tuple(LATE_METHODS)}, got {self.method!r}")
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
        self.weights_: dict[str, float] | None = None
        self.meta_: LogisticRegression | None = None
        self.combiner_source_: str | None = None
        if self.method in ("weighted", "stacking"):
            if self.stack_on not in (None, "oof", "val"):
                raise ValueError(f"stack_on must be 'oof', 'val' or None, got {self.stack_on!r}")
            if self.stack_on == "val" and not has_val:
                raise ValueError("stack_on='val' needs X_val and y_val")
            use_val = self.stack_on == "val" or (
                self.stack_on is None and self.method == "weighted" and has_val)
            if use_val:
                probas = {n: self._member_proba(n, X_val) for n in self.member_names_}
                y_comb, self.combiner_source_ = np.asarray(y_val), "val"
            else:
                probas = self._oof_proba(specs, X, y, groups)
                y_comb, self.combiner_source_ = y, "oof"
            if self.method == "weighted":
                self.weights_ = self._tune_weights(probas, y_comb)
            else:
                meta = LogisticRegression(
                    C=self.meta_C, max_iter=2000, random_state=self.random_state
                )
                self.meta_ = meta.fit(self._meta_features(probas), y_comb)
        return self

    def _tune_weights(self, probas: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
        """Simplex grid search: maximise accuracy, break ties by lower log-loss."""
        stack = np.stack([probas[n] for n in self.member_names_])  # (M, N, K)
        best_key, best_w = None, None
        for w in simplex_grid(len(self.member_names_), self.weight_step):
            P = normalise_proba(np.tensordot(w, stack, axes=1))
            pred = self.classes_[np.argmax(P, axis=1)]
            acc = accuracy_score(y, pred)
            ll = log_loss(y, P, labels=self.classes_)
            key = (acc, -ll)
            if best_key is None or key > best_key:
                best_key, best_w = key, w
        weights = {n: float(v) for n, v in zip(self.member_names_, best_w, strict=True)}
        log.info("%s: tuned weights %s (acc=%.3f)", self.fusion_id, weights, best_key[0])
        return weights

    def member_weights(self) -> dict[str, float]:
        """How much each member counts in the fused probabilities, summing to 1: the tuned
        weights (``weighted``), equal shares (``mean``, ``product``), or each member's share of
        the stacking meta-learner's absolute coefficients. Shown in reports, so a weak
        modality's pull on a fused run is visible."""
        check_is_fitted(self, "members_")
        names = self.member_names_
        if self.method == "weighted" and self.weights_ is not None:
            raw = np.array([self.weights_[n] for n in names], dtype=float)
        elif self.method == "stacking" and self.meta_ is not None:
            coef = np.abs(np.atleast_2d(self.meta_.coef_))
            raw = np.array([b.sum() for b in np.array_split(coef, len(names), axis=1)])
        else:
            raw = np.ones(len(names))
        total = raw.sum()
        shares = raw / total if total > 0 else np.full(len(names), 1.0 / len(names))
        return {n: round(float(w), 4) for n, w in zip(names, shares, strict=True)}

    def _meta_features(self, probas: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([probas[n] for n in self.member_names_], axis=1)

    # -- prediction ---------------------------------------------------------------------------
    def _combine(self, probas: dict[str, np.ndarray], complete: bool) -> np.ndarray:
        names = list(probas)
        if self.method == "weighted":
            w = np.array([self.weights_[n] for n in names])
            if w.sum() <= 0:
                w = np.ones(len(names))
            return sum(wi * probas[n] for wi, n in zip(w / w.sum(), names, strict=True))
        if self.method == "product":
            logs = np.mean([np.log(np.clip(probas[n], self.clip, 1.0)) for n in names], axis=0)
            return np.exp(logs - logs.max(axis=1, keepdims=True))
        if self.method == "stacking" and complete:
            P = self.meta_.predict_proba(self._meta_features(probas))
            return align_proba(P, self.meta_.classes_, self.classes_)
        # mean, and the stacking fallback when a member cannot run
        return np.mean([probas[n] for n in names], axis=0)

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
                "%s: modalities %s missing; falling back to members %s (renormalised%s)",
                self.fusion_id,
                list(missing),
                available,
                ", mean of available members" if self.method == "stacking" else "",
            )
        probas = {n: self._member_proba(n, X) for n in available}
        return normalise_proba(self._combine(probas, complete))

    def predict(self, X: Modalities) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class LateFusion(_ProbabilityFusion):
    """Decision-level fusion of one model per modality (``models`` keyed by modality name).

    Members may be model ids, unfitted estimators (cloned and fitted here) or fitted ones
    wrapped in ``sklearn.frozen.FrozenEstimator``, used as they are. Sequence audio is pooled
    automatically for 2-D members and passed whole to sequence models (``lstm``).
    """

    _family: ClassVar[str] = "late"

    def __init__(
        self,
        models: Mapping[str, Any] | None = None,
        method: str = "mean",
        *,
        weight_step: float = 0.1,
        cv: int = 5,
        stack_on: str | None = None,
        meta_C: float = 1.0,
        clip: float = 1e-7,
        random_state: int | None = 0,
    ) -> None:
        self.models = models
        self.method = method
        self.weight_step = weight_step
        self.cv = cv
        self.stack_on = stack_on
        self.meta_C = meta_C
        self.clip = clip
        self.random_state = random_state

    def _member_specs(self) -> dict[str, Any]:
        if self.models is None:
            return {"image": "logreg", "audio": "logreg"}
        return dict(self.models)


class HybridFusion(_ProbabilityFusion):
    """Early-fused model + one model per modality, combined by a late combiner.

    ``early`` is an :class:`EarlyFusion` (or a model id, wrapped in one over ``modalities``);
    it runs only when all its modalities are present, so a missing modality degrades to the
    unimodal members instead of failing.
    """

    _family: ClassVar[str] = "hybrid"
    EARLY: ClassVar[str] = "early"

    def __init__(
        self,
        early: Any = "logreg",
        models: Mapping[str, Any] | None = None,
        method: str = "mean",
        *,
        modalities: Sequence[str] = ("image", "audio"),
        pca_image: int | None = None,
        weight_step: float = 0.1,
        cv: int = 5,
        stack_on: str | None = None,
        meta_C: float = 1.0,
        clip: float = 1e-7,
        random_state: int | None = 0,
    ) -> None:
        self.early = early
        self.models = models
        self.method = method
        self.modalities = modalities
        self.pca_image = pca_image
        self.weight_step = weight_step
        self.cv = cv
        self.stack_on = stack_on
        self.meta_C = meta_C
        self.clip = clip
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


#: Fusion id -> factory of an unfitted fusion estimator (keywords go to its ``__init__``).
FUSION: Registry[Callable[..., Any]] = Registry("fusion method")
FUSION.register("early", EarlyFusion,
                description="concatenate per-modality standardised features, one classifier")
for _method, _what in LATE_METHODS.items():
    FUSION.register(f"late:{_method}", functools.partial(LateFusion, method=_method),
                    description=f"one model per modality, combined by {_what}")
for _method, _what in LATE_METHODS.items():
    FUSION.register(f"hybrid:{_method}", functools.partial(HybridFusion, method=_method),
                    description=f"early-fused model + one model per modality, combined by {_what}")
FUSION_IDS: tuple[str, ...] = tuple(FUSION.list())


def make_fusion(fusion_id: str, **kwargs: Any) -> EarlyFusion | LateFusion | HybridFusion:
    """Build an unfitted fusion model from its stable id (see :data:`FUSION`)."""
    return FUSION.get(fusion_id)(**kwargs)

