"""How groups and folds are made: one fold builder for selection, tuning, combiners and
calibration that never holds out every item of a class; photos grouped one per photo unless
their names mark frames of videos; every group count the split accepts trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scenefusion.config import ExperimentConfig
from scenefusion.data import Dataset, Item, SplitError, load_manifest, load_pairs_folder, make_split
from scenefusion.data.folds import FoldError, row_groups, training_folds
from scenefusion.evaluation.calibration import cross_fitted_ece
from scenefusion.features.extract import DatasetFeatures
from scenefusion.grid.calibrate import calibrate
from scenefusion.grid.comparison import ComparisonGrid
from scenefusion.plan import grid_plan

# --- the fold builder --------------------------------------------------------------------------


def _grouped(groups_per_class: list[int], rows_per_group: int = 3) -> tuple[np.ndarray, ...]:
    y, groups = [], []
    for k, n in enumerate(groups_per_class):
        for g in range(n):
            y += [k] * rows_per_group
            groups += [f"c{k}g{g}"] * rows_per_group
    return np.array(y), np.array(groups)


def _check(folds, y: np.ndarray, groups: np.ndarray | None) -> None:
    held = np.concatenate([te for _, te in folds])
    assert sorted(held.tolist()) == list(range(len(y)))  # every row held out exactly once
    for fit, te in folds:
        assert len(te) and not set(fit) & set(te)
        assert set(y[fit].tolist()) == set(y.tolist())  # every class on the fitting side


@pytest.mark.parametrize("counts", [[1, 1], [2, 2], [3, 3], [1, 5], [2, 7, 1], [4, 4, 4, 4],
                                    [6, 2]])
@pytest.mark.parametrize("n_folds", [2, 3, 5])
def test_no_fold_ever_holds_out_every_item_of_a_class(counts, n_folds):
    y, groups = _grouped(counts)
    for seed in range(4):
        folds = training_folds(y, groups, n_folds, seed)
        _check(folds, y, groups)
        for fit, te in folds:  # a class with >= 2 groups is held out by whole groups
            for k, n in enumerate(counts):
                if n >= 2:
                    mine = y == k
                    assert not set(groups[fit][mine[fit]]) & set(groups[te][mine[te]])


def test_folds_are_deterministic_and_balanced():
    y, groups = _grouped([6, 6, 6], rows_per_group=2)
    a, b = training_folds(y, groups, 3, seed=7), training_folds(y, groups, 3, seed=7)
    assert all(np.array_equal(x[1], z[1]) for x, z in zip(a, b, strict=True))
    assert [len(te) for _, te in a] == [12, 12, 12]


def test_a_class_with_one_group_is_cut_into_contiguous_slices_and_says_so():
    y, groups = _grouped([1, 4], rows_per_group=6)
    folds = training_folds(y, groups, 3, classes=["BEACH", "CITY"])
    _check(folds, y, groups)
    assert len(folds.notes) == 1 and "class 'BEACH' has one training group" in folds.notes[0]
    for _, te in folds:
        beach = te[y[te] == 0]
        assert np.array_equal(beach, np.arange(beach[0], beach[0] + len(beach)))  # contiguous


def test_where_no_fold_can_keep_a_class_it_is_refused_in_one_sentence():
    with pytest.raises(FoldError, match="class 'CITY' has 1 training item"):
        training_folds(np.array([0, 0, 0, 1]), None, 3, classes=["BEACH", "CITY"])
    with pytest.raises(FoldError, match="at least 2 classes"):
        training_folds(np.zeros(6, dtype=int), None, 3)
    y, groups = _grouped([1, 3])
    with pytest.raises(FoldError, match="has one group"):  # a held-out-group check needs two
        training_folds(y, groups, 3, slice_lone_groups=False)


def test_calibration_check_never_holds_out_a_whole_class():
    """A group that is a whole class (a photo folder read by names) left the held-out class
    out of the temperature's fit; with two groups a class, each fold keeps every class."""
    rng = np.random.default_rng(0)
    y, groups = _grouped([2, 2, 2], rows_per_group=30)
    proba = rng.dirichlet(np.ones(3), size=len(y))
    seen: list[set[int]] = []
    import scenefusion.evaluation.calibration as cal
    real = cal.fit_temperature

    def spy(p, labels):
        seen.append(set(np.asarray(labels).tolist()))
        return real(p, labels)

    cal.fit_temperature = spy
    try:
        assert cross_fitted_ece(proba, y, groups) is not None
    finally:
        cal.fit_temperature = real
    assert seen and all(s == {0, 1, 2} for s in seen)
    assert cross_fitted_ece(proba, y, np.array(["one"] * len(y))) is None


