"""How a recording becomes a clip of fixed length, and the sequence geometry of framed
representations: shared by every audio feature so that all of them see the same audio."""

from __future__ import annotations

import numpy as np


class Framed:
    """Sequence geometry shared by every framed representation: steps per second follow the
    hop, so a clip of ``clip_seconds`` is ``frames`` steps."""

    hop_s: float
    clip_seconds: int

    @property
    def frames_per_second(self) -> int:
        return int(round(1.0 / self.hop_s))

    @property
    def frames(self) -> int:
        return self.frames_per_second * self.clip_seconds


def fit_clip(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Centre-crop a long clip; loop a short one (ambient scene sound repeats more naturally than
    silence, and zero padding would put fake silence frames into the sequence)."""
    if len(audio) >= n_samples:
        start = (len(audio) - n_samples) // 2
        return audio[start : start + n_samples]
    return np.pad(audio, (0, n_samples - len(audio)), mode="wrap")
