"""ResNet-50 (He et al. 2015, v1.5 strides) with torchvision's exact state_dict layout, so the
official V1 and V2 weight files load strictly."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .common import NUM_CLASSES, imagenet_preprocessing, init_weights, torchvision_weights
from .registry import register_backbone
from .spec import BackboneSpec


class _Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4) residual block, stride on the 3x3 conv
    ("ResNet v1.5", which is what torchvision's weights were trained with)."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch),
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 (He et al. 2015, v1.5 strides) with torchvision's module names."""

    embedding_dim = 2048

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = 64
        stages = []
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            stage = [_Bottleneck(in_ch, width, stride)]
            in_ch = width * _Bottleneck.expansion
            stage += [_Bottleneck(in_ch, width) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * _Bottleneck.expansion, num_classes)
        init_weights(self)

    def embed(self, x: Tensor) -> Tensor:
        """2048-d globally average-pooled output of the last residual stage."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits, shape (N, 1000)."""
        return self.fc(self.embed(x))


def resnet50(num_classes: int = NUM_CLASSES) -> ResNet50:
    """ResNet-50, layout-compatible with ``resnet50-11ad3fa6.pth`` and ``resnet50-0676ba61.pth``."""
    return ResNet50(num_classes)


_POOL = "global-average-pooled output of the last stage, the input to fc"

register_backbone(BackboneSpec(
    "resnet50", resnet50, torchvision_weights("resnet50-11ad3fa6.pth", "IMAGENET1K_V2"),
    imagenet_preprocessing(224, 232), 2048, _POOL,
    "ResNet50, torchvision's ImageNet V2 file (its default; resize 232)"))
register_backbone(BackboneSpec(
    "resnet50.v1", resnet50, torchvision_weights("resnet50-0676ba61.pth", "IMAGENET1K_V1"),
    imagenet_preprocessing(224, 256), 2048, _POOL,
    "ResNet50, torchvision's original-recipe ImageNet V1 file (resize 256)"))
