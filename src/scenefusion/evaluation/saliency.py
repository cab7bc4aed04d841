"""Saliency maps of an image model over its backbone's input: the method behind
``scenefusion.explain`` (answers of a saved model) and the report's worst test errors.

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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.validate import open_image_rgb
from ..features.image import ImageExtractor

#: cells per side of the occlusion raster (16 cells: 17 images per explanation)
DEFAULT_GRID = 4
GRAD_CAM = "Grad-CAM (last feature map; head gradient by finite differences)"
OCCLUSION = "occlusion sensitivity"
#: finite-difference step, as a fraction of the embedding's spread
_STEP = 1e-2

#: embeddings (N, D) -> probabilities (N, K) of the image model explained
Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Saliency:
    """A saliency map over the backbone's input crop: ``grid[r][c]`` is the evidence for
    ``label`` in cell (row r, column c)."""

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


def head_gradient(score: Scorer, embedding: np.ndarray, k: int) -> np.ndarray:
    """d log p(class k) / d embedding, by central differences (one batch of 2 x D rows)."""
    d = len(embedding)
    step = _STEP * max(float(embedding.std()), 1e-6)
    shifted = np.concatenate([embedding + step * np.eye(d), embedding - step * np.eye(d)])
    logp = np.log(np.clip(score(shifted.astype(np.float32))[:, k], 1e-12, 1.0))
    return (logp[:d] - logp[d:]) / (2 * step)


def saliency_map(extractor: ImageExtractor, score: Scorer, classes: list[str], image: Path,
                 label: str | None = None, model: str = "", grid: int = DEFAULT_GRID,
                 method: str | None = None) -> Saliency | None:
    """The saliency of ``image`` for ``label`` (default: the model's own answer) under the
    image model ``score`` on ``extractor``'s embeddings; Grad-CAM where the backbone allows
    it, else occlusion (``method=OCCLUSION`` asks for occlusion). None when ``label`` is not
    one of ``classes``."""
    if label is not None and label not in classes:
        return None
    picture = extractor.preprocess(open_image_rgb(Path(image)))
    p = extractor.spec.preprocessing
    crop = p.input_size / p.resize_size
    if method != OCCLUSION and hasattr(extractor.model, "feature_map"):
        with torch.inference_mode():
            fmap = extractor.model.feature_map(picture[None])[0].float().numpy()  # (C, h, w)
        embedding = fmap.mean(axis=(1, 2))
        proba = score(embedding[None])
        k = int(np.argmax(proba[0])) if label is None else classes.index(label)
        cam = np.maximum(np.tensordot(head_gradient(score, embedding, k), fmap, axes=1), 0.0)
        if cam.max() > 0:
            return Saliency(classes[k], float(proba[0, k]), cam, GRAD_CAM, model, crop)
    proba = score(extractor.embed(occluded_copies(picture, grid)))
    k = int(np.argmax(proba[0])) if label is None else classes.index(label)
    fall = proba[0, k] - proba[1:, k]
    return Saliency(classes[k], float(proba[0, k]), fall.reshape(grid, grid), OCCLUSION, model,
                    crop)


def draw_saliency(image: Path, saliency: Saliency, out: Path, caption: str) -> Path:
    """The picture's centre crop (what the backbone saw) with the map laid over it, as a PNG."""
    from .plots import plot_saliency  # matplotlib only when drawing

    picture = open_image_rgb(Path(image))
    w, h = picture.size
    side = min(w, h) * saliency.crop
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    square = np.asarray(picture.crop(tuple(round(v) for v in box)).resize((224, 224)))
    return plot_saliency(square, saliency.grid, caption, out)


def explain_worst_errors(model: object, extractor: ImageExtractor, images: list[Path],
                         y: np.ndarray, proba: np.ndarray, classes: list[str], plots_dir: Path,
                         n: int = 4) -> list[dict[str, str]]:
    """Saliency pictures of the ``n`` test errors an image model made most confidently: for
    each, where in the picture it found the wrong class. ``proba`` holds its test
    probabilities (columns in ``classes`` order) for ``images``; ``model.predict_proba``
    scores embeddings of ``extractor``'s backbone. Returns ``{"png", "caption"}`` per picture,
    ``png`` relative to the run folder (``plots_dir``'s parent); none when a picture is
    missing (a data set without images)."""
    if any(image is None for image in images):
        return []
    plots_dir.mkdir(parents=True, exist_ok=True)
    predicted = proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    worst = wrong[np.argsort(-proba[wrong, predicted[wrong]], kind="stable")][:n]
    known = [int(k) for k in getattr(model, "classes_", range(len(classes)))]

    def score(embeddings: np.ndarray) -> np.ndarray:
        full = np.zeros((len(embeddings), len(classes)))
        full[:, known] = model.predict_proba(embeddings)
        return full

    out = []
    for rank, i in enumerate(worst):
        found = saliency_map(extractor, score, classes, images[i], classes[predicted[i]])
        if found is None:
            continue
        caption = (f"{Path(images[i]).name}: {classes[y[i]]}, taken for "
                   f"{found.label} ({found.probability:.0%}); "
                   f"{'Grad-CAM' if found.method == GRAD_CAM else found.method}")
        png = draw_saliency(images[i], found, plots_dir / f"why_error_{rank}.png", caption)
        out.append({"png": f"{plots_dir.name}/{png.name}", "caption": caption})
    return out