# --- --split frame: folds by frame -------------------------------------------------------------


def _dataset(groups_per_class: int, rows_per_group: int, classes=("BEACH", "CITY"),
             one_group_per_class: bool = False) -> Dataset:
    items = []
    for label in classes:
        for g in range(groups_per_class):
            for f in range(rows_per_group):
                group = label if one_group_per_class else f"{label}/v{g}"
                items.append(Item(id=f"{label}/v{g}_{f}", label=label, group=group,
                                  image=Path(f"{label}/v{g}_{f}.png"),
                                  audio=Path(f"{label}/v{g}_{f}.wav")))
    return Dataset(items, list(classes), Path("."), "pairs", "derived from file names")


def _features(ds: Dataset, seed: int = 0) -> DatasetFeatures:
    """Separable-but-noisy features per class (no extraction)."""
    rng = np.random.default_rng(seed)
    y = ds.labels
    image = rng.normal(size=(len(ds), 8)) + 3.0 * np.eye(8)[y]
    audio = rng.normal(size=(len(ds), 8, 13)) + 0.8 * y[:, None, None]
    return DatasetFeatures(ds, {"effnet_lite0": image.astype(np.float32)},
                           audio.astype(np.float32), [], {})


def _config(select_on: str = "auto", **fusion) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "models": {"image": ["logreg", "knn"], "audio": ["logreg"], "select_on": select_on},
        "fusion": {"early": ["logreg"], "late": ["mean", "stacking"], "hybrid": ["stacking"],
                   **fusion},
        "evaluation": {"n_bootstrap": 0}})


def test_frame_split_selects_combines_and_calibrates_on_folds_by_frame():
    """Every photo of a class in one derived group: grouped folds would hold out whole
    classes (a CV accuracy near 0); with --split frame the folds are stratified by row."""
    ds = _dataset(1, 40, classes=("BEACH", "CITY", "FOREST"), one_group_per_class=True)
    split = make_split(ds, "frame", seed=0)
    grid = ComparisonGrid(grid_plan(_config("cv", combiner_on="oof"), "mfcc"), _features(ds),
                          split)
    assert grid.selection == "cv" and grid.stack_on == "oof"
    assert np.array_equal(grid.data.groups, row_groups(ds.groups, "frame"))
    for _, held in grid.cv_folds:
        assert set(grid.y[split.train][held].tolist()) == {0, 1, 2}  # stratified by row
    assert any("stratified 3-fold cross-validation over the training rows" in n
               for n in grid.notes)
    candidates = grid.run()
    image = [c for c in candidates if c.spec.family == "image"]
    assert min(c.cv_accuracy for c in image) > 0.8  # held-out-class folds gave 0.02-0.05
    for c in candidates:
        record = calibrate(c, grid.data, grid.y[split.test])
        assert record is not None and record.held_out_ece_before is not None


# --- every group count the split accepts trains ------------------------------------------------


@pytest.mark.parametrize(("groups_per_class", "frames"), [(2, 6), (3, 6), (4, 6), (3, 1)])
def test_every_group_count_the_split_accepts_trains(groups_per_class, frames):
    """Two classes x three videos left one training video a class: grouped folds held it out
    and a member was fitted on one class ('This solver needs samples of at least 2 classes');
    three photos a class left the SVM's 5-fold Platt scaling too few rows."""
    ds = _dataset(groups_per_class, frames)
    split = make_split(ds, "group", seed=0)
    config = _config().model_copy(deep=True)
    config.models.image = ["logreg", "knn", "svm", "hgb"]
    grid = ComparisonGrid(grid_plan(config, "mfcc"), _features(ds), split)
    candidates = grid.run()
    assert {c.spec.family for c in candidates} == {"image", "audio", "early", "late", "hybrid"}
    assert all(np.isfinite(c.test_proba).all() for c in candidates)
    if groups_per_class < 4 and frames > 1:  # one training video a class: the fallback is noted
        assert any("has one training group" in n for n in grid.notes)
    for c in candidates:
        calibrate(c, grid.data, grid.y[split.test])


