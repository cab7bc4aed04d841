"""Pooled log-mel statistics of a whole clip: the ``logmel_stats`` audio features.

One vector per clip -- per mel band the mean, spread and percentiles of its log energy over
time, and the mean and spread of its frame-to-frame change -- instead of a frame sequence. A
fixed summary with a linear model cannot memorise a recording's exact texture the way a
sequence model can, which is what carried to recordings never heard (measured in
benchmarks/real_content.py). The clip is the file's own length up to ``max_seconds`` (centre
crop beyond), never looped: statistics of a looped clip would weight its repeat twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np

from ...data.validate import read_audio
from .logmel import LogMelParams, logmel_frames
from .registry import AUDIO_FEATURES, AudioFeature

#: statistics per band, in the order of the vector's blocks
STATISTICS = ("mean", "std", "p10", "p50", "p90", "delta_mean_abs", "delta_std")


@dataclass(frozen=True)
class LogMelStatsParams(LogMelParams):
    """The log-mel frames' parameters, summarised over the whole clip: ``clip_seconds`` is the
    longest stretch read (``ID@Ns`` sets it; shorter files are summarised as they are), and
    ``per_clip_norm`` subtracts the clip's mean per band before the statistics (the mean
    block becomes the clip's overall level only; the recording's fixed colouration goes).
    Hashed into the feature-cache key (the same fields as before it shared the block)."""

    clip_seconds: int = 4

    @property
    def frames(self) -> int:
        return 1

    @property
    def channels(self) -> int:
        return self.n_mels * len(STATISTICS)


def logmel_statistics(frames: np.ndarray, per_clip_norm: bool = False) -> np.ndarray:
    """(frames, bands) log-mel -> (1, bands * len(STATISTICS)) summary."""
    if per_clip_norm:
        level = frames.mean()
        frames = frames - frames.mean(axis=0, keepdims=True) + level
    width = min(9, len(frames) if len(frames) % 2 else len(frames) - 1)
    delta = (librosa.feature.delta(frames, width=width, axis=0) if width >= 3
             else np.zeros_like(frames))
    p10, p50, p90 = np.percentile(frames, [10, 50, 90], axis=0)
    blocks = [frames.mean(axis=0), frames.std(axis=0), p10, p50, p90,
              np.abs(delta).mean(axis=0), delta.std(axis=0)]
    return np.concatenate(blocks)[None, :].astype(np.float32)


def logmel_stats(path: Path, params: LogMelStatsParams = LogMelStatsParams()) -> np.ndarray:
    """A file's (1, n_mels * 7) pooled log-mel statistics (raises DataError)."""
    audio, _ = read_audio(path, target_sr=params.sample_rate)
    longest = params.clip_seconds * params.sample_rate
    if len(audio) > longest:
        start = (len(audio) - longest) // 2
        audio = audio[start : start + longest]
    return logmel_statistics(logmel_frames(audio, params), params.per_clip_norm)


AUDIO_FEATURES.register(
    "logmel_stats", AudioFeature(LogMelStatsParams(), logmel_stats),
    description="per-band mean, std, 10/50/90th percentiles and delta statistics of a 64-band "
    "log-mel over the whole clip (up to 4 s): one vector per clip",
)
AUDIO_FEATURES.register(
    "logmel_stats_norm", AudioFeature(LogMelStatsParams(per_clip_norm=True), logmel_stats),
    description="logmel_stats after removing the clip's mean spectrum shape (recording "
    "colouration), keeping its overall level",
)
