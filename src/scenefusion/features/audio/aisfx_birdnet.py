"""``aisfx_birdnet``: aiSFX's and BirdNET's clip embeddings side by side (1,536-d per clip).

The two networks were trained on different sounds (sound-effects libraries; birds and other
field recordings) and err on different clips: on UrbanSound8K, held out by upload cluster, the
pair beat each of them alone (benchmarks/README.md). One feature of both, like the image pair
``effnet_lite0_lite2``, so a single member (and a single cached table) holds them. Each half is
exactly what ``aisfx`` / ``birdnet`` compute for the same clip length; both weight files are
hashed into the cache key, and the licence is the stricter of the two (BirdNET's, non-commercial).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .aisfx import LICENCE as AISFX_LICENCE
from .aisfx import AisfxParams, aisfx_embedding
from .birdnet import BirdnetParams, birdnet_embedding
from .birdnet_model import LICENCE as BIRDNET_LICENCE
from .registry import AUDIO_FEATURES, AudioFeature


@dataclass(frozen=True)
class AisfxBirdnetParams:
    """Both halves' parameters (all hashed into the cache key); ``clip_seconds`` is the pair's
    and is copied into both, so ``aisfx_birdnet@4s`` is ``aisfx@4s`` beside ``birdnet@4s``."""

    clip_seconds: int = 1
    aisfx: AisfxParams = field(default_factory=AisfxParams)
    birdnet: BirdnetParams = field(default_factory=BirdnetParams)

    def __post_init__(self) -> None:
        for name in ("aisfx", "birdnet"):
            half = getattr(self, name)
            if half.clip_seconds != self.clip_seconds:
                object.__setattr__(self, name,
                                   dataclasses.replace(half, clip_seconds=self.clip_seconds))

    @property
    def frames(self) -> int:
        return 1

    @property
    def channels(self) -> int:
        return self.aisfx.channels + self.birdnet.channels

    def weights_identity(self) -> str:
        """Both weight files: aiSFX's (None for aisfx 0.1.2's own) and BirdNET's SHA-256."""
        birdnet = self.birdnet.weights_identity()  # first: its missing extra is the likelier
        return f"aisfx={self.aisfx.weights_identity()};birdnet={birdnet}"


def aisfx_birdnet_embedding(path: Path,
                            params: AisfxBirdnetParams = AisfxBirdnetParams()) -> np.ndarray:
    """A file's (1, 1536) embedding: its ``aisfx`` (512) then its ``birdnet`` (1024) values."""
    return np.concatenate([aisfx_embedding(path, params.aisfx),
                           birdnet_embedding(path, params.birdnet)], axis=1)


AUDIO_FEATURES.register(
    "aisfx_birdnet", AudioFeature(AisfxBirdnetParams(), aisfx_birdnet_embedding,
                                  licence=f"{BIRDNET_LICENCE}; {AISFX_LICENCE}"),
    description="aisfx and birdnet embeddings of the clip side by side (512 + 1024 = 1536-d "
    "per clip; the [birdnet] extra)",
)
