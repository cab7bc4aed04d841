"""Early, late and hybrid fusion of image and audio classifiers.

Modalities travel as ``dict[str, np.ndarray]``, e.g. ``{"image": (N, D), "audio": (N, T, C)}``.
Stable ids: ``early``, ``late:<method>`` and ``hybrid:<method>`` with method in
``mean | weighted | product | stacking``. Any combiner that is learnt (weights, stacking
meta-learner) is fitted on validation predictions or on out-of-fold predictions of the
training rows, never on in-sample or test predictions.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from scenefusion.features.audio import pool_sequence
from scenefusion.models.base import (
    Capabilities,
    accepts_sequences,
    fit_model,
    make_model,
    normalise_proba,
    prepare_input,
)
from scenefusion.registry import Registry

log = logging.getLogger(__name__)

Modalities = Mapping[str, np.ndarray | None]

#: How late and hybrid fusion combine member probabilities, with what each does.
LATE_METHODS: dict[str, str] = {
    "mean": "average of the members' probabilities",
    "weighted": "weighted average, weights searched on validation predictions",
    "product": "normalised product (geometric mean) of the members' probabilities",
    "stacking": "logistic-regression meta-learner on validation (or out-of-fold) predictions",
}

#: What every fusion estimator can do: learn combiners on a validation set; keep groups
#: together in out-of-fold predictions.
FUSION_CAPABILITIES = Capabilities(uses_validation=True, uses_groups=True)


# -- helpers ----------------------------------------------------------------------------------
def _present(X: Modalities | None, key: str) -> bool:
    return X is not None and key in X and X[key] is not None


def _subset(X: Modalities, idx: np.ndarray) -> dict[str, np.ndarray | None]:
    return {k: None if v is None else np.asarray(v)[idx] for k, v in X.items()}


def _check_mapping(X: Any, what: str = "X") -> Modalities:
    if not isinstance(X, Mapping):
        raise TypeError(f"{what} must be a dict of modality -> array, got {type(X).__name__}")
    sizes = {k: len(v) for k, v in X.items() if v is not None}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{what}: modalities have different numbers of rows: {sizes}")
    return X


def _resolve(model: Any) -> Any:
    """A model id string becomes a fresh registry model; an estimator is used as given."""
    return make_model(model) if isinstance(model, str) else model


def _refittable(model: Any) -> Any:
    """An unfitted copy of a member for out-of-fold refits: a frozen (prefit) member is
    unwrapped first, because cloning a ``FrozenEstimator`` returns the fitted model itself."""
    if isinstance(model, FrozenEstimator):
        model = model.estimator
    return clone(_resolve(model))


def _align(P: np.ndarray, member_classes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Reorder/expand a member's probability columns to the fusion's ``classes_``."""
    member_classes = np.asarray(member_classes)
    if np.array_equal(member_classes, classes):
        return P
    if not np.isin(member_classes, classes).all():
        raise ValueError(f"member classes {member_classes} not a subset of {classes}")
    out = np.zeros((len(P), len(classes)))
    out[:, np.searchsorted(classes, member_classes)] = P
    return out


def _simplex_grid(n_members: int, step: float) -> np.ndarray:
    """All weight vectors on the simplex with resolution ``step`` (stars and bars)."""
    n = max(1, int(round(1.0 / step)))
    rows = []
    for bars in itertools.combinations(range(n + n_members - 1), n_members - 1):
        edges = (-1, *bars, n + n_members - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(n_members)])
    return np.asarray(rows, dtype=np.float64) / n


