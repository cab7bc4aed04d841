"""Default late combiners can only help: members calibrated, the learnt rule kept only where
held-out groups back it, the best member alone where they cannot say.

The toy "few recordings" set: the image side generalises to unseen groups; the audio side is
a per-recording signature (each recording has its own random sound, nothing shared by a
class), so an audio model learns its training recordings perfectly and answers confidently
and wrongly on recordings it never heard, the failure seen on real ambient recordings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from scenefusion.models import LateFusion, load_model, save_model
from scenefusion.models.combiners import COMBINERS, ProductCombiner
from scenefusion.models.safe_files import ModelLoadError

DEFAULTS = ("product", "stacking", "shrunk")


def few_recordings(seed: int, n_classes: int = 4, recordings: int = 3, clips: int = 12):
    """(X, y, groups) of ``recordings`` recordings per class, ``clips`` rows each."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(7).normal(size=(n_classes, 32))
    rows = []
    for k in range(n_classes):
        for r in range(recordings):
            signature = rng.normal(scale=3.0, size=16)  # this recording's sound, not its class's
            for _ in range(clips):
                rows.append((centres[k] + 1.3 * rng.normal(size=32),
                             signature + 0.3 * rng.normal(size=16), k, f"{seed}-{k}-{r}"))
    image, audio, y, groups = map(np.array, zip(*rows, strict=True))
    return {"image": image, "audio": audio}, y, groups


@pytest.fixture(scope="module")
def unheard():
    train, y, groups = few_recordings(seed=0)
    test, y_test, _ = few_recordings(seed=1)  # other recordings of the same classes
    return train, y, groups, test, y_test


def _accuracy(model, X, y) -> float:
    return float(np.mean(model.predict(X) == y))


def test_the_toy_audio_is_confidently_wrong_on_unheard_recordings(unheard):
    train, y, groups, test, y_test = unheard
    model = LateFusion({"image": "logreg", "audio": "logreg"}, "mean").fit(train, y,
                                                                        groups=groups)
    audio = model.members_["audio"]
    assert _accuracy(audio, train["audio"], y) == 1.0
    assert _accuracy(audio, test["audio"], y_test) < 0.45
    assert audio.predict_proba(test["audio"]).max(axis=1).mean() > 0.6  # and sure of it


@pytest.mark.parametrize("method", DEFAULTS)
def test_no_default_combiner_falls_below_the_image_member_on_unheard_recordings(method,
                                                                                unheard):
    train, y, groups, test, y_test = unheard
    fused = LateFusion({"image": "logreg", "audio": "logreg"}, method, stack_on="oof",
                       cv=3).fit(train, y, groups=groups)
    image = _accuracy(fused.members_["image"], test["image"], y_test)
    assert image > 0.8
    assert _accuracy(fused, test, y_test) >= image - 0.01
    weights = fused.member_weights()
    assert weights["image"] > weights["audio"]


def test_a_naive_rule_asked_for_still_shows_the_collapse(unheard):
    train, y, groups, test, y_test = unheard
    naive = LateFusion({"image": "logreg", "audio": "logreg"}, "mean").fit(train, y,
                                                                        groups=groups)
    image = _accuracy(naive.members_["image"], test["image"], y_test)
    assert _accuracy(naive, test, y_test) < image - 0.05
    assert not COMBINERS.get("mean").guarded and all(COMBINERS.get(m).guarded
                                                      for m in DEFAULTS)


def test_members_are_calibrated_before_combining(unheard):
    train, y, groups, _, _ = unheard
    fused = LateFusion({"image": "logreg", "audio": "logreg"}, "product", stack_on="oof",
                       cv=3).fit(train, y, groups=groups)
    temperatures = fused.combiner_.temperatures
    # out of fold the audio member is wrong and sure: it is softened far more than the image
    assert temperatures["audio"] > 2.0 * temperatures["image"]


def test_thin_evidence_falls_back_to_the_best_member_not_to_equal_weights(unheard):
    train, y, _, test, y_test = unheard
    one_group_each = np.array([f"only-{k}" for k in y])  # no recording can be held out
    fused = LateFusion({"image": "logreg", "audio": "logreg"}, "stacking", stack_on="oof",
                       cv=3).fit(train, y, groups=one_group_each)
    assert fused.guard_note_ is not None and "no held-out evidence" in fused.guard_note_
    assert sum(fused.member_weights().values()) == 1.0
    assert max(fused.member_weights().values()) == 1.0
    only = max(fused.member_weights(), key=fused.member_weights().get)
    np.testing.assert_allclose(
        fused.predict_proba(test),
        fused.combiner_.answer({only: fused._member_proba(only, test)}, False))


def test_the_guard_keeps_a_rule_that_helps_on_held_out_folds():
    """Two members that each know half of the classes: fusing beats either, so it is kept."""
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 60)
    classes = np.arange(4)

    def knows(good: set[int]) -> np.ndarray:
        P = rng.dirichlet(np.ones(4), size=len(y))
        hit = np.isin(y, list(good))
        P[hit, y[hit]] += 3.0
        return P / P.sum(axis=1, keepdims=True)

    probas = {"image": knows({0, 1}), "audio": knows({2, 3})}
    fold_of = np.arange(len(y)) % 3
    folds = [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(3)]
    combiner = ProductCombiner().learn(probas, y, classes, folds=folds)
    assert combiner.solo is None and combiner.guard_note is None
    assert 0 < combiner.weights["image"] < 1
    fused = combiner.answer(probas, True)
    assert np.mean(fused.argmax(axis=1) == y) > max(np.mean(p.argmax(axis=1) == y)
                                                     for p in probas.values())


def test_the_guard_state_is_saved_and_checked(unheard, tmp_path):
    train, y, _, test, _ = unheard
    one_group_each = np.array([f"only-{k}" for k in y])
    fused = LateFusion({"image": "logreg", "audio": "logreg"}, "product", stack_on="oof",
                       cv=3).fit(train, y, groups=one_group_each)
    save_model(fused, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(test), fused.predict_proba(test))
    assert loaded.guard_note_ == fused.guard_note_
    stacking = LateFusion({"image": "logreg", "audio": "logreg"}, "stacking", stack_on="oof",
                          cv=3).fit(train, y, groups=one_group_each)
    assert stacking.guard_note_ is not None  # answers with one member, yet saves whole
    save_model(stacking, tmp_path / "s")
    np.testing.assert_array_equal(load_model(tmp_path / "s").predict_proba(test),
                                  stacking.predict_proba(test))
    manifest = json.loads((tmp_path / "m/manifest.json").read_text())
    manifest["state"]["guard"]["solo"] = "smell"
    (tmp_path / "m/manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="'guard.solo' must name one of the members"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("method", DEFAULTS)
def test_a_validation_split_too_small_to_fold_leaves_the_best_member_alone(method):
    """Learning on validation rows with a class seen once: no fold can score the rule there,
    so a guarded combiner answers with its best member instead of failing to fit."""
    from arrays import make_modalities

    image, audio, y = make_modalities(n=90, seed=0)
    image_val, audio_val, y_val = make_modalities(n=4, seed=1)
    assert np.unique(y_val, return_counts=True)[1].min() == 1
    fused = LateFusion({"image": "logreg", "audio": "logreg"}, method, stack_on="val").fit(
        {"image": image, "audio": audio}, y, {"image": image_val, "audio": audio_val}, y_val)
    assert fused.guard_note_ is not None and "no held-out evidence" in fused.guard_note_
    assert sorted(fused.member_weights().values()) == [0.0, 1.0]
