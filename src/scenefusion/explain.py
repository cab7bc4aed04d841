"""Which part of the picture made a saved model's image model answer as it did.

The maps themselves (Grad-CAM, occlusion) are made by :mod:`.evaluation.saliency`.

The image model explained is the bundle's own for an image-only model, the image member for a
late or hybrid model, and for an early model (whose head needs the sound too) the run's best
image-only model saved beside it, when there is one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .evaluation.calibration import apply_temperature
from .evaluation.saliency import GRAD_CAM, Saliency, saliency_map
from .predict import Bundle

__all__ = ["GRAD_CAM", "Saliency", "explain_image", "image_model_of", "image_probabilities"]


def image_model_of(bundle: Bundle) -> Bundle | None:
    """The bundle whose image model a saliency map explains: this one when it is image-only
    or a late / hybrid model with an image member, else the run's best image-only model
    saved beside it (None when there is none)."""
    if bundle.kind in ("image", "late", "hybrid"):
        return bundle
    return bundle.fallback("image")


def _has_image_model(bundle: Bundle) -> bool:
    return bundle.kind == "image" or "image" in getattr(bundle.model, "member_names_", ())


def image_probabilities(bundle: Bundle, embeddings: np.ndarray) -> np.ndarray:
    """(N, K) probabilities, in ``bundle.classes`` order, of the image model of a bundle that
    has one: an image-only model with the run's calibration temperature (as predict answers),
    else the late / hybrid model's image member."""
    if bundle.kind == "image":
        return apply_temperature(bundle.model.predict_proba(embeddings), bundle.temperature)
    return bundle.model.member_probabilities({"image": embeddings, "audio": None})["image"]


def explain_image(bundle: Bundle, image: Path, label: str | None = None,
                  grid: int | None = None, method: str | None = None) -> Saliency | None:
    """The saliency map of ``image`` for ``label`` (default: the image model's own answer).
    None when the bundle has no image model to explain or it does not know ``label``."""
    bundle = image_model_of(bundle)
    if bundle is None or not _has_image_model(bundle):
        return None  # e.g. a late / hybrid model without an image member of its own
    name = bundle.info["name"] + ("" if bundle.kind == "image" else " (image member)")
    extra = {"method": method} | ({} if grid is None else {"grid": grid})
    return saliency_map(bundle.image_extractor, lambda e: image_probabilities(bundle, e),
                        bundle.classes, image, label, name, **extra)
