"""MFCC sequences from audio, in the reference data set's per-second representation.

The reference data ships audio as 13 MFCCs for each of 8 overlapping ~0.25 s windows per second
(16 kHz). Raw audio a user supplies is turned into exactly that shape — window 0.25 s, hop
0.125 s, so 8 frames per second — so that models trained on either source are compatible.
A clip of `clip_seconds` seconds becomes a (8 * clip_seconds, n_mfcc) sequence.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np

from ..data.validate import read_audio

FRAMES_PER_SECOND = 8


@dataclass(frozen=True)
class MfccParams:
    """Everything that changes the numbers; hashed into the feature-cache key."""

    sample_rate: int = 16000
    n_mfcc: int = 13
    window_s: float = 0.25
    hop_s: float = 0.125
    n_fft: int = 4096
    clip_seconds: int = 1
    deltas: bool = False

    @property
    def frames(self) -> int:
        return int(round(self.clip_seconds / self.hop_s))

    @property
    def channels(self) -> int:
        return self.n_mfcc * (3 if self.deltas else 1)

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


AUDIO_EXTRACTORS = {
    "mfcc": MfccParams(),
    "mfcc_deltas": MfccParams(deltas=True),
    "mfcc40": MfccParams(n_mfcc=40),
}


def fit_clip(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Centre-crop a long clip; loop a short one (ambient scene sound repeats more naturally than
    silence, and zero padding would put fake silence frames into the sequence)."""
    if len(audio) >= n_samples:
        start = (len(audio) - n_samples) // 2
        return audio[start : start + n_samples]
    return np.pad(audio, (0, n_samples - len(audio)), mode="wrap")


def mfcc_frames(audio: np.ndarray, params: MfccParams) -> np.ndarray:
    """(frames, channels) MFCCs of a mono clip at params.sample_rate, 8 frames per second."""
    hop = int(round(params.hop_s * params.sample_rate))
    win = int(round(params.window_s * params.sample_rate))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mfcc = librosa.feature.mfcc(
            y=audio, sr=params.sample_rate, n_mfcc=params.n_mfcc, n_fft=max(params.n_fft, win),
            win_length=win, hop_length=hop, center=True,
        )
    if params.deltas:
        width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))
        width = max(3, width)
        mfcc = np.concatenate(
            [mfcc, librosa.feature.delta(mfcc, width=width, mode="nearest"),
             librosa.feature.delta(mfcc, order=2, width=width, mode="nearest")],
        )
    return mfcc.T.astype(np.float32)


def mfcc_sequence(path: Path, params: MfccParams = AUDIO_EXTRACTORS["mfcc"]) -> np.ndarray:
    """A file's fixed-length (8 * clip_seconds, channels) MFCC sequence (raises DataError)."""
    audio, _ = read_audio(path, target_sr=params.sample_rate)
    clip = fit_clip(audio, params.clip_seconds * params.sample_rate)
    return mfcc_frames(clip, params)[: params.frames]


def mfcc_seconds(path: Path, params: MfccParams = AUDIO_EXTRACTORS["mfcc"]) -> np.ndarray:
    """A long recording as (n_seconds, 8, channels): one reference-style item per whole second."""
    audio, _ = read_audio(path, target_sr=params.sample_rate)
    n_seconds = max(1, len(audio) // params.sample_rate)
    audio = fit_clip(audio, n_seconds * params.sample_rate)
    frames = mfcc_frames(audio, params)[: n_seconds * FRAMES_PER_SECOND]
    return frames.reshape(n_seconds, FRAMES_PER_SECOND, -1)


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


def pooled_summary(X: np.ndarray) -> np.ndarray:
    """(N, T, C) -> (N, 4C) mean, std, min, max per coefficient, for classical models."""
    from ..models.base import pool_sequence  # one implementation, shared with the models

    return pool_sequence(X)
