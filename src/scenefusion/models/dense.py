"""Torch feed-forward classifier (``mlp``) and the shared torch training loop.

The torch models are wrapped as scikit-learn estimators (``get_params``/``clone`` work), so
fusion and cross-validation treat them exactly like the classical pipelines.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from ..cpu import threads_for_work, torch_threads
from .base import (
    Capabilities,
    ProgressCallback,
    check_targets,
    encode_labels,
    normalise_proba,
    prepare_input,
    register_model,
)

log = logging.getLogger(__name__)

_EPS = 1e-6


def _seed(random_state: int | None) -> int:
    """A concrete seed: the given one, or a fresh random one when ``None`` (not reproducible)."""
    if random_state is None:
        return int(np.random.default_rng().integers(0, 2**31 - 1))
    return int(random_state)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches; a trailing batch of one row is merged (BatchNorm needs >= 2)."""
    perm = torch.randperm(n, generator=generator)
    chunks = list(torch.split(perm, batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2] = torch.cat([chunks[-2], chunks.pop()])
    return chunks


#: A training-batch transform: (inputs, integer or soft targets, generator) -> the same.
Augment = Callable[[tuple[torch.Tensor, ...], torch.Tensor, torch.Generator],
                   tuple[tuple[torch.Tensor, ...], torch.Tensor]]


def train_network(
    net: nn.Module,
    train_inputs: Sequence[torch.Tensor],
    y_train: torch.Tensor,
    val_inputs: Sequence[torch.Tensor] | None,
    y_val: torch.Tensor | None,
    *,
    class_weights: torch.Tensor | None,
    lr: float,
    weight_decay: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    generator: torch.Generator,
    progress: ProgressCallback | None = None,
    augment: Augment | None = None,
) -> tuple[list[dict[str, float | None]], int]:
    """Adam + (weighted) cross-entropy with early stopping on validation loss.

    ``augment(inputs, targets, generator)``, when given, transforms each training batch (never
    the validation one) and may return soft (N, K) targets (mixup). Restores the weights of the
    best validation epoch in place (or keeps the last epoch when there is no validation set).
    Returns ``(history, best_epoch)``; epochs count from 1.
    """
    criterion = nn.CrossEntropyLoss(weight=class_weights)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    history: list[dict[str, float | None]] = []
    best_loss, best_epoch, best_state, stale = math.inf, max_epochs, None, 0
    n = len(y_train)
    for epoch in range(1, max_epochs + 1):
        net.train()
        total = 0.0
        for idx in _batches(n, batch_size, generator):
            optimiser.zero_grad()
            inputs, targets = tuple(t[idx] for t in train_inputs), y_train[idx]
            if augment is not None:
                inputs, targets = augment(inputs, targets, generator)
            loss = criterion(net(*inputs), targets)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        train_loss = total / n
        val_loss = None
        if val_inputs is not None and y_val is not None:
            net.eval()
            with torch.inference_mode():
                val_loss = float(criterion(net(*val_inputs), y_val))
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        log.debug("epoch %d train_loss=%.4f val_loss=%s", epoch, train_loss, val_loss)
        if progress is not None:
            progress(epoch, train_loss, val_loss)
        if val_loss is None:
            continue
        if val_loss < best_loss:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            stale += 1
            if stale >= patience:
                log.info("early stopping at epoch %d (best epoch %d)", epoch, best_epoch)
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        best_epoch = len(history)
    net.eval()
    return history, best_epoch


class TorchModel(ClassifierMixin, BaseEstimator):
    """Base for torch models: label encoding, hold-out split, class weights, seeding.

    Subclasses provide ``_fit_scaler``, ``_tensors`` (standardise + tensorise inputs) and
    ``_build_network``. Training runs inside ``torch.random.fork_rng`` with a fixed seed, so the
    same seed gives bit-identical CPU predictions and the global RNG is left untouched.
    """

    model_id: ClassVar[str] = ""
    #: Hyper-parameter rules every torch model shares (scikit-learn's constraint format);
    #: subclasses add their own, and configs are checked against them before any work.
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, 1_000_000, closed="both")],
        "max_epochs": [Interval(Integral, 1, 100_000, closed="both")],
        "patience": [Interval(Integral, 0, None, closed="left")],
        "val_fraction": [Interval(Real, 0, 1, closed="neither")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "random_state": [Interval(Integral, 0, 2**32 - 1, closed="both"), None],
    }
    capabilities: ClassVar[Capabilities] = Capabilities(uses_validation=True,
                                                        reports_progress=True)

    # -- hooks --------------------------------------------------------------------------------
    def _fit_scaler(self, X: np.ndarray, lengths: np.ndarray | None) -> None:  # pragma: no cover
        raise NotImplementedError

    def _tensors(self, X: np.ndarray, lengths: np.ndarray | None) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError  # pragma: no cover

    def _build_network(self, n_classes: int) -> nn.Module:  # pragma: no cover
        raise NotImplementedError

    def _as_sequences(self, X: np.ndarray) -> np.ndarray:
        """(N, T, C) float32 for sequence models; anything else is a clear error."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 3:
            raise ValueError(f"{self.model_id} needs (N, T, C) sequences, got shape {X.shape}")
        return X

    def _augmenter(self, n_classes: int) -> Augment | None:
        """Training-batch augmentation (none by default; see the audio CNN)."""
        return None

    # -- training -----------------------------------------------------------------------------
    def _split_holdout(self, y_enc: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Stratified slice of train for early stopping when no validation set is given."""
        n = len(y_enc)
        idx = np.arange(n)
        n_val = int(round(self.val_fraction * n))
        if self.val_fraction <= 0 or n_val < 2 or n - n_val < 2:
            log.info("no validation data: training for max_epochs without early stopping")
            return idx, None
        try:
            tr, va = train_test_split(idx, test_size=n_val, stratify=y_enc, random_state=seed)
        except ValueError:  # a class too rare to stratify
            tr, va = train_test_split(idx, test_size=n_val, random_state=seed)
        return np.sort(tr), np.sort(va)

    def _fit_torch(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None,
        y_val: np.ndarray | None,
        lengths: np.ndarray | None = None,
        val_lengths: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        seed = _seed(self.random_state)
        self.classes_, y_enc = encode_labels(y)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes to train a classifier, got 1 class "
                             f"({self.classes_[0]!r})")
        if X_val is not None and y_val is not None:
            y_val = np.asarray(y_val)
            known = np.isin(y_val, self.classes_)
            if not known.all():
                log.warning("dropping %d validation rows of unseen classes", (~known).sum())
            X_va, yv_enc = X_val[known], np.searchsorted(self.classes_, y_val[known])
            lv = None if val_lengths is None else np.asarray(val_lengths)[known]
            X_tr, y_tr, lt = X, y_enc, lengths
        else:
            tr, va = self._split_holdout(y_enc, seed)
            X_tr, y_tr = X[tr], y_enc[tr]
            lt = None if lengths is None else np.asarray(lengths)[tr]
            X_va = None if va is None else X[va]
            yv_enc = None if va is None else y_enc[va]
            lv = None if (va is None or lengths is None) else np.asarray(lengths)[va]
        self._fit_scaler(X_tr, lt)
        weights = None
        if self.class_weight == "balanced":
            present = np.unique(y_tr)
            w = np.ones(len(self.classes_))
            w[present] = compute_class_weight("balanced", classes=present, y=y_tr)
            weights = torch.as_tensor(w, dtype=torch.float32)
        elif isinstance(self.class_weight, dict):  # {label: weight}, unlisted classes weigh 1
            w = [float(self.class_weight.get(c, 1.0)) for c in self.classes_.tolist()]
            weights = torch.as_tensor(w, dtype=torch.float32)
        elif self.class_weight is not None:
            raise ValueError("class_weight must be 'balanced', a {label: weight} dict or None, "
                             f"got {self.class_weight!r}")
        batch_cells = min(self.batch_size, len(X_tr)) * int(np.prod(X.shape[1:]))
        with torch.random.fork_rng(devices=[]), torch_threads(threads_for_work(batch_cells)):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            net = self._build_network(len(self.classes_))
            history, best_epoch = train_network(
                net,
                self._tensors(X_tr, lt),
                torch.as_tensor(y_tr, dtype=torch.long),
                None if X_va is None else self._tensors(X_va, lv),
                None if yv_enc is None else torch.as_tensor(yv_enc, dtype=torch.long),
                class_weights=weights,
                lr=self.lr,
                weight_decay=self.weight_decay,
                batch_size=self.batch_size,
                max_epochs=self.max_epochs,
                patience=self.patience,
                generator=generator,
                progress=progress,
                augment=self._augmenter(len(self.classes_)),
            )
        self.network_ = net
        self.history_ = history
        self.best_epoch_ = best_epoch

    # -- inference ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _inference(self, X: np.ndarray) -> Iterator[nn.Module]:
        """The fitted network in eval mode, without autograd, on as many threads as inputs of
        X's size are worth (:func:`scenefusion.cpu.threads_for_work`)."""
        check_is_fitted(self, "network_")
        self.network_.eval()
        with torch.inference_mode(), torch_threads(threads_for_work(np.asarray(X).size)):
            yield self.network_

    def _logits(self, X: np.ndarray, lengths: np.ndarray | None = None) -> torch.Tensor:
        with self._inference(X) as net:
            return net(*self._tensors(X, lengths))

    def _proba(self, X: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        return normalise_proba(torch.softmax(self._logits(X, lengths), dim=1).numpy())

    def predict(self, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        """Most probable class label."""
        P = self.predict_proba(X, **kwargs)
        return self.classes_[np.argmax(P, axis=1)]


class _MLPNet(nn.Module):
    def __init__(self, n_in: int, hidden: Sequence[int], dropout: float, n_out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(n_in, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(dropout)]
            n_in = h
        layers.append(nn.Linear(n_in, n_out))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@register_model("mlp", "torch multi-layer perceptron (BatchNorm, dropout, early stopping)")
class MLPModel(TorchModel):
    """Multi-layer perceptron on (N, D) features (image embeddings, pooled audio, fused rows).

    Linear -> BatchNorm -> ReLU -> Dropout blocks, Adam, class-balanced cross-entropy and early
    stopping on validation loss (``X_val`` if given, else a stratified ``val_fraction`` of
    train), restoring the best epoch's weights. Inputs are standardised with train statistics.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **TorchModel._parameter_constraints, "hidden_sizes": [tuple, list]}

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (128,),
        dropout: float = 0.2,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 64,
        max_epochs: int = 100,
        patience: int = 10,
        val_fraction: float = 0.15,
        class_weight: str | dict | None = "balanced",
        random_state: int | None = 0,
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.class_weight = class_weight
        self.random_state = random_state

    def _fit_scaler(self, X: np.ndarray, lengths: np.ndarray | None) -> None:
        self.mean_ = X.mean(axis=0).astype(np.float32)
        self.scale_ = np.maximum(X.std(axis=0), _EPS).astype(np.float32)

    def _tensors(self, X: np.ndarray, lengths: np.ndarray | None) -> tuple[torch.Tensor, ...]:
        X = validate_data(self, prepare_input(self, X), reset=False, dtype=np.float32)
        return (torch.from_numpy((X - self.mean_) / self.scale_),)

    def _build_network(self, n_classes: int) -> nn.Module:
        return _MLPNet(self.n_features_in_, list(self.hidden_sizes), self.dropout, n_classes)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
    ) -> MLPModel:
        """Train with early stopping; ``progress(epoch, train_loss, val_loss)`` is optional."""
        X, y = validate_data(self, prepare_input(self, X), check_targets(y), dtype=np.float32)
        if X_val is not None:
            X_val = validate_data(self, prepare_input(self, X_val), reset=False, dtype=np.float32)
        self._fit_torch(X, y, X_val, y_val, progress=progress)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, K) softmax probabilities, columns in ``classes_`` order."""
        return self._proba(X)
