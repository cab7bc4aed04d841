"""What extraction computes, resolved once: the image backbones with their options and the audio
feature object (never an id to parse again).

A run builds one :class:`FeatureRecipe` from its config and data (``scenefusion.plan``); local
extraction, the Ray pipeline and ``scenefusion extract`` all take it, so every front end computes
the same tables under the same cache keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import DEFAULT_BATCH_SIZE
from .audio.registry import AudioFeature


@dataclass(frozen=True)
class FeatureRecipe:
    """The extractors of a run. ``audio`` is None where no sound is used (photos only);
    ``backbones`` is empty where no image is used (sounds only)."""

    backbones: tuple[str, ...] = ()
    audio: AudioFeature | None = None
    image_weights: Mapping[str, Path] = field(default_factory=dict)
    runtime: str = "auto"
    threads: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    precision: str = "fp32"
    device: str = "auto"

    def for_modalities(self, modalities: tuple[str, ...] | list[str]) -> FeatureRecipe:
        """The extractors a data set with only these modalities can run."""
        return replace(self, backbones=self.backbones if "image" in modalities else (),
                       audio=self.audio if "audio" in modalities else None)

    def weights_of(self, backbone: str) -> Path | None:
        """The weight file given for ``backbone`` (None: its registered default)."""
        return self.image_weights.get(backbone)

    @property
    def audio_id(self) -> str | None:
        """The audio feature's id as configs and tables name it (None without sound)."""
        return None if self.audio is None else self.audio.id
