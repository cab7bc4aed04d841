"""LSTM classifier over audio MFCC sequences (``lstm``), which doubles as an audio embedder."""

from __future__ import annotations

import logging
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .augment import NewPlace
from .base import Capabilities, ProgressCallback, register_model
from .dense import _EPS, Augment, TorchModel

log = logging.getLogger(__name__)


def _check_lengths(lengths: np.ndarray | None, n: int, t: int) -> np.ndarray:
    """Valid-step counts per row (all ``t`` when omitted); must lie in 1..T."""
    if lengths is None:
        return np.full(n, t, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.shape != (n,) or lengths.min() < 1 or lengths.max() > t:
        raise ValueError(f"lengths must be shape ({n},) with values in 1..{t}")
    return lengths


class _LSTMNet(nn.Module):
    def __init__(
        self,
        n_channels: int,
        hidden_size: int,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
        n_classes: int,
    ) -> None:
        super().__init__()
        self.n_dirs = 2 if bidirectional else 1
        self.lstm = nn.LSTM(
            n_channels,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(hidden_size * self.n_dirs, n_classes)
        )

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Packing makes the final hidden state the one at each row's true last step.
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        return torch.cat(list(h_n[-self.n_dirs :]), dim=1)  # last layer, all directions

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x, lengths))


@register_model("lstm", "LSTM over audio sequences; its last hidden state is a learned embedding")
class LSTMModel(TorchModel):
    """LSTM over (N, T, C) sequences; the last hidden state feeds a linear softmax head.

    Variable-length rows are supported through ``lengths`` (packed sequences). Each coefficient
    is standardised with statistics of the valid training steps. ``embed``/``transform`` return
    the last hidden state (both directions concatenated when bidirectional) as a learned audio
    embedding for early fusion. ``augment=True`` trains on batches heard "somewhere else"
    (random gain, EQ, background from other clips, optional band masks; ``models.augment``).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        sequence_input=True, uses_validation=True, reports_progress=True, embedding=True,
        modalities=("audio",))
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **TorchModel._parameter_constraints,
        "hidden_size": [Interval(Integral, 1, 65_536, closed="both")],
        "num_layers": [Interval(Integral, 1, 64, closed="both")],
        "bidirectional": ["boolean"],
        "augment": ["boolean"],
        "gain": [Interval(Real, 0, None, closed="left")],
        "eq": [Interval(Real, 0, None, closed="left")],
        "background": [Interval(Real, 0, 1, closed="both")],
        "freq_mask": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.1,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 32,
        max_epochs: int = 60,
        patience: int = 8,
        val_fraction: float = 0.15,
        class_weight: str | None = "balanced",
        augment: bool = False,
        gain: float = 0.5,
        eq: float = 0.5,
        background: float = 0.3,
        freq_mask: int = 0,
        random_state: int | None = 0,
    ) -> None:
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.class_weight = class_weight
        self.augment = augment
        self.gain = gain
        self.eq = eq
        self.background = background
        self.freq_mask = freq_mask
        self.random_state = random_state

    def _fit_scaler(self, X: np.ndarray, lengths: np.ndarray | None) -> None:
        lengths = _check_lengths(lengths, len(X), X.shape[1])
        valid = np.arange(X.shape[1])[None, :] < lengths[:, None]  # (N, T) mask
        steps = X[valid]  # (n_valid_steps, C)
        self.mean_ = steps.mean(axis=0).astype(np.float32)
        self.scale_ = np.maximum(steps.std(axis=0), _EPS).astype(np.float32)

    def _tensors(self, X: np.ndarray, lengths: np.ndarray | None) -> tuple[torch.Tensor, ...]:
        X = self._as_sequences(X)
        if X.shape[2] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} coefficients, got {X.shape[2]}")
        lengths = _check_lengths(lengths, len(X), X.shape[1])
        Z = (X - self.mean_) / self.scale_
        Z[np.arange(X.shape[1])[None, :] >= lengths[:, None]] = 0.0  # padding is ignored anyway
        return torch.from_numpy(np.ascontiguousarray(Z)), torch.from_numpy(lengths)

    def _build_network(self, n_classes: int) -> nn.Module:
        return _LSTMNet(
            self.n_features_in_,
            self.hidden_size,
            self.num_layers,
            self.bidirectional,
            self.dropout,
            n_classes,
        )

    def _augmenter(self, n_classes: int) -> Augment | None:
        if not self.augment:
            return None
        place = NewPlace(gain=self.gain, eq=self.eq, background=self.background,
                         freq_mask=self.freq_mask)

        def augment(inputs: tuple[torch.Tensor, ...], y: torch.Tensor,
                    generator: torch.Generator) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
            x, lengths = inputs
            return (place.apply(x, generator, lengths), lengths), y

        return augment

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        lengths: np.ndarray | None = None,
        val_lengths: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
    ) -> LSTMModel:
        """Train with early stopping; ``progress(epoch, train_loss, val_loss)`` is optional."""
        X = self._as_sequences(X)
        self.n_features_in_ = X.shape[2]
        X_val = None if X_val is None else self._as_sequences(X_val)
        self._fit_torch(X, np.asarray(y), X_val, y_val, lengths, val_lengths, progress)
        return self

    def predict_proba(self, X: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """(N, K) softmax probabilities, columns in ``classes_`` order."""
        return self._proba(X, lengths)

    @property
    def embedding_dim(self) -> int:
        """Width of ``embed`` output: hidden_size x number of directions."""
        return self.hidden_size * (2 if self.bidirectional else 1)

    def embed(self, X: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """(N, H) float32 last hidden state: a learned audio embedding for early fusion."""
        with self._inference(X) as net:
            return net.embed(*self._tensors(X, lengths)).numpy().astype(np.float32)

    def transform(self, X: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Alias of :meth:`embed`, so the model can act as a scikit-learn transformer."""
        return self.embed(X, lengths)
