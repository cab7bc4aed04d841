"""Audio features: one module per representation, each registering its ids in
:data:`AUDIO_FEATURES` where it is defined (:mod:`.mfcc`, :mod:`.logmel`, :mod:`.aisfx`,
:mod:`.birdnet`, :mod:`.aisfx_birdnet`).

Importing this package imports those modules, so every id is registered; they import
:mod:`.registry` (never this package), so there is no import circle. ``scenefusion list``
shows every id.
"""

from __future__ import annotations

# isort: off
# registered in the order `scenefusion list` shows them (not alphabetical)
from . import mfcc, logmel, logmel_stats, aisfx, aisfx_windows, birdnet, aisfx_birdnet
# isort: on
from .aisfx import AisfxParams, aisfx_embedding
from .framing import fit_clip
from .logmel import LogMelParams, logmel_frames, logmel_sequence
from .mfcc import MfccParams, mfcc_frames, mfcc_seconds, mfcc_sequence
from .registry import (
    AUDIO_FEATURES,
    MAX_CLIP_SECONDS,
    AudioFeature,
    audio_feature,
    audio_licence,
)

__all__ = [
    "AUDIO_FEATURES", "MAX_CLIP_SECONDS", "AisfxParams", "AudioFeature", "LogMelParams",
    "MfccParams", "aisfx", "aisfx_birdnet", "aisfx_embedding", "aisfx_windows", "audio_feature",
    "audio_licence", "birdnet", "fit_clip", "logmel", "logmel_frames", "logmel_sequence",
    "logmel_stats", "mfcc", "mfcc_frames", "mfcc_seconds", "mfcc_sequence",
]
