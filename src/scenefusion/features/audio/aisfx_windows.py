"""``aisfx_windows``: the aiSFX embedding of each 1 s window of a longer clip, in order.

``aisfx@Ns`` runs the network once over N seconds, and its max over time keeps the loudest
moment of the clip. Here every second is embedded on its own, as the network was trained (1 s
sound effects), and the (N, 512) sequence is left to the model: classical models pool it
(mean, std, min, max over the windows), sequence models read it in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.validate import read_audio
from .aisfx import LICENCE, AisfxParams, aisfx_frames, frame_embedder
from .framing import fit_clip
from .registry import AUDIO_FEATURES, AudioFeature


@dataclass(frozen=True)
class AisfxWindowParams(AisfxParams):
    """aiSFX's parameters; ``clip_seconds`` windows of 1 s give that many steps."""

    @property
    def frames(self) -> int:
        return self.clip_seconds


def aisfx_windows(path: Path, params: AisfxWindowParams = AisfxWindowParams()) -> np.ndarray:
    """A file's (clip_seconds, 512) sequence of aiSFX embeddings, one per 1 s window of the
    clip (centre-cropped, short audio looped, as for every audio feature); each window is
    peak-normalised on its own, like the network's 1 s training clips."""
    embed = frame_embedder(params.runtime)
    audio, _ = read_audio(path, target_sr=params.sample_rate)
    second = params.sample_rate
    clip = fit_clip(audio, params.clip_seconds * second)
    windows = np.stack([aisfx_frames(clip[i * second:(i + 1) * second], params)
                        for i in range(params.clip_seconds)])
    return embed(windows).astype(np.float32, copy=False)


AUDIO_FEATURES.register(
    "aisfx_windows", AudioFeature(AisfxWindowParams(), aisfx_windows,
                                   licence=LICENCE),
    description="aiSFX embedding of each 1 s window of the clip, in order (with @Ns: N x 512; "
    "classical models pool it, sequence models read it)",
)
