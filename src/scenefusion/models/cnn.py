"""A small CNN over audio spectrogram sequences (``audio_cnn``), trained from scratch.

Why: on real recordings split by recording, models on 13 MFCCs learn the recording, not the
scene (a real-content check scored them far below the same models on recordings they had
heard). A convolutional net over a log-mel "image", trained with augmentation that
breaks what identifies one recording (level, position in time, single bands and moments,
mixtures of clips), is the standard remedy in acoustic scene classification. It stays small
(three conv blocks, ~25k weights) so the default grid trains in seconds on a CPU, and its pooled
features are a learned audio embedding for early and hybrid fusion, like the LSTM's.
"""

from __future__ import annotations

import logging
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval
from torch import nn
from torch.nn import functional as F

from .augment import NewPlace, mixup
from .base import Capabilities, ProgressCallback, register_model
from .dense import _EPS, Augment, TorchModel

log = logging.getLogger(__name__)


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        # halve each axis that is still long enough: MFCC inputs are only 8 x 13
        kernel = (2 if x.shape[2] >= 4 else 1, 2 if x.shape[3] >= 4 else 1)
        return F.max_pool2d(x, kernel) if kernel != (1, 1) else x


class _AudioCNNNet(nn.Module):
    def __init__(self, channels: tuple[int, ...], dropout: float, n_classes: int) -> None:
        super().__init__()
        widths = (1, *channels)
        self.blocks = nn.Sequential(*(_Block(a, b) for a, b in zip(widths[:-1], widths[1:],
                                                                   strict=True)))
        self.embedding_dim = 2 * channels[-1]
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embedding_dim, n_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, C) -> (N, 2 * last width): mean and max over time and frequency."""
        z = self.blocks(x.unsqueeze(1))
        return torch.cat([z.mean(dim=(2, 3)), z.amax(dim=(2, 3))], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


@register_model("audio_cnn", "small CNN on log-mel/MFCC sequences, trained with SpecAugment, "
                             "shifts, gain and mixup; its pooled features are an embedding")
class AudioCNNModel(TorchModel):
    """Three conv blocks (BatchNorm, ReLU, 2x2 max-pool) over the (T, C) spectrogram, global
    mean+max pooling, dropout, linear head. Inputs are standardised per channel (mel band or
    coefficient) with training statistics. Training batches are augmented (random gain,
    optional random EQ ``eq`` and background mixing ``background``, circular time shift,
    time/frequency masks, mixup with ``mixup_alpha``; see ``models.augment``); validation
    batches never are. Early stopping on validation loss restores the best epoch.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        sequence_input=True, uses_validation=True, reports_progress=True, embedding=True,
        modalities=("audio",))
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **TorchModel._parameter_constraints,
        "channels": [tuple, list],
        "augment": ["boolean"],
        "gain": [Interval(Real, 0, None, closed="left")],
        "time_mask": [Interval(Integral, 0, None, closed="left")],
        "freq_mask": [Interval(Integral, 0, None, closed="left")],
        "mixup_alpha": [Interval(Real, 0, None, closed="left")],
        "eq": [Interval(Real, 0, None, closed="left")],
        "background": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 32, 64),
        dropout: float = 0.3,
        lr: float = 3e-3,
        weight_decay: float = 1e-3,
        batch_size: int = 32,
        max_epochs: int = 40,
        patience: int = 8,
        val_fraction: float = 0.15,
        class_weight: str | dict | None = "balanced",
        augment: bool = True,
        gain: float = 0.5,
        time_mask: int = 12,
        freq_mask: int = 8,
        mixup_alpha: float = 0.2,
        eq: float = 0.0,
        background: float = 0.0,
        random_state: int | None = 0,
    ) -> None:
        self.channels = channels
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
        self.time_mask = time_mask
        self.freq_mask = freq_mask
        self.mixup_alpha = mixup_alpha
        self.eq = eq
        self.background = background
        self.random_state = random_state

    def _fit_scaler(self, X: np.ndarray, lengths: np.ndarray | None) -> None:
        steps = X.reshape(-1, X.shape[2])
        self.mean_ = steps.mean(axis=0).astype(np.float32)
        self.scale_ = np.maximum(steps.std(axis=0), _EPS).astype(np.float32)

    def _tensors(self, X: np.ndarray, lengths: np.ndarray | None) -> tuple[torch.Tensor, ...]:
        X = self._as_sequences(X)
        if X.shape[2] != self.n_features_in_:  # any length works: pooling is global
            raise ValueError(f"audio_cnn was trained on {self.n_features_in_} channels per "
                             f"frame, got {X.shape[2]}")
        return (torch.from_numpy(np.ascontiguousarray((X - self.mean_) / self.scale_)),)

    def _build_network(self, n_classes: int) -> nn.Module:
        return _AudioCNNNet(tuple(self.channels), self.dropout, n_classes)

    def _augmenter(self, n_classes: int) -> Augment | None:
        if not self.augment:
            return None
        place = NewPlace(gain=self.gain, eq=self.eq, background=self.background, shift=True,
                         time_mask=self.time_mask, freq_mask=self.freq_mask)
        alpha = float(self.mixup_alpha)

        def augment(inputs: tuple[torch.Tensor, ...], y: torch.Tensor,
                    generator: torch.Generator) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
            x, targets = mixup(place.apply(inputs[0], generator), y, generator, alpha, n_classes)
            return (x,), targets

        return augment

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
    ) -> AudioCNNModel:
        """Train with augmentation and early stopping; ``progress(epoch, train_loss, val_loss)``
        is optional."""
        X = self._as_sequences(X)
        self.n_features_in_ = X.shape[2]
        X_val = None if X_val is None else self._as_sequences(X_val)
        self._fit_torch(X, np.asarray(y), X_val, y_val, progress=progress)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, K) softmax probabilities, columns in ``classes_`` order."""
        return self._proba(X)

    @property
    def embedding_dim(self) -> int:
        return 2 * int(self.channels[-1])

    def embed(self, X: np.ndarray) -> np.ndarray:
        """(N, 2 * last width) pooled conv features: a learned audio embedding for fusion."""
        with self._inference(X) as net:
            return net.embed(*self._tensors(X, None)).numpy().astype(np.float32)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Alias of :meth:`embed`, so the model can act as a scikit-learn transformer."""
        return self.embed(X)
