"""Saliency must point at what decides the class: a picture is PATCH when a coloured patch
sits in one quadrant, PLAIN when there is only faint noise. A model trained with the patch in
the top-right quadrant must be explained there, one trained with it bottom-left there: the
same map for both, or a transposed one, fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scenefusion.evaluation.saliency import OCCLUSION, occluded_copies
from scenefusion.explain import GRAD_CAM, explain_image
from scenefusion.features.image import ImageExtractor
from scenefusion.models import LateFusion, make_model
from scenefusion.predict import load_bundle, save_bundle

CLASSES = ["PATCH", "PLAIN"]
#: where the patch's top-left corner may fall, per quadrant, in the 256 px picture (the
#: backbone sees its 224 px centre crop)
CORNERS = {"top-right": ((24, 40), (136, 152)), "bottom-left": ((136, 152), (24, 40))}
QUADRANT = {"top-left": 0, "top-right": 1, "bottom-left": 2, "bottom-right": 3}


def picture(path: Path, seed: int, quadrant: str | None) -> Path:
    """Faint grey noise, plus a red patch in ``quadrant`` (none: a PLAIN picture)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(112, 144, (256, 256, 1)).repeat(3, axis=2).astype(np.uint8)
    if quadrant is not None:
        (y0, y1), (x0, x1) = CORNERS[quadrant]
        y, x = rng.integers(y0, y1), rng.integers(x0, x1)
        pixels[y:y + 88, x:x + 88] = (220, 30, 30)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def extractor(tmp_path_factory) -> ImageExtractor:
    return ImageExtractor("effnet_lite0", cache_dir=tmp_path_factory.mktemp("cache"))


def trained(extractor: ImageExtractor, folder: Path, quadrant: str
            ) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Embeddings and labels of 10 PATCH + 10 PLAIN pictures, and 2 held-out PATCH ones."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [picture(folder / f"patch{i}.png", i, quadrant) for i in range(12)]
    paths += [picture(folder / f"plain{i}.png", 50 + i, None) for i in range(10)]
    train = paths[:10] + paths[12:]
    X = extractor.embed(torch.stack([extractor.preprocess(Image.open(p).convert("RGB"))
                                     for p in train]))
    return X, np.repeat([0, 1], 10), paths[10:12]


INFO = {"classes": CLASSES, "image_backbone": "effnet_lite0", "image_weights": None,
        "audio_features": "mfcc", "audio_source": "raw-audio"}


