"""Inception v3 (Szegedy et al. 2015) with torchvision's exact state_dict layout, so the
official ``inception_v3_google-0cc3c7bd.pth`` loads strictly. Its input is ImageNet mean/std
normalised; the model rescales it to the [-1, 1] its Google weights expect (transform_input)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NUM_CLASSES,
    imagenet_preprocessing,
    init_weights,
    torchvision_weights,
)
from .registry import register_backbone
from .spec import BackboneSpec


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
        init_weights(self)

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


register_backbone(BackboneSpec(
    "inception_v3", inception_v3, torchvision_weights("inception_v3_google-0cc3c7bd.pth"),
    imagenet_preprocessing(299, 342), 2048,
    "global-average-pooled Mixed_7c, before dropout and fc; the model rescales its mean/std "
    "input to [-1, 1] itself", "Inception v3, torchvision's ImageNet file"))
