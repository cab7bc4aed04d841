"""Log-mel spectrogram sequences (100 frames per second): the ``logmel`` and ``logmel_norm``
audio features."""

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
class LogMelParams(Framed):
    """Log-mel spectrogram frames: a richer spectral picture than 13 MFCCs, which generalised
    better to recordings not seen in training. Hashed into the feature-cache key."""

    sample_rate: int = 16000
    n_mels: int = 64
    window_s: float = 0.025
    hop_s: float = 0.010
    fmin: float = 50.0
    fmax: float = 8000.0
    clip_seconds: int = 1
    #: subtract each clip's mean per band: removes a recording's fixed colouration (microphone,
    #: distance) that otherwise identifies the recording rather than the scene
    per_clip_norm: bool = False

    @property
    def channels(self) -> int:
        return self.n_mels


def logmel_frames(audio: np.ndarray, params: LogMelParams) -> np.ndarray:
    """(frames, n_mels) log-compressed mel energies (dB re 1.0) of a mono clip."""
    hop = int(round(params.hop_s * params.sample_rate))
    win = int(round(params.window_s * params.sample_rate))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mel = librosa.feature.melspectrogram(
            y=audio, sr=params.sample_rate, n_fft=win, hop_length=hop, win_length=win,
            n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax, center=True, power=2.0,
        )
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T.astype(np.float32)


def logmel_sequence(path: Path, params: LogMelParams = LogMelParams()) -> np.ndarray:
    """A file's fixed-length (100 * clip_seconds, n_mels) log-mel sequence (raises DataError)."""
    audio, _ = read_audio(path, target_sr=params.sample_rate)
    clip = fit_clip(audio, params.clip_seconds * params.sample_rate)
    frames = logmel_frames(clip, params)[: params.frames]
    if params.per_clip_norm:
        frames = frames - frames.mean(axis=0, keepdims=True)
    return frames


#: The name these features' cache keys were first computed under (kept: existing caches stay valid).
_FN_ID = "scenefusion.features.audio.logmel_sequence"

AUDIO_FEATURES.register(
    "logmel", AudioFeature(LogMelParams(), logmel_sequence, _FN_ID),
    description="64-band log-mel spectrogram, 25 ms windows, 10 ms hop (100 frames per second)",
)
AUDIO_FEATURES.register(
    "logmel_norm", AudioFeature(LogMelParams(per_clip_norm=True), logmel_sequence, _FN_ID),
    description="log-mel with each clip's mean per band removed (less recording colouration)",
)
