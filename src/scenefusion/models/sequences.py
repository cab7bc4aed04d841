"""Model-side handling of (N, T, C) audio sequences: standardising them on training data and
pooling them into vectors for order-agnostic models. Plain numpy, so that importing the models
does not load the audio-feature code (librosa)."""

from __future__ import annotations

import numpy as np


class SequenceStandardizer:
    """Per-coefficient standardisation of (N, T, C) sequences, fitted on training data only."""

    def fit(self, X: np.ndarray) -> SequenceStandardizer:
        flat = np.asarray(X, dtype=np.float64).reshape(-1, X.shape[-1])
        self.mean_ = flat.mean(axis=0)
        self.scale_ = flat.std(axis=0)
        self.scale_[self.scale_ < 1e-8] = 1.0
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X) - self.mean_) / self.scale_).astype(np.float32)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)


def pool_sequence(X: np.ndarray) -> np.ndarray:
    """Summarise (N, T, C) sequences as (N, 4C) [mean | std | min | max] over time.

    Lets order-agnostic classical models use audio sequences; the block order is fixed so that
    downstream feature indices stay meaningful. A one-step sequence (T == 1, e.g. a clip
    embedding such as ``aisfx``) is already a vector and is returned as (N, C): pooling it would
    only add a zero std block and two copies of it.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3:
        raise ValueError(f"pool_sequence expects (N, T, C) sequences, got shape {X.shape}")
    if X.shape[1] == 1:
        return np.ascontiguousarray(X[:, 0, :])
    return np.concatenate(
        [X.mean(axis=1), X.std(axis=1), X.min(axis=1), X.max(axis=1)], axis=1
    ).astype(np.float32)
