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
from .evaluation.saliency import (
    GRAD_CAM,
    OCCLUSION,
    Saliency,
    occluded_copies,
    saliency_map,
)
from .predict import Bundle

__all__ = ["GRAD_CAM", "OCCLUSION", "Saliency", "explain_image", "image_model_of",
           "image_probabilities", "occluded_copies"]


def image_model_of(bundle: Bundle) -> Bundle | None:
    """The bundle whose image model a saliency map explains: this one when it is image-only
    or a late / hybrid model with an image member, else the run's best image-only model
    saved beside it (None when there is none)."""
    if bundle.kind in ("image", "late", "hybrid"):
        return bundle
    return bundle.fallback("image")


def image_probabilities(bundle: Bundle, embeddings: np.ndarray
                        ) -> tuple[np.ndarray, list[str], str] | None:
    """(N, K) probabilities of ``bundle``'s image model (see :func:`image_model_of`), its
    classes (column order) and its name; None when it has no image model."""
    model = bundle.model
    if bundle.kind == "image":  # as predict answers: with the run's calibration temperature
        proba = apply_temperature(model.predict_proba(embeddings), bundle.temperature)
        return proba, bundle.classes, bundle.info["name"]
    if hasattr(model, "member_probabilities"):
        probas = model.member_probabilities({"image": embeddings, "audio": None})
        if "image" in probas:
            return probas["image"], bundle.classes, f"{bundle.info['name']} (image member)"
    return None


def explain_image(bundle: Bundle, image: Path, label: str | None = None,
                  grid: int | None = None, method: str | None = None) -> Saliency | None:
    """The saliency map of ``image`` for ``label`` (default: the image model's own answer).
    None when the bundle has no image model to explain or it does not know ``label``."""
    bundle = image_model_of(bundle)
    if bundle is None:
        return None
    if bundle.kind != "image" and "image" not in getattr(bundle.model, "member_names_", ()):
        return None  # a late / hybrid model without an image member of its own
    name = bundle.info["name"] + ("" if bundle.kind == "image" else " (image member)")

    def score(embeddings: np.ndarray) -> np.ndarray:
        return image_probabilities(bundle, embeddings)[0]

    extra = {"method": method} | ({} if grid is None else {"grid": grid})
    return saliency_map(bundle.image_extractor, score, bundle.classes, image, label, name,
                        **extra)