def quadrant_means(grid: np.ndarray) -> np.ndarray:
    """Mean saliency of the four quadrants (top-left, top-right, bottom-left, bottom-right);
    an odd-sized map's middle row and column belong to none."""
    n = grid.shape[0]
    low, high = slice(0, n // 2), slice((n + 1) // 2, n)
    return np.array([grid[low, low].mean(), grid[low, high].mean(), grid[high, low].mean(),
                     grid[high, high].mean()])


@pytest.mark.parametrize("quadrant", ["top-right", "bottom-left"])
def test_the_saliency_of_an_image_model_peaks_where_the_class_is_decided(
        extractor, quadrant, tmp_path):
    X, y, held_out = trained(extractor, tmp_path / "pictures", quadrant)
    save_bundle(make_model("logreg").fit(X, y), {**INFO, "name": "image:logreg:t",
                                                  "kind": "image"}, tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    for path in held_out:
        saliency = explain_image(bundle, path)
        assert saliency.label == "PATCH" and saliency.method == GRAD_CAM
        assert saliency.grid.shape == (7, 7)  # effnet_lite0's last map at 224 px
        means = quadrant_means(saliency.grid)
        k = QUADRANT[quadrant]
        assert means.argmax() == k, saliency.grid  # where the patch is
        assert means[k] > 2 * np.delete(means, k).max()  # by a clear margin
    # the same picture explained for PLAIN: the patch is no evidence for it
    plain = explain_image(bundle, held_out[0], label="PLAIN")
    assert plain.label == "PLAIN"
    assert quadrant_means(plain.grid)[QUADRANT[quadrant]] < means[QUADRANT[quadrant]] / 3


@pytest.fixture(scope="module")
def top_right(extractor, tmp_path_factory):
    return trained(extractor, tmp_path_factory.mktemp("top-right"), "top-right")


def test_a_late_model_explains_its_image_member(top_right, tmp_path):
    X, y, held_out = top_right
    audio = np.random.default_rng(0).normal(size=(len(y), 8, 13)).astype("float32")
    model = LateFusion({"image": make_model("logreg"), "audio": make_model("logreg")}).fit(
        {"image": X, "audio": audio}, y)
    save_bundle(model, {**INFO, "name": "late:mean:t", "kind": "late"}, tmp_path / "b")
    saliency = explain_image(load_bundle(tmp_path / "b"), held_out[0])
    assert "image member" in saliency.model and saliency.label == "PATCH"
    assert quadrant_means(saliency.grid).argmax() == 1


def test_occlusion_finds_the_patch_too(top_right, tmp_path):
    X, y, held_out = top_right
    save_bundle(make_model("logreg").fit(X, y), {**INFO, "name": "image:logreg:t",
                                                  "kind": "image"}, tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    saliency = explain_image(bundle, held_out[0], "PATCH", grid=2, method=OCCLUSION)
    assert saliency.method == OCCLUSION and saliency.grid.shape == (2, 2)
    assert saliency.grid.argmax() == 1, saliency.grid  # hiding the patch lowers PATCH most


def test_occluded_copies_hide_one_cell_each():
    picture = torch.ones(3, 8, 8)
    batch = occluded_copies(picture, 2)
    assert batch.shape == (5, 3, 8, 8) and torch.equal(batch[0], picture)
    assert torch.equal(batch[1, :, :4, :4], torch.zeros(3, 4, 4))
    assert batch[1].sum() == 3 * 48 and batch[4, :, 4:, 4:].sum() == 0


def test_a_run_report_shows_where_the_image_model_looked_on_its_worst_errors(
        top_right, extractor, tmp_path):
    from scenefusion.evaluation import evaluate, write_reports
    from scenefusion.evaluation.saliency import explain_worst_errors

    X, y, held_out = top_right
    model = make_model("logreg").fit(X, y)
    pictures = held_out + [picture(tmp_path / f"plain{i}.png", 90 + i, None) for i in range(2)]
    truth = np.array([1, 0, 1, 1])  # the first picture is labelled PLAIN: an error
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])  # errors: rows 0 and 3
    plots = tmp_path / "run" / "plots"
    plots.mkdir(parents=True)
    explained = explain_worst_errors(model, extractor, pictures, truth, proba, CLASSES, plots,
                                     n=3)
    assert [e["png"] for e in explained] == ["plots/why_error_0.png", "plots/why_error_1.png"]
    assert explained[0]["caption"].startswith(f"{pictures[0].name}: PLAIN, taken for PATCH")
    assert all((tmp_path / "run" / e["png"]).stat().st_size > 1000 for e in explained)
    result = evaluate("image:logreg", truth, proba, CLASSES, n_bootstrap=0)
    write_reports([result], tmp_path / "run", CLASSES, explained=explained)
    page = (tmp_path / "run" / "report.html").read_text()
    assert "most confident test errors" in page and page.count("data:image/png") >= 4
    assert "plots/why_error_1.png" in (tmp_path / "run" / "report.md").read_text()
    # re-rendering a run's reports from its metrics.json keeps the section
    from scenefusion.experiment import rerender_reports

    (tmp_path / "run" / "report.html").unlink()
    rerender_reports(tmp_path / "run")
    assert "most confident test errors" in (tmp_path / "run" / "report.html").read_text()


def test_a_saliency_picture_draws_any_file_name_and_leaves_the_backend_alone(tmp_path):
    import matplotlib

    from scenefusion.evaluation.plots import plot_saliency

    backend = matplotlib.get_backend()
    caption = "beach $5_a.png: 海滩, taken for CITY (82%); Grad-CAM"  # "$" is not mathtext here
    out = plot_saliency(np.full((32, 32, 3), 120, np.uint8), np.eye(4), caption,
                        tmp_path / "why.png")
    assert out.stat().st_size > 1000 and matplotlib.get_backend() == backend