# -- early fusion -----------------------------------------------------------------------------
class EarlyFusion(ClassifierMixin, BaseEstimator):
    """Feature-level fusion: standardise each modality, concatenate, classify.

    Each modality gets its own scaler (fitted on train) so neither dominates by scale; an
    optional PCA on the image side (``pca_image`` components) stops a wide image embedding from
    swamping the ~52 pooled audio features. Audio sequences (N, T, C) are pooled to (N, 4C)
    (``audio_repr="pooled"``) or flattened (``"flatten"``); 2-D audio (e.g. the LSTM's
    ``embed``) is used as is. Any 2-D registry model (or scikit-learn classifier) classifies.

    Like scikit-learn's ``ColumnTransformer`` + classifier, each modality has its own fitted
    transformer (``transformers_``) and one classifier sees their concatenation.

    ``audio_encoder`` (optional) is an already *fitted* model with ``embed(X) -> (N, H)`` for
    (N, T, C) sequences (a model declaring the ``embedding`` capability, e.g. a fitted
    :class:`~scenefusion.models.lstm.LSTMModel`), wrapped in
    ``sklearn.frozen.FrozenEstimator`` so that clones keep it fitted. The ``"audio"`` modality
    is then mapped through ``audio_encoder.embed`` (before its scaler) instead of being pooled,
    so early fusion uses the features the LSTM learned from the MFCC order rather than
    order-free statistics. The encoder is never refitted here: the caller trained it on the
    same training rows. Because clones share it, the out-of-fold predictions of a
    ``HybridFusion`` early member use an encoder that has seen the held-out folds' labels; for
    strictly leakage-free stacking, refit the encoder per fold yourself.
    """

    fusion_id: ClassVar[str] = "early"
    capabilities: ClassVar[Capabilities] = FUSION_CAPABILITIES
    #: The modality that ``audio_encoder`` embeds.
    ENCODED_MODALITY: ClassVar[str] = "audio"

    def __init__(
        self,
        model: Any = "logreg",
        pca_image: int | None = None,
        audio_repr: str = "pooled",
        modalities: Sequence[str] = ("image", "audio"),
        pca_modality: str = "image",
        random_state: int | None = 0,
        audio_encoder: Any | None = None,
    ) -> None:
        self.model = model
        self.pca_image = pca_image
        self.audio_repr = audio_repr
        self.modalities = modalities
        self.pca_modality = pca_modality
        self.random_state = random_state
        self.audio_encoder = audio_encoder

    def _check_encoder(self) -> None:
        """Fail early (at fit) with a clear message when ``audio_encoder`` cannot be used."""
        enc = self.audio_encoder
        if enc is None:
            return
        name = type(enc).__name__
        if not callable(getattr(enc, "embed", None)):
            raise ValueError(
                f"audio_encoder must expose embed(X) -> (N, H) for (N, T, C) sequences; "
                f"{name} has no embed method"
            )
        try:
            check_is_fitted(enc)
        except NotFittedError as err:
            raise ValueError(
                f"audio_encoder {name} is not fitted: fit it on the training rows first and "
                "pass it as FrozenEstimator(model) so that clones keep it fitted "
                "(EarlyFusion never fits or refits the encoder)"
            ) from err
        except TypeError:
            pass  # not a scikit-learn estimator (no fit method): nothing that could be unfitted
        if self.ENCODED_MODALITY not in self.modalities:
            raise ValueError(
                f"audio_encoder given but modalities {tuple(self.modalities)} lack "
                f"{self.ENCODED_MODALITY!r}"
            )

    def _require(self, X: Modalities) -> None:
        missing = [m for m in self.modalities if not _present(X, m)]
        if missing:
            raise ValueError(
                f"early fusion needs every modality; missing: {', '.join(missing)} "
                "(use LateFusion/HybridFusion for missing-modality fallback)"
            )

    def _modality_matrix(self, name: str, X: np.ndarray) -> np.ndarray:
        """(N, D) features of one modality: encoder embedding for audio if set, else as below."""
        if name != self.ENCODED_MODALITY or self.audio_encoder is None:
            return self._as_matrix(X)
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 3:
            raise ValueError(f"audio_encoder needs (N, T, C) {name} sequences, got shape {X.shape}")
        Z = np.asarray(self.audio_encoder.embed(X), dtype=np.float32)
        if Z.ndim != 2 or len(Z) != len(X):
            raise ValueError(f"audio_encoder.embed must return (N, H), got shape {Z.shape}")
        return Z

    def _as_matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 3:
            if self.audio_repr == "pooled":
                return pool_sequence(X)
            if self.audio_repr == "flatten":
                return X.reshape(len(X), -1)
            raise ValueError(f"audio_repr must be 'pooled' or 'flatten', got {self.audio_repr!r}")
        if X.ndim != 2:
            raise ValueError(f"modality arrays must be (N, D) or (N, T, C), got {X.shape}")
        return X

    def fit(
        self,
        X: Modalities,
        y: np.ndarray,
        X_val: Modalities | None = None,
        y_val: np.ndarray | None = None,
        groups: np.ndarray | None = None,
    ) -> EarlyFusion:
        """Fit the per-modality scalers/PCA and the classifier on train rows only.

        ``groups`` is accepted so every fusion object shares one ``fit`` signature; early
        fusion has no out-of-fold step, so it is unused. A given ``audio_encoder`` is only
        used to embed, never fitted.
        """
        self._check_encoder()
        self._require(_check_mapping(X))
        self.transformers_: dict[str, Pipeline] = {}
        for m in self.modalities:
            Z = self._modality_matrix(m, X[m])
            steps: list[tuple[str, Any]] = [("scale", StandardScaler())]
            if m == self.pca_modality and self.pca_image:
                n_comp = min(int(self.pca_image), *Z.shape)
                steps.append(("pca", PCA(n_components=n_comp, random_state=self.random_state)))
            self.transformers_[m] = Pipeline(steps).fit(Z)
        F = self.transform(X)
        self.n_features_in_ = F.shape[1]
        clf = clone(_resolve(self.model))
        if accepts_sequences(clf):
            raise ValueError(
                "early fusion needs a classifier for (N, D) rows, not a sequence model"
            )
        F_val = None
        if X_val is not None and y_val is not None:
            F_val = self.transform(_check_mapping(X_val, "X_val"))
        self.classifier_ = fit_model(clf, F, np.asarray(y), F_val, y_val)
        self.classes_ = np.asarray(self.classifier_.classes_)
        return self

    def transform(self, X: Modalities) -> np.ndarray:
        """The fused (N, F) float32 feature matrix, modalities in ``self.modalities`` order."""
        check_is_fitted(self, "transformers_")
        self._require(_check_mapping(X))
        blocks = [
            self.transformers_[m].transform(self._modality_matrix(m, X[m])) for m in self.modalities
        ]
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def predict_proba(self, X: Modalities) -> np.ndarray:
        """(N, K) probabilities; raises ValueError naming any missing modality."""
        check_is_fitted(self, "classifier_")
        P = self.classifier_.predict_proba(self.transform(X))
        return normalise_proba(_align(P, self.classifier_.classes_, self.classes_))

    def predict(self, X: Modalities) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


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
        out: dict[str, np.ndarray] = {}
        for name, spec in specs.items():
            est = _refittable(spec)
            inp = self._member_input(name, est, X)
            if isinstance(inp, np.ndarray):
                P = cross_val_predict(est, inp, y, cv=splits, method="predict_proba")
                out[name] = np.asarray(P, dtype=np.float64)
            else:
                P = np.zeros((len(y), len(self.classes_)))
                for tr, te in splits:
                    fold = clone(est).fit(_subset(inp, tr), y[tr])
                    P[te] = _align(
                        fold.predict_proba(_subset(inp, te)), fold.classes_, self.classes_
                    )
                out[name] = P
        return out

    def _member_proba(self, name: str, X: Modalities) -> np.ndarray:
        member = self.members_[name]
        P = member.predict_proba(self._member_input(name, member, X))
        return _align(np.asarray(P, dtype=np.float64), member.classes_, self.classes_)

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

        ``weighted`` tunes weights on validation predictions (or out-of-fold train predictions
        when no validation set is given). ``stacking`` trains its meta-learner on out-of-fold
        train predictions (``stack_on="oof"``; folds respect ``groups``) or on validation
        predictions (``stack_on="val"``). Test data are never involved.
        """
        if self.method not in LATE_METHODS:
            raise ValueError(f"method must be one of {tuple(LATE_METHODS)}, got {self.method!r}")
        X = _check_mapping(X)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        specs = self._member_specs()
        if not specs:
            raise ValueError("fusion needs at least one member model")
        for name in specs:
            missing = [m for m in self._required(name) if not _present(X, m)]
            if missing:
                raise ValueError(f"training data lack modality {missing} needed by {name!r}")
        has_val = X_val is not None and y_val is not None
        if has_val:
            X_val = _check_mapping(X_val, "X_val")
            lacking = sorted(
                {m for n in specs for m in self._required(n) if not _present(X_val, m)}
            )
            if lacking:
                raise ValueError(f"validation data lack modalities {lacking}")
        self.member_names_ = list(specs)
        self.members_: dict[str, Any] = {}
        for name, spec in specs.items():
            est = clone(_resolve(spec))  # a FrozenEstimator clones to itself: kept as fitted
            val_in = self._member_input(name, est, X_val) if has_val else None
            self.members_[name] = fit_model(
                est, self._member_input(name, est, X), y, val_in, y_val if has_val else None
            )
        self.weights_: dict[str, float] | None = None
        self.meta_: LogisticRegression | None = None
        self.combiner_source_: str | None = None
        if self.method in ("weighted", "stacking"):
            use_val = has_val and (self.method == "weighted" or self.stack_on == "val")
            if self.method == "stacking" and self.stack_on == "val" and not has_val:
                raise ValueError("stack_on='val' needs X_val and y_val")
            if self.method == "stacking" and self.stack_on not in ("oof", "val"):
                raise ValueError(f"stack_on must be 'oof' or 'val', got {self.stack_on!r}")
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
        for w in _simplex_grid(len(self.member_names_), self.weight_step):
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
            return _align(P, self.meta_.classes_, self.classes_)
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
        X = _check_mapping(X)
        available = [
            n for n in self.member_names_ if all(_present(X, m) for m in self._required(n))
        ]
        needed = sorted({m for n in self.member_names_ for m in self._required(n)})
        missing = tuple(m for m in needed if not _present(X, m))
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
        stack_on: str = "oof",
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
        stack_on: str = "oof",
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
