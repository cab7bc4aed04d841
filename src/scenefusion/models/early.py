"""Early (feature-level) fusion: per-modality transformers, one classifier on the concatenation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from ..registry import Registry
from .base import Capabilities, accepts_sequences, fit_model, normalise_proba
from .modalities import (
    FUSION_CAPABILITIES,
    Modalities,
    align_proba,
    check_mapping,
    present,
    resolve_model,
)
from .sequences import pool_sequence


@dataclass(frozen=True)
class EarlyAudioSide:
    """What early fusion concatenates on the audio side: order-free statistics of the audio
    sequence, or the embedding an audio model learned (``learned``: needs an audio model of
    the grid that declares the ``embedding`` capability)."""

    id: str
    learned: bool
    #: how a grid row's name shows it, e.g. ``early:effnet_lite0+lstm-emb+mlp``
    tag: str


#: The audio sides early fusion can take (``fusion.early_audio``).
EARLY_AUDIO: Registry[EarlyAudioSide] = Registry("early-fusion audio side")
EARLY_AUDIO.register("pooled", EarlyAudioSide("pooled", learned=False, tag=""),
                     description="mean/std/min/max of the audio sequence over time")
EARLY_AUDIO.register("lstm", EarlyAudioSide("lstm", learned=True, tag="lstm-emb"),
                     description="the embedding learned by the best audio model that has one "
                     "(the LSTM's last hidden state)")


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
        missing = [m for m in self.modalities if not present(X, m)]
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
        self._require(check_mapping(X))
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
        clf = clone(resolve_model(self.model))
        if accepts_sequences(clf):
            raise ValueError(
                "early fusion needs a classifier for (N, D) rows, not a sequence model"
            )
        F_val = None
        if X_val is not None and y_val is not None:
            F_val = self.transform(check_mapping(X_val, "X_val"))
        self.classifier_ = fit_model(clf, F, np.asarray(y), F_val, y_val)
        self.classes_ = np.asarray(self.classifier_.classes_)
        return self

    def transform(self, X: Modalities) -> np.ndarray:
        """The fused (N, F) float32 feature matrix, modalities in ``self.modalities`` order."""
        check_is_fitted(self, "transformers_")
        self._require(check_mapping(X))
        blocks = [
            self.transformers_[m].transform(self._modality_matrix(m, X[m])) for m in self.modalities
        ]
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def predict_proba(self, X: Modalities) -> np.ndarray:
        """(N, K) probabilities; raises ValueError naming any missing modality."""
        check_is_fitted(self, "classifier_")
        P = self.classifier_.predict_proba(self.transform(X))
        return normalise_proba(align_proba(P, self.classifier_.classes_, self.classes_))

    def predict(self, X: Modalities) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


