"""The rows of the comparison grid: what each row is (RunSpec, rendered into its display name
and never parsed back) and what fitting it produced (Candidate), with the selection key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import log_loss

from ..models.early import EARLY_AUDIO


@dataclass(frozen=True)
class RunSpec:
    """What one row of the comparison grid is, as fields; its display name is rendered from
    them and never parsed back.

    ``family``: image | audio | early | late | hybrid. ``model``: the classifier id (unimodal
    and early rows). ``method``: the late/hybrid combiner. ``early_audio``: the audio side of
    early fusion (``pooled`` statistics or ``lstm``, the audio model's learned embedding).
    ``members``: the rows a late/hybrid run combines (image, audio[, early]).
    """

    family: str
    backbone: str | None = None
    audio_feature: str | None = None
    model: str | None = None
    method: str | None = None
    early_audio: str | None = None
    members: tuple[RunSpec, ...] = ()

    @property
    def name(self) -> str:
        if self.family == "audio":
            return f"audio:{self.audio_feature}+{self.model}"
        if self.family == "image":
            return f"image:{self.backbone}+{self.model}"
        if self.family == "early":
            return f"early:{self.backbone}+{self._early_tag('+')}"
        members = {m.family: m for m in self.members}
        pair = f"{members['image'].model}&{members['audio'].model}"
        if self.family == "late":
            return f"late:{self.method}:{self.backbone}[{pair}]"
        return (f"hybrid:{self.method}:{self.backbone}"
                f"[{members['early']._early_tag('-')}+{pair}]")

    def _early_tag(self, sep: str) -> str:
        tag = EARLY_AUDIO.get(self.early_audio).tag if self.early_audio else ""
        return f"{tag}{sep}{self.model}" if tag else str(self.model)

    def fields(self) -> dict[str, Any]:
        """The structured description stored with each result in metrics.json."""
        return {"family": self.family, "backbone": self.backbone,
                "audio_feature": self.audio_feature, "model": self.model,
                "method": self.method, "early_audio": self.early_audio,
                "members": [m.name for m in self.members]}


@dataclass
class Candidate:
    """One fitted model of the comparison grid, with its validation and test probabilities."""

    spec: RunSpec
    model: Any
    val_accuracy: float | None
    val_log_loss: float | None
    test_proba: np.ndarray
    fit_seconds: float = 0.0
    val_proba: np.ndarray | None = None
    #: out-of-fold probabilities of the training rows (grouped folds), when selection uses them
    oof_proba: np.ndarray | None = None
    cv_accuracy: float | None = None
    cv_log_loss: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def val_rank(self) -> tuple[float, float]:
        """Selection key: grouped cross-validation accuracy over the training groups where the
        grid uses it, else validation accuracy; ties broken by the lower log-loss."""
        if self.cv_accuracy is not None:
            return (self.cv_accuracy, -(self.cv_log_loss or 0.0))
        if self.val_accuracy is None:
            return (-1.0, 0.0)
        return (self.val_accuracy, -(self.val_log_loss or 0.0))


def val_scores(proba: np.ndarray, classes: np.ndarray, y_val: np.ndarray) -> tuple[float, float]:
    pred = classes[np.argmax(proba, axis=1)]
    ll = log_loss(y_val, proba, labels=classes)
    return float(np.mean(pred == y_val)), float(ll)


def pick(candidates: list[Candidate], family: str, backbone: str | None = None) -> Candidate:
    pool = [c for c in candidates
            if c.spec.family == family and (backbone is None or c.spec.backbone == backbone)]
    return max(pool, key=lambda c: c.val_rank)
