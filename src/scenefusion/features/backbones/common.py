"""What the torchvision-layout backbones share: ImageNet statistics, weight init and the
builders of their specs' weights entry (torchvision's official file) and preprocessing."""

from __future__ import annotations

from torch import nn

from .spec import Preprocessing, Weights

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
NUM_CLASSES = 1000

_TORCHVISION = "https://download.pytorch.org/models/"


def torchvision_weights(file_name: str, note: str = "") -> Weights:
    """torchvision's official ImageNet file ``file_name``, downloaded from its model store."""
    return Weights(file_name, url=_TORCHVISION + file_name, note=note)


def imagenet_preprocessing(input_size: int, resize_size: int) -> Preprocessing:
    """Resize, centre crop and ImageNet mean/std normalisation, as torchvision evaluates."""
    return Preprocessing(input_size, resize_size, IMAGENET_MEAN, IMAGENET_STD)


def init_weights(model: nn.Module) -> None:
    """Sensible random init for training from scratch; pretrained weights overwrite it."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
