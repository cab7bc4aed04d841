"""ImageNet CNN backbones (VGG16, VGG19, ResNet50, Inception v3) without torchvision.

torchvision cannot be installed beside the CPU-only torch this project pins (PyPI's torchvision
links against the CUDA build of libtorch), yet its ImageNet weight files are the standard
pretrained weights for these networks. The modules here are written from the published
architectures in plain torch and register their parameters and buffers under exactly the
names, shapes and order torchvision uses, so the official ``*.pth`` files load with
``load_state_dict(strict=True)``. ``tests/data/torchvision_state_dict_layout.json`` holds the
layout dumped from torchvision 0.29.1 and the tests compare against it.

Every module has ``forward(x) -> (N, 1000)`` ImageNet logits and ``embed(x) -> (N, D)``
returning the embedding documented in its :class:`BackboneSpec`. Inputs are RGB float tensors
normalised with the ImageNet mean/std (see ``spec.mean``/``spec.std``), including for
Inception v3, which converts that input itself to the [-1, 1] scaling its Google weights expect.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TORCHVISION_SPECS",
    "BackboneSpec",
    "InceptionV3",
    "ResNet50",
    "VGG",
    "WeightVariant",
    "WeightsLoadError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "find_torchvision_weights",
    "inception_v3",
    "load_torchvision_weights",
    "resnet50",
    "vgg16",
    "vgg19",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
NUM_CLASSES = 1000
_DOWNLOAD_ROOT = "https://download.pytorch.org/models/"


# ---------------------------------------------------------------------------------------------
# VGG
# ---------------------------------------------------------------------------------------------

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
        _init_weights(self)

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


# ---------------------------------------------------------------------------------------------
# ResNet50
# ---------------------------------------------------------------------------------------------


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
        _init_weights(self)

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


# ---------------------------------------------------------------------------------------------
# Inception v3
# ---------------------------------------------------------------------------------------------


class _ConvBNReLU(nn.Module):
    """Bias-free conv + batch norm (eps 1e-3, as in the Google checkpoint) + ReLU.
    Attribute names ``conv``/``bn`` are fixed by the weight file."""

    def __init__(self, in_ch: int, out_ch: int, **conv_kwargs: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, bias=False, **conv_kwargs)  # type: ignore[arg-type]
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _pool_3x3_same(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)


class _InceptionA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pooled 1x1 branches (Mixed_5b..5d)."""

    def __init__(self, in_ch: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBNReLU(in_ch, 64, kernel_size=1)
        self.branch5x5_1 = _ConvBNReLU(in_ch, 48, kernel_size=1)
        self.branch5x5_2 = _ConvBNReLU(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = _ConvBNReLU(in_ch, 64, kernel_size=1)
        self.branch3x3dbl_2 = _ConvBNReLU(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = _ConvBNReLU(96, 96, kernel_size=3, padding=1)
        self.branch_pool = _ConvBNReLU(in_ch, pool_features, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_pool_3x3_same(x))
        return torch.cat([b1, b5, b3, bp], 1)


class _InceptionB(nn.Module):
    """Grid reduction 35x35 -> 17x17 (Mixed_6a)."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = _ConvBNReLU(in_ch, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = _ConvBNReLU(in_ch, 64, kernel_size=1)
        self.branch3x3dbl_2 = _ConvBNReLU(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = _ConvBNReLU(96, 96, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class _InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b..6e)."""

    def __init__(self, in_ch: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        row = {"kernel_size": (1, 7), "padding": (0, 3)}
        col = {"kernel_size": (7, 1), "padding": (3, 0)}
        self.branch1x1 = _ConvBNReLU(in_ch, 192, kernel_size=1)
        self.branch7x7_1 = _ConvBNReLU(in_ch, c7, kernel_size=1)
        self.branch7x7_2 = _ConvBNReLU(c7, c7, **row)
        self.branch7x7_3 = _ConvBNReLU(c7, 192, **col)
        self.branch7x7dbl_1 = _ConvBNReLU(in_ch, c7, kernel_size=1)
        self.branch7x7dbl_2 = _ConvBNReLU(c7, c7, **col)
        self.branch7x7dbl_3 = _ConvBNReLU(c7, c7, **row)
        self.branch7x7dbl_4 = _ConvBNReLU(c7, c7, **col)
        self.branch7x7dbl_5 = _ConvBNReLU(c7, 192, **row)
        self.branch_pool = _ConvBNReLU(in_ch, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for conv in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            bd = conv(bd)
        bp = self.branch_pool(_pool_3x3_same(x))
        return torch.cat([b1, b7, bd, bp], 1)


class _InceptionD(nn.Module):
    """Grid reduction 17x17 -> 8x8 (Mixed_7a)."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3_1 = _ConvBNReLU(in_ch, 192, kernel_size=1)
        self.branch3x3_2 = _ConvBNReLU(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = _ConvBNReLU(in_ch, 192, kernel_size=1)
        self.branch7x7x3_2 = _ConvBNReLU(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBNReLU(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBNReLU(192, 192, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(b7)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class _InceptionE(nn.Module):
    """8x8 block whose 3x3 branches split into parallel 1x3 and 3x1 convs (Mixed_7b, 7c)."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        row = {"kernel_size": (1, 3), "padding": (0, 1)}
        col = {"kernel_size": (3, 1), "padding": (1, 0)}
        self.branch1x1 = _ConvBNReLU(in_ch, 320, kernel_size=1)
        self.branch3x3_1 = _ConvBNReLU(in_ch, 384, kernel_size=1)
        self.branch3x3_2a = _ConvBNReLU(384, 384, **row)
        self.branch3x3_2b = _ConvBNReLU(384, 384, **col)
        self.branch3x3dbl_1 = _ConvBNReLU(in_ch, 448, kernel_size=1)
        self.branch3x3dbl_2 = _ConvBNReLU(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = _ConvBNReLU(384, 384, **row)
        self.branch3x3dbl_3b = _ConvBNReLU(384, 384, **col)
        self.branch_pool = _ConvBNReLU(in_ch, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        bp = self.branch_pool(_pool_3x3_same(x))
        return torch.cat([b1, b3, bd, bp], 1)


class _InceptionAux(nn.Module):
    """Auxiliary classifier on the 17x17 grid. It only helps training; it is kept so that the
    Google checkpoint (which contains it) loads strictly."""

    def __init__(self, in_ch: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = _ConvBNReLU(in_ch, 128, kernel_size=1)
        self.conv1 = _ConvBNReLU(128, 768, kernel_size=5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(self.conv0(F.avg_pool2d(x, kernel_size=5, stride=3)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))


class InceptionV3(nn.Module):
    """Inception v3 (Szegedy et al. 2015) with torchvision's module names.

    ``transform_input=True`` (the default, and what torchvision sets for the Google weights)
    makes the model accept ImageNet-mean/std normalised input like the other backbones: the
    Google checkpoint was trained on pixels scaled to [-1, 1], i.e. ``(p - 0.5) / 0.5``, and
    ``x * std / 0.5 + (mean - 0.5) / 0.5`` maps ``x = (p - mean) / std`` back to exactly that.
    Set it to ``False`` only if you feed [-1, 1]-scaled input yourself.
    """

    embedding_dim = 2048

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        aux_logits: bool = True,
        transform_input: bool = True,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = _ConvBNReLU(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBNReLU(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = _ConvBNReLU(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = _ConvBNReLU(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = _ConvBNReLU(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = _InceptionA(192, pool_features=32)
        self.Mixed_5c = _InceptionA(256, pool_features=64)
        self.Mixed_5d = _InceptionA(288, pool_features=64)
        self.Mixed_6a = _InceptionB(288)
        self.Mixed_6b = _InceptionC(768, channels_7x7=128)
        self.Mixed_6c = _InceptionC(768, channels_7x7=160)
        self.Mixed_6d = _InceptionC(768, channels_7x7=160)
        self.Mixed_6e = _InceptionC(768, channels_7x7=192)
        self.AuxLogits: nn.Module | None = _InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = _InceptionD(768)
        self.Mixed_7b = _InceptionE(1280)
        self.Mixed_7c = _InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(2048, num_classes)
        _init_weights(self)

    def _transform_input(self, x: Tensor) -> Tensor:
        if not self.transform_input:
            return x
        # Per channel with Python-float constants, so results match torchvision bit for bit.
        channels = [
            x[:, c : c + 1] * (IMAGENET_STD[c] / 0.5) + (IMAGENET_MEAN[c] - 0.5) / 0.5
            for c in range(3)
        ]
        return torch.cat(channels, 1)

    def _features_17x17(self, x: Tensor) -> Tensor:
        x = self._transform_input(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(self.maxpool1(x))))
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        return self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x)))))

    def embed(self, x: Tensor) -> Tensor:
        """2048-d globally average-pooled Mixed_7c features (before dropout and fc)."""
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(self._features_17x17(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits, shape (N, 1000). The auxiliary head is never evaluated here; use
        :meth:`forward_with_aux` when training with it."""
        return self.fc(self.dropout(self.embed(x)))

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Main and auxiliary logits (aux is None without an aux head), for training."""
        h = self._features_17x17(x)
        aux = self.AuxLogits(h) if self.AuxLogits is not None else None
        h = torch.flatten(self.avgpool(self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(h)))), 1)
        return self.fc(self.dropout(h)), aux


def inception_v3(
    num_classes: int = NUM_CLASSES, aux_logits: bool = True, transform_input: bool = True
) -> InceptionV3:
    """Inception v3, layout-compatible with ``inception_v3_google-0cc3c7bd.pth`` (which needs
    ``aux_logits=True`` to load strictly)."""
    return InceptionV3(num_classes, aux_logits=aux_logits, transform_input=transform_input)


def _init_weights(model: nn.Module) -> None:
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


# ---------------------------------------------------------------------------------------------
# Specs and weight loading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightVariant:
    """An alternative official weight file for the same architecture, with its own resize."""

    weight_file: str
    weight_url: str
    resize_size: int
    note: str = ""


@dataclass(frozen=True)
class BackboneSpec:
    """What a caller needs to use one backbone: how to build it, where its official torchvision
    weights live, and the preprocessing those weights were evaluated with (resize the shorter
    side to ``resize_size``, centre-crop ``input_size``, scale to [0, 1], normalise with
    ``mean``/``std``)."""

    id: str
    builder: Callable[[], nn.Module]
    weight_file: str
    weight_url: str
    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embedding_dim: int
    embedding_layer_doc: str
    alternative_weights: tuple[WeightVariant, ...] = ()

    def resize_size_for(self, weight_file: str | Path) -> int:
        """Resize size matching a given weight file (an alternative file may differ)."""
        name = Path(weight_file).name
        for alt in self.alternative_weights:
            if alt.weight_file == name:
                return alt.resize_size
        return self.resize_size


def _spec(
    id: str,
    builder: Callable[[], nn.Module],
    weight_file: str,
    input_size: int,
    resize_size: int,
    embedding_dim: int,
    embedding_layer_doc: str,
    alternative_weights: tuple[WeightVariant, ...] = (),
) -> BackboneSpec:
    return BackboneSpec(
        id=id,
        builder=builder,
        weight_file=weight_file,
        weight_url=_DOWNLOAD_ROOT + weight_file,
        input_size=input_size,
        resize_size=resize_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        embedding_dim=embedding_dim,
        embedding_layer_doc=embedding_layer_doc,
        alternative_weights=alternative_weights,
    )


_VGG_FC7_DOC = (
    "fc7: 4096-d output of the second fully connected layer (classifier.3) after its ReLU, "
    "in eval mode so dropout is inactive"
)

TORCHVISION_SPECS: Mapping[str, BackboneSpec] = {
    "vgg16": _spec("vgg16", vgg16, "vgg16-397923af.pth", 224, 256, 4096, _VGG_FC7_DOC),
    "vgg19": _spec("vgg19", vgg19, "vgg19-dcbb9e9d.pth", 224, 256, 4096, _VGG_FC7_DOC),
    "resnet50": _spec(
        "resnet50",
        resnet50,
        "resnet50-11ad3fa6.pth",  # IMAGENET1K_V2, torchvision's default
        224,
        232,
        2048,
        "2048-d global-average-pooled output of layer4 (the input to fc)",
        alternative_weights=(
            WeightVariant(
                "resnet50-0676ba61.pth",
                _DOWNLOAD_ROOT + "resnet50-0676ba61.pth",
                256,
                "IMAGENET1K_V1 (original recipe); resize 256, crop 224",
            ),
        ),
    ),
    "inception_v3": _spec(
        "inception_v3",
        inception_v3,
        "inception_v3_google-0cc3c7bd.pth",
        299,
        342,
        2048,
        "2048-d global-average-pooled Mixed_7c output, before dropout and fc; input is "
        "mean/std normalised, the model rescales it to [-1, 1] itself (transform_input)",
    ),
}


class WeightsNotFoundError(FileNotFoundError):
    """The official weight file is neither given, nor cached, nor downloadable."""


class WeightsLoadError(RuntimeError):
    """The weight file exists but could not be read as a state_dict."""


class WeightsMismatchError(WeightsLoadError):
    """The weight file's keys/shapes do not match the architecture (strict loading failed)."""


def _get_spec(model_id: str) -> BackboneSpec:
    try:
        return TORCHVISION_SPECS[model_id]
    except KeyError:
        known = ", ".join(sorted(TORCHVISION_SPECS))
        raise KeyError(f"unknown backbone {model_id!r}; known: {known}") from None


def _checkpoint_dir() -> Path:
    # torch.hub.get_dir() is where torchvision itself caches these files: $TORCH_HOME/hub, with
    # TORCH_HOME defaulting to $XDG_CACHE_HOME/torch or ~/.cache/torch. Read at call time so a
    # changed environment is honoured.
    return Path(torch.hub.get_dir()) / "checkpoints"


def _hash_prefix(weight_file: str) -> str | None:
    # torchvision file names end in the first hex digits of the file's SHA-256.
    suffix = Path(weight_file).stem.rsplit("-", 1)[-1]
    return suffix if len(suffix) >= 8 and all(c in "0123456789abcdef" for c in suffix) else None


def find_torchvision_weights(
    model_id: str, weights: Path | str | None = None, *, allow_download: bool = True
) -> Path:
    """Locate (or fetch) the official weight file for ``model_id`` and return its path.

    Order: the explicit ``weights`` path; ``<torch hub dir>/checkpoints/<file>`` (also accepting
    an alternative official file, e.g. ResNet50 V1); a download into that folder when
    ``allow_download``. Raises :class:`WeightsNotFoundError` saying exactly what to put where.
    """
    spec = _get_spec(model_id)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"weights file for {model_id!r} not found: {path} (expected the official "
                f"torchvision file {spec.weight_file}, from {spec.weight_url})"
            )
        return path

    folder = _checkpoint_dir()
    for name in (spec.weight_file, *(alt.weight_file for alt in spec.alternative_weights)):
        candidate = folder / name
        if candidate.is_file():
            return candidate

    target = folder / spec.weight_file
    reason = "downloading is disabled (offline mode)"
    if allow_download:
        logger.info("downloading %s to %s", spec.weight_url, target)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(
                spec.weight_url, os.fspath(target), _hash_prefix(spec.weight_file), progress=False
            )
        except Exception as exc:  # network, disk, hash mismatch: all mean "not available"
            reason = f"download failed: {type(exc).__name__}: {exc}"
            logger.warning("could not download %s: %s", spec.weight_url, reason)
        else:
            if target.is_file():
                return target
            reason = "download finished but the file is missing"
    raise WeightsNotFoundError(
        f"ImageNet weights for {model_id!r} are not available ({reason}).\n"
        f"  Download {spec.weight_file} from {spec.weight_url}\n"
        f"  and put it in {folder}{os.sep} (i.e. {target}),\n"
        f"  or pass the file explicitly with --weights PATH."
    )


def _check_state_dict(state: Mapping[str, object], model: nn.Module, path: Path) -> None:
    """Compare keys and shapes up front so a wrong file gets a readable error, not a traceback
    listing hundreds of keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and isinstance(v, Tensor) and v.shape != expected[k].shape
    ]
    not_tensor = [k for k, v in state.items() if k in expected and not isinstance(v, Tensor)]
    if not (missing or unexpected or wrong_shape or not_tensor):
        return
    parts = []
    for label, keys in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", wrong_shape),
        ("non-tensor values", not_tensor),
    ):
        if keys:
            more = f", ... (+{len(keys) - 5} more)" if len(keys) > 5 else ""
            parts.append(f"  {label} ({len(keys)}): {', '.join(keys[:5])}{more}")
    raise WeightsMismatchError(
        f"{path} does not match the {type(model).__name__} architecture "
        f"(is it the right file, an official torchvision state_dict?):\n" + "\n".join(parts)
    )


def load_torchvision_weights(
    model_id: str, weights: Path | str | None = None, *, allow_download: bool = True
) -> nn.Module:
    """Build ``model_id`` and load official torchvision ImageNet weights strictly; eval mode.

    See :func:`find_torchvision_weights` for where the file is looked for. The path actually
    used is stored on the returned module as ``weights_path`` (ResNet50 V1 and V2 files need
    different resize sizes, see :meth:`BackboneSpec.resize_size_for`).
    """
    spec = _get_spec(model_id)
    path = find_torchvision_weights(model_id, weights, allow_download=allow_download)
    model = spec.builder()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsLoadError(
            f"could not read {path} as a torch state_dict ({type(exc).__name__}: {exc}); "
            f"expected the official file {spec.weight_file} from {spec.weight_url}"
        ) from exc
    if isinstance(state, Mapping) and not isinstance(state, dict):
        state = dict(state)
    if not isinstance(state, dict):
        raise WeightsLoadError(
            f"{path} holds a {type(state).__name__}, not a state_dict; expected the official "
            f"file {spec.weight_file} from {spec.weight_url}"
        )
    _check_state_dict(state, model, path)
    # Old checkpoints may lack BatchNorm's num_batches_tracked; it does not affect inference.
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # e.g. dtype problems the pre-check cannot see
        raise WeightsMismatchError(f"{path} does not load into {model_id}: {exc}") from exc
    model.weights_path = path
    logger.info("loaded %s weights from %s", model_id, path)
    return model.eval()
