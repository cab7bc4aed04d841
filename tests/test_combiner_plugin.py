"""A late combiner with a setting is one class: it declares the setting, a config sets it
(`fusion.params`), the grid's fitted combiner and saved models carry it; the built-in
combiners keep their results, and models saved before combiners declared settings still load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
import yaml
from arrays import make_modalities
from pydantic import Field
from sklearn.base import clone

from scenefusion.config import ConfigError, load_config
from scenefusion.data.synthetic import DEMO_RECIPE, make_pairs_folder
from scenefusion.models import (
    COMBINERS,
    FUSION,
    HybridFusion,
    LateFusion,
    load_model,
    make_combiner,
    resolve_combiner,
    save_model,
)
from scenefusion.models.combiners import Combiner, StackingCombiner, register_combiner

OLD = Path(__file__).parent / "data" / "fusion_v1"


@pytest.fixture()
def fixed_weight():
    """A combiner of the test's own with one setting: the image's fixed share."""

    @register_combiner("fixed_weight", description="the image counts image_weight, audio "
                                                   "the rest")
    class FixedWeight(Combiner):
        image_weight: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5

        def shares(self, names):
            return np.array([self.image_weight if n == "image" else 1.0 - self.image_weight
                             for n in names])

        def combine(self, probas, complete):
            w = self.shares(list(probas))
            return np.tensordot(w / w.sum(), np.stack(list(probas.values())), axes=1)

    yield FixedWeight
    COMBINERS.unregister("fixed_weight")


def _toy():
    image, audio, y = make_modalities(n=60, seed=0, dim=8)
    return {"image": image, "audio": audio}, y


def test_a_setting_is_one_declaration_in_its_class(fixed_weight):
    assert fixed_weight.setting_names() == ("image_weight",)
    assert fixed_weight.id == "fixed_weight"
    assert make_combiner("fixed_weight", image_weight=0.8).settings() == {"image_weight": 0.8}

    class Damped(StackingCombiner):  # a subclass writes only what it adds
        damping: float = 0.5

    assert Damped.setting_names() == ("meta_C", "damping")
    assert Damped(meta_C=2.0).clone().settings() == {"meta_C": 2.0, "damping": 0.5}


def test_a_config_sets_a_combiner_setting_that_reaches_the_grid(fixed_weight, tmp_path):
    from scenefusion.experiment import run_experiment

    pairs = make_pairs_folder(tmp_path / "pairs", classes=("BEACH", "CITY", "FOREST"),
                              groups_per_class=5, frames_per_group=3,
                              looks=DEMO_RECIPE["looks"], sounds=DEMO_RECIPE["sounds"])
    cfg = tmp_path / "experiment.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"path": str(pairs)},
        "models": {"image": ["logreg"], "audio": ["logreg"]},
        "fusion": {"early": [], "late": ["fixed_weight", "mean"], "hybrid": [],
                   "params": {"fixed_weight": {"image_weight": 0.8}}},
        "evaluation": {"n_bootstrap": 0, "explain_errors": 0},
        "features": {"cache_dir": str(tmp_path / "cache")},
        "output": {"runs_dir": str(tmp_path / "runs"), "name": "r"},
    }))
    config = load_config(cfg)
    assert config.fusion.params == {"fixed_weight": {"image_weight": 0.8}}
    out = run_experiment(config)
    rows = json.loads((out.run_dir / "metrics.json").read_text())["results"]
    weights = {r["extra"]["method"]: r["extra"]["member_weights"] for r in rows
               if r["extra"]["family"] == "late"}
    assert weights["fixed_weight"] == {"image": 0.8, "audio": 0.2}
    assert weights["mean"] == {"image": 0.5, "audio": 0.5}


def test_a_saved_model_keeps_its_combiner_settings(fixed_weight, tmp_path):
    X, y = _toy()
    model = LateFusion({"image": "logreg", "audio": "logreg"},
                       combiner=resolve_combiner("fixed_weight", {"image_weight": 0.8})).fit(X, y)
    assert model.fusion_id == "late:fixed_weight"
    assert model.combiner_.image_weight == 0.8 and model.combiner.image_weight == 0.8
    save_model(model, tmp_path / "m")
    params = json.loads((tmp_path / "m/manifest.json").read_text())["params"]
    assert params["combiner"] == {"id": "fixed_weight", "settings": {"image_weight": 0.8}}
    loaded = load_model(tmp_path / "m")
    assert loaded.combiner_.settings() == {"image_weight": 0.8}
    assert loaded.member_weights() == {"image": 0.8, "audio": 0.2}
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_a_bad_setting_in_a_saved_model_is_refused_naming_the_file(fixed_weight, tmp_path):
    X, y = _toy()
    save_model(LateFusion(combiner=make_combiner("fixed_weight")).fit(X, y), tmp_path / "m")
    path = tmp_path / "m/manifest.json"
    manifest = json.loads(path.read_text())
    manifest["params"]["combiner"]["settings"] = {"image_weight": 3.0}
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"manifest\.json: .*'image_weight' should be less"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("settings, problem", [
    ({"stacking": {"alpha": 0.1}},
     r"fusion\.params: late combiner 'stacking' has no setting 'alpha'; its settings: meta_C"),
    ({"mean": {"meta_C": 1.0}}, r"'mean' has no setting 'meta_C'; it has no settings"),
    ({"shrunk": {"alpha": 2.0}}, r"'shrunk': setting 'alpha' should be less than 1, got 2.0"),
    ({"loudest": {}}, r"unknown late combiner 'loudest'; choose one of mean, weighted"),
])
def test_a_bad_combiner_setting_in_a_config_names_the_valid_ones(settings, problem, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"fusion": {"params": settings}}))
    with pytest.raises(ConfigError, match=problem):
        load_config(cfg)


@pytest.mark.parametrize("family, method", [("late", "weighted"), ("late", "stacking"),
                                            ("hybrid", "shrunk")])
def test_a_method_id_and_its_resolved_combiner_give_the_same_model(family, method):
    X, y = _toy()
    image, audio, yv = make_modalities(30, 1, dim=8)
    Xv = {"image": image, "audio": audio}
    build = ((lambda **c: LateFusion({"image": "logreg", "audio": "logreg"}, cv=3, **c))
             if family == "late" else (lambda **c: HybridFusion("logreg", cv=3, **c)))
    by_id = build(method=method).fit(X, y, Xv, yv)
    resolved = build(combiner=resolve_combiner(method)).fit(X, y, Xv, yv)
    assert resolved.fusion_id == by_id.fusion_id == f"{family}:{method}"
    np.testing.assert_array_equal(resolved.predict_proba(X), by_id.predict_proba(X))
    assert resolved.member_weights() == by_id.member_weights()


def test_a_prototype_is_never_fitted_and_clones_keep_its_settings():
    X, y = _toy()
    prototype = make_combiner("stacking", meta_C=0.5)
    model = LateFusion(combiner=prototype, cv=3).fit(X, y)
    assert model.combiner_ is not prototype and not hasattr(prototype, "meta")
    assert model.combiner_.meta.C == 0.5
    assert clone(model).set_params(combiner__meta_C=2.0).fresh_combiner().meta_C == 2.0
    with pytest.raises(ValueError, match="give one of them"):
        LateFusion(method="mean", combiner=prototype).fit(X, y)


def test_the_new_api_fits_what_the_old_keywords_fitted():
    """The figures in expected.json were fitted before combiners declared their settings,
    with LateFusion(..., "stacking", meta_C=0.5) and HybridFusion(..., weight_step=0.25)."""
    expected = json.loads((OLD / "expected.json").read_text())["expected"]
    X, y = _toy()
    image, audio, yv = make_modalities(n=30, seed=1, dim=8)
    test_image, test_audio, _ = make_modalities(n=6, seed=2, dim=8)
    Xt = {"image": test_image, "audio": test_audio}
    late = LateFusion({"image": "logreg", "audio": "logreg"},
                      combiner=make_combiner("stacking", meta_C=0.5), cv=3)
    hybrid = HybridFusion("logreg", combiner=make_combiner("weighted", weight_step=0.25), cv=3)
    for name, model in (("late_stacking", late), ("hybrid_weighted", hybrid)):
        model.fit(X, y, {"image": image, "audio": audio}, yv)
        np.testing.assert_allclose(model.predict_proba(Xt), expected[name]["proba"], rtol=1e-9)
        assert model.member_weights() == expected[name]["weights"]


@pytest.mark.parametrize("name, settings", [("late_stacking", {"meta_C": 0.5}),
                                            ("hybrid_weighted", {"weight_step": 0.25})])
def test_models_saved_before_combiners_declared_settings_still_load(name, settings):
    expected = json.loads((OLD / "expected.json").read_text())["expected"][name]
    loaded = load_model(OLD / name)
    assert loaded.combiner_.settings() == settings
    assert loaded.combiner.settings() == settings
    test_image, test_audio, _ = make_modalities(n=6, seed=2, dim=8)
    np.testing.assert_allclose(loaded.predict_proba({"image": test_image, "audio": test_audio}),
                               expected["proba"], rtol=1e-9)
    assert loaded.member_weights() == expected["weights"]


def test_an_unregistered_combiner_fits_but_is_not_saved(tmp_path):
    class Loudest(Combiner):
        pass

    X, y = _toy()
    model = LateFusion(combiner=Loudest()).fit(X, y)
    assert model.fusion_id == "late:Loudest"
    with pytest.raises(ValueError, match="'Loudest' is not registered: register it"):
        save_model(model, tmp_path / "m")


def test_fusion_ids_follow_the_combiners_without_rebuilding_on_each_lookup(fixed_weight):
    first = FUSION.entry("late:mean")
    assert FUSION.entry("late:mean") is first  # same table: nothing changed in between
    assert "late:fixed_weight" in FUSION and "hybrid:fixed_weight" in FUSION.list()
    COMBINERS.unregister("fixed_weight")
    assert "late:fixed_weight" not in FUSION
    COMBINERS.register("fixed_weight", fixed_weight, description="back for the fixture")
    assert FUSION.describe()["late:fixed_weight"].endswith(
        "back for the fixture (fusion.params: image_weight)")
    assert FUSION.describe()["late:mean"].endswith("probabilities")  # mean has no settings
    with pytest.raises(TypeError, match="remove one from COMBINERS"):
        FUSION.unregister("late:mean")
