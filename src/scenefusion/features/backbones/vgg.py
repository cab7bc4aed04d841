"""VGG16 / VGG19 (Simonyan & Zisserman 2014) with torchvision's exact state_dict layout, so the
official ``vgg16-397923af.pth`` / ``vgg19-dcbb9e9d.pth`` files load strictly."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .common import NUM_CLASSES, imagenet_preprocessing, init_weights, torchvision_weights
from .registry import register_backbone
from .spec import BackboneSpec

# Output channels of each 3x3 conv; "M" is a 2x2 max-pool. Configurations "D" and "E" of
# Simonyan & Zisserman (2014).
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip
_VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip


class VGG(nn.Module):
    """VGG without batch norm; submodule indices match torchvision (``features.N``,
    ``classifier.{0,3,6}``) because the weight files are keyed by them."""

    embedding_dim = 4096

    def __init__(self, cfg: tuple[int | str, ...], num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out = int(item)
                layers += [nn.Conv2d(channels, out, kernel_size=3, padding=1), nn.ReLU(True)]
                channels = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),  # fc6
            nn.ReLU(True),
            nn.Dropout(0.5),
            nn.Linear(4096, 4096),  # fc7
            nn.ReLU(True),
            nn.Dropout(0.5),
            nn.Linear(4096, num_classes),  # fc8
        )
        init_weights(self)

    def embed(self, x: Tensor) -> Tensor:
        """fc7: the 4096-d output of the second fully connected layer after its ReLU.

        The dropout before fc7 is only inactive in eval mode, so call ``.eval()`` first.
        """
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[:5](x)

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits, shape (N, 1000)."""
        return self.classifier[6](self.classifier[5](self.embed(x)))


def vgg16(num_classes: int = NUM_CLASSES) -> VGG:
    """VGG16 (configuration D), layout-compatible with ``vgg16-397923af.pth``."""
    return VGG(_VGG16_CFG, num_classes)


def vgg19(num_classes: int = NUM_CLASSES) -> VGG:
    """VGG19 (configuration E), layout-compatible with ``vgg19-dcbb9e9d.pth``."""
    return VGG(_VGG19_CFG, num_classes)


_FC7 = "fc7: second fully connected layer after its ReLU (eval mode: no dropout)"

register_backbone(BackboneSpec(
    "vgg19", vgg19, torchvision_weights("vgg19-dcbb9e9d.pth"), imagenet_preprocessing(224, 256),
    4096, _FC7, "VGG19, torchvision's ImageNet file, fc7 embedding"))
register_backbone(BackboneSpec(
    "vgg16", vgg16, torchvision_weights("vgg16-397923af.pth"), imagenet_preprocessing(224, 256),
    4096, _FC7, "VGG16, torchvision's ImageNet file, fc7 embedding"))
