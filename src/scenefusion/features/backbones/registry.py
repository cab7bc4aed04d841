"""The image-backbone registry: ids -> :class:`BackboneSpec`. Each architecture module
registers its specs here where it defines them; configs, ``scenefusion list`` and the tests
read it."""

from __future__ import annotations

from ...registry import Registry
from .spec import BackboneSpec

#: Backbone id -> spec; configs, `scenefusion list` and the tests read it.
IMAGE_BACKBONES: Registry[BackboneSpec] = Registry("image backbone")


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Register ``spec`` under its id, with its description (a duplicate id is refused)."""
    return IMAGE_BACKBONES.register(spec.id, spec, description=spec.description)


def variants_of(spec: BackboneSpec) -> list[BackboneSpec]:
    """Other registered specs of the same architecture (e.g. resnet50 and resnet50.v1)."""
    return [e.obj for e in IMAGE_BACKBONES.entries()
            if e.obj.builder is spec.builder and e.id != spec.id]