def test_a_class_too_small_to_train_is_refused_by_the_split():
    items = [Item(id=f"{c}/{i}", label=c, group=f"{c}/{i}", image=Path(f"{c}/{i}.png"))
             for c, n in (("BEACH", 2), ("CITY", 5)) for i in range(n)]
    ds = Dataset(items, ["BEACH", "CITY"], Path("."), "pairs", "x", modalities=("image",))
    with pytest.raises(SplitError, match="class 'BEACH' keeps 1 training item.* at least 2"):
        make_split(ds, "group")
    # three photos: validation gives its photo back so that two are left to train on
    items.append(Item(id="BEACH/2", label="BEACH", group="BEACH/2", image=Path("BEACH/2.png")))
    split = make_split(Dataset(items, ["BEACH", "CITY"], Path("."), "pairs", "x",
                               modalities=("image",)), "group")
    assert (np.array([it.label for it in items])[split.train] == "BEACH").sum() == 2


def test_a_frame_split_of_a_tiny_class_is_one_sentence():
    ds = _dataset(1, 1, classes=("BEACH", "CITY"))
    with pytest.raises(SplitError, match="frame-level split cannot give every side items of "
                                         "every class"):
        make_split(ds, "frame")


# --- photos: one group each unless the names mark frames of videos -----------------------------


def _photos(root: Path, names: dict[str, list[str]]) -> Path:
    from PIL import Image

    for label, stems in names.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            Image.new("RGB", (16, 16), (40, 90, 200)).save(root / label / f"{stem}.jpg")
    return root


def test_a_miniplaces_style_photo_folder_is_one_group_per_photo(tmp_path):
    root = _photos(tmp_path / "photos", {
        "BEACH": [f"miniplaces_c-coast_{n:08d}" for n in (21, 388, 1204, 5020, 9000)],
        "CITY": [f"miniplaces_s-skyscraper_{n:08d}" for n in range(1, 6)]})  # consecutive too
    ds = load_pairs_folder(root, check_files=False)
    assert ds.modalities == ("image",) and len(set(ds.groups)) == len(ds) == 10
    assert "one group per photo" in ds.group_source
    split = make_split(ds, "group")
    assert any("one group per photo" in n for n in split.notes)


def test_frames_of_a_few_videos_are_grouped_by_video(tmp_path):
    root = _photos(tmp_path / "frames", {
        label: [f"video{v}_{f:04d}" for v in range(2) for f in range(1, 9)]
        for label in ("BEACH", "CITY")})
    ds = load_pairs_folder(root, check_files=False)
    assert ds.groups_per_class() == {"BEACH": 2, "CITY": 2}
    assert "frames of videos" in ds.group_source


def test_an_image_only_manifest_without_groups_follows_the_same_rule(tmp_path):
    root = _photos(tmp_path / "p", {"BEACH": ["coast_001", "coast_002", "coast_003"],
                                    "CITY": ["city_001", "city_002", "city_003"]})
    csv = tmp_path / "m.csv"
    csv.write_text("image,label\n" + "".join(
        f"{p.relative_to(tmp_path).as_posix()},{p.parent.name}\n"
        for p in sorted(root.rglob("*.jpg"))))
    ds = load_manifest(csv, check_files=False)
    assert len(set(ds.groups)) == 6 and "one group per photo" in ds.group_source


def test_the_one_group_error_says_how_to_give_groups(tmp_path):
    root = _photos(tmp_path / "frames", {"BEACH": [f"v0_{f}" for f in range(4)]
                                         + [f"v1_{f}" for f in range(4)],
                                         "CITY": [f"v0_{f}" for f in range(4)]
                                         + [f"v1_{f}" for f in range(4)]})
    ds = load_pairs_folder(root, check_files=False)
    one = ds.subset([i for i, it in enumerate(ds.items) if it.group != "CITY/v1"])
    with pytest.raises(SplitError, match="class 'CITY' has only 1 source group.*manifest's "
                                         "'group' column"):
        make_split(one, "group")
