"""MFCC sequences from audio, in the reference data set's per-second representation.

The reference data ships audio as 13 MFCCs for each of 8 overlapping ~0.25 s windows per second
(16 kHz). Raw audio a user supplies is turned into exactly that shape — window 0.25 s, hop
0.125 s, so 8 frames per second — so that models trained on either source are compatible.
A clip of `clip_seconds` seconds becomes a (8 * clip_seconds, n_mfcc) sequence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np

from ..data.validate import read_audio
from ..registry import Registry
from .aisfx import AisfxParams, aisfx_embedding


class _Framed:
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


@dataclass(frozen=True)
class MfccParams(_Framed):
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


@dataclass(frozen=True)
class LogMelParams(_Framed):
    """Log-mel spectrogram frames: a richer spectral picture than 13 MFCCs (what generalised
    to unheard recordings in issue 9's probe). Hashed into the feature-cache key."""

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


@dataclass(frozen=True)
class AudioFeature:
    """An audio representation: its parameters and the function from a file to its array.

    ``key()`` identifies the numbers it produces (the function, every parameter and, for a
    feature with a weight file, that file's content), so the feature cache never serves values
    computed differently.
    """

    params: MfccParams | LogMelParams | AisfxParams
    extract: Callable[[Path, Any], np.ndarray]

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-item array shape: (frames, channels) for a sequence."""
        return (self.params.frames, self.params.channels)

    def key(self) -> str:
        identity = getattr(self.params, "weights_identity", None)
        extra = {"weights_sha256": identity()} if identity is not None else {}
        blob = json.dumps({"fn": f"{self.extract.__module__}.{self.extract.__qualname__}",
                           **asdict(self.params), **extra}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def __call__(self, path: Path) -> np.ndarray:
        return self.extract(path, self.params)


#: Audio feature id -> :class:`AudioFeature`; configs and the CLI use these ids.
AUDIO_FEATURES: Registry[AudioFeature] = Registry("audio feature")
AUDIO_FEATURES.register(
    "mfcc", AudioFeature(MfccParams(), mfcc_sequence),
    description="13 MFCCs x 8 frames per second (0.25 s window, 0.125 s hop): the reference "
    "data set's representation",
)
AUDIO_FEATURES.register(
    "mfcc_deltas", AudioFeature(MfccParams(deltas=True), mfcc_sequence),
    description="13 MFCCs with first and second deltas (39 channels), 8 frames per second",
)
AUDIO_FEATURES.register(
    "mfcc40", AudioFeature(MfccParams(n_mfcc=40), mfcc_sequence),
    description="40 MFCCs x 8 frames per second: a finer spectral envelope",
)
AUDIO_FEATURES.register(
    "logmel", AudioFeature(LogMelParams(), logmel_sequence),
    description="64-band log-mel spectrogram, 25 ms windows, 10 ms hop (100 frames per second)",
)
AUDIO_FEATURES.register(
    "logmel_norm", AudioFeature(LogMelParams(per_clip_norm=True), logmel_sequence),
    description="log-mel with each clip's mean per band removed (less recording colouration)",
)
AUDIO_FEATURES.register(
    "aisfx", AudioFeature(AisfxParams(), aisfx_embedding),
    description="pretrained aiSFX sound-effects CNN embedding (512-d per clip, ISMIR 2022; "
    "weights from `pip install --no-deps aisfx==0.1.2`)",
)


#: Longest audio context an item may use (``ID@Ns``); a video frame's sound rarely needs more.
MAX_CLIP_SECONDS = 30
_CONTEXT = re.compile(r"^(?P<id>[^@]+)@(?P<seconds>\d+)s$")


def audio_feature(feature_id: str) -> AudioFeature:
    """The audio feature a config, bundle or CLI names: a registered id (1 s of audio per item),
    or ``ID@Ns`` for the same representation of N seconds around the item (e.g. ``aisfx@3s``
    with clips written by ``data from-video --audio-seconds 3``). The seconds are a parameter,
    so they are part of the cache key; an unknown id or a bad suffix names what is valid."""
    match = _CONTEXT.match(feature_id)
    if match is None:
        if "@" in feature_id:
            raise ValueError(f"audio feature {feature_id!r}: write the context as ID@Ns, "
                             f"e.g. {feature_id.split('@')[0]}@3s")
        return AUDIO_FEATURES.get(feature_id)
    base = AUDIO_FEATURES.get(match["id"])
    seconds = int(match["seconds"])
    if not 1 <= seconds <= MAX_CLIP_SECONDS:
        raise ValueError(f"audio feature {feature_id!r}: context must be 1 to "
                         f"{MAX_CLIP_SECONDS} seconds")
    return dataclasses.replace(base, params=dataclasses.replace(base.params,
                                                                clip_seconds=seconds))
