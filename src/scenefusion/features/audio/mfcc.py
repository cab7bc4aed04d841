"""MFCC sequences from audio, in the reference data set's per-second representation: the
``mfcc``, ``mfcc_deltas`` and ``mfcc40`` audio features.

The reference data ships audio as 13 MFCCs for each of 8 overlapping ~0.25 s windows per second
(16 kHz). Raw audio a user supplies is turned into exactly that shape — window 0.25 s, hop
0.125 s, so 8 frames per second — so that models trained on either source are compatible.
A clip of `clip_seconds` seconds becomes a (8 * clip_seconds, n_mfcc) sequence.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np

from ...data.validate import read_audio
from .framing import Framed, fit_clip
from .registry import AUDIO_FEATURES, AudioFeature


@dataclass(frozen=True)
class MfccParams(Framed):
    """Everything that changes the numbers; hashed into the feature-cache key."""

    sample_rate: int = 16000
    n_mfcc: int = 13
    window_s: float = 0.25
    hop_s: float = 0.125
    n_fft: int = 4096
    clip_seconds: int = 1
    deltas: bool = False

    @property
    def channels(self) -> int:
        return self.n_mfcc * (3 if self.deltas else 1)


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


def mfcc_sequence(path: Path, params: MfccParams = MfccParams()) -> np.ndarray:
    """A file's fixed-length (8 * clip_seconds, channels) MFCC sequence (raises DataError)."""
    audio, _ = read_audio(path, target_sr=params.sample_rate)
    clip = fit_clip(audio, params.clip_seconds * params.sample_rate)
    return mfcc_frames(clip, params)[: params.frames]


def mfcc_seconds(path: Path, params: MfccParams = MfccParams()) -> np.ndarray:
    """A long recording as (n_seconds, 8, channels): one reference-style item per whole second."""
    audio, _ = read_audio(path, target_sr=params.sample_rate)
    n_seconds = max(1, len(audio) // params.sample_rate)
    audio = fit_clip(audio, n_seconds * params.sample_rate)
    per_second = params.frames_per_second
    frames = mfcc_frames(audio, params)[: n_seconds * per_second]
    return frames.reshape(n_seconds, per_second, -1)


#: The name these features' cache keys were first computed under (kept: existing caches stay valid).
_FN_ID = "scenefusion.features.audio.mfcc_sequence"

AUDIO_FEATURES.register(
    "mfcc", AudioFeature(MfccParams(), mfcc_sequence, _FN_ID),
    description="13 MFCCs x 8 frames per second (0.25 s window, 0.125 s hop): the reference "
    "data set's representation",
)
AUDIO_FEATURES.register(
    "mfcc_deltas", AudioFeature(MfccParams(deltas=True), mfcc_sequence, _FN_ID),
    description="13 MFCCs with first and second deltas (39 channels), 8 frames per second",
)
AUDIO_FEATURES.register(
    "mfcc40", AudioFeature(MfccParams(n_mfcc=40), mfcc_sequence, _FN_ID),
    description="40 MFCCs x 8 frames per second: a finer spectral envelope",
)
