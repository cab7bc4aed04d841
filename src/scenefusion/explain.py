"""Which part of the picture made the image model answer as it did: a saliency map.

**Grad-CAM** where the backbone's embedding is the global average of a feature map
(``feature_map``, e.g. EfficientNet-Lite's last convolutional block): each channel of the map
is weighted by the gradient of the head's log-probability of the class with respect to that
embedding value, and the weighted sum, clipped at 0, says where in the picture the evidence
sits. The head's gradient is taken by central finite differences on the embedding, so any
head works, classical (logistic regression, SVM) or not, without a differentiable copy of it;
for a linear head this is its exact gradient. The map comes from the torch runtime.

**Occlusion sensitivity** otherwise (a backbone without a feature map, or a head whose
gradient is zero there, such as a forest): the picture is cut into a ``grid`` x ``grid``
raster, each cell in turn is painted with the normalised mean colour, and a cell's saliency is
how much the probability of the class fell without it. Painted cells are pictures the model
never saw, so these maps are coarser and noisier; ``Saliency.method`` says which was used.

The image model explained is the bundle's own for an image-only model, the image member for a
late or hybrid model, and for an early model (whose head needs the sound too) the run's best
image-only model saved beside it, when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data.validate import open_image_rgb
from .evaluation.calibration import apply_temperature
from .predict import Bundle

#: cells per side of the occlusion raster (16 cells: 17 images per explanation)
DEFAULT_GRID = 4
GRAD_CAM = "Grad-CAM (last feature map; head gradient by finite differences)"
OCCLUSION = "occlusion sensitivity"
#: finite-difference step, as a fraction of the embedding's spread
_STEP = 1e-2


@dataclass(frozen=True)
class Saliency:
    """A saliency map over the backbone's input crop: ``grid[r][c]`` is the fall in the
    probability of ``label`` when cell (row r, column c) is hidden."""

    label: str
    probability: float
    grid: np.ndarray
    method: str
    model: str
    #: the share of the picture's shorter side the backbone's centre crop covers
    crop: float = 1.0

    def as_dict(self) -> dict:
        return {"class": self.label, "probability": round(self.probability, 4),
                "grid": np.round(self.grid, 6).tolist(), "method": self.method,
                "model": self.model, "crop": round(self.crop, 4)}


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


def occluded_copies(picture: torch.Tensor, grid: int) -> torch.Tensor:
    """(grid**2 + 1, 3, H, W): the picture, then one copy per cell with that cell set to 0."""
    _, h, w = picture.shape
    rows = np.linspace(0, h, grid + 1).round().astype(int)
    cols = np.linspace(0, w, grid + 1).round().astype(int)
    batch = picture.unsqueeze(0).repeat(grid * grid + 1, 1, 1, 1)
    for r in range(grid):
        for c in range(grid):
            batch[1 + r * grid + c, :, rows[r]:rows[r + 1], cols[c]:cols[c + 1]] = 0.0
    return batch


def head_gradient(bundle: Bundle, embedding: np.ndarray, label: str) -> np.ndarray | None:
    """d log p(label) / d embedding of the explained image model, by central differences
    (one batch of 2 x D rows); None when there is no image model or it does not know label."""
    d = len(embedding)
    step = _STEP * max(float(embedding.std()), 1e-6)
    shifted = np.concatenate([embedding + step * np.eye(d), embedding - step * np.eye(d)])
    scored = image_probabilities(bundle, shifted.astype(np.float32))
    if scored is None or label not in scored[1]:
        return None
    logp = np.log(np.clip(scored[0][:, scored[1].index(label)], 1e-12, 1.0))
    return (logp[:d] - logp[d:]) / (2 * step)


def explain_image(bundle: Bundle, image: Path, label: str | None = None,
                  grid: int = DEFAULT_GRID) -> Saliency | None:
    """The saliency map of ``image`` for ``label`` (default: the image model's own answer);
    Grad-CAM where the backbone allows it, else occlusion. None when the bundle has no image
    model to explain or it does not know ``label``."""
    bundle = image_model_of(bundle)
    if bundle is None:
        return None
    extractor = bundle.image_extractor
    picture = extractor.preprocess(open_image_rgb(Path(image)))
    net = extractor.model
    if hasattr(net, "feature_map"):
        with torch.inference_mode():
            fmap = net.feature_map(picture[None])[0].float().numpy()  # (C, h, w)
        embedding = fmap.mean(axis=(1, 2))
        scored = image_probabilities(bundle, embedding[None])
        if scored is None or (label is not None and label not in scored[1]):
            return None
        proba, classes, name = scored
        chosen = label if label is not None else classes[int(np.argmax(proba[0]))]
        gradient = head_gradient(bundle, embedding, chosen)
        cam = np.maximum(np.tensordot(gradient, fmap, axes=1), 0.0)
        if cam.max() > 0:
            return Saliency(chosen, float(proba[0, classes.index(chosen)]), cam, GRAD_CAM,
                            name, _crop(bundle))
    return occlusion(bundle, picture, label, grid)


def occlusion(bundle: Bundle, picture: torch.Tensor, label: str | None,
              grid: int = DEFAULT_GRID) -> Saliency | None:
    """Occlusion sensitivity of a preprocessed picture (see the module docstring)."""
    scored = image_probabilities(bundle, bundle.image_extractor.embed(
        occluded_copies(picture, grid)))
    if scored is None or (label is not None and label not in scored[1]):
        return None
    proba, classes, name = scored
    k = int(np.argmax(proba[0])) if label is None else classes.index(label)
    fall = proba[0, k] - proba[1:, k]
    return Saliency(classes[k], float(proba[0, k]), fall.reshape(grid, grid), OCCLUSION, name,
                    _crop(bundle))


def _crop(bundle: Bundle) -> float:
    p = bundle.image_extractor.spec.preprocessing
    return p.input_size / p.resize_size
