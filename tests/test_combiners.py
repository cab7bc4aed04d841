"""A late combiner is one registered class: registering it is the only edit that puts it in
configs, `scenefusion list`, the comparison grid, saved bundles and predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from arrays import make_modalities
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.config import ConfigError, load_config
from scenefusion.data.synthetic import DEMO_RECIPE, make_pairs_folder
from scenefusion.models import COMBINERS, FUSION, LateFusion, load_model, make_fusion, save_model
from scenefusion.models.combiners import Combiner, register_combiner

runner = CliRunner()


@pytest.fixture()
def best_member():
    """A combiner of the test's own: it trusts only the member that was most accurate on the
    rows it learns from (and says so through its shares)."""

    @register_combiner("best_member", description="the single most accurate member")
    class BestMember(Combiner):
        learns = True

        def fit(self, probas, y, classes):
            acc = {n: float(np.mean(classes[p.argmax(axis=1)] == y)) for n, p in probas.items()}
            self.chosen = max(acc, key=acc.get)
            return self

        def combine(self, probas, complete):
            return probas.get(self.chosen, np.mean(list(probas.values()), axis=0))

        def shares(self, names):
            return np.array([float(n == self.chosen) for n in names])

        def get_state(self):
            return {"chosen": self.chosen}

        def set_state(self, state, names, classes):
            if state.get("chosen") not in names:
                raise ValueError(f"state 'chosen' must name one of the members {names}")
            self.chosen = state["chosen"]

    yield BestMember
    COMBINERS.unregister("best_member")


def test_a_registered_combiner_is_a_fusion_id_and_a_config_value(best_member, tmp_path):
    assert {"late:best_member", "hybrid:best_member"} <= set(FUSION.list())
    assert isinstance(make_fusion("late:best_member"), LateFusion)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"fusion": {"late": ["mean", "best_member"]}}))
    assert load_config(cfg).fusion.late == ["mean", "best_member"]


def test_an_unknown_combiner_in_a_config_is_named_with_the_registered_ones(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"fusion": {"hybrid": ["loudest"]}}))
    with pytest.raises(ConfigError, match=r"fusion\.hybrid.*'loudest'.*mean, weighted"):
        load_config(cfg)


def test_unregistering_removes_the_fusion_ids(best_member):
    COMBINERS.unregister("best_member")
    assert "late:best_member" not in FUSION
    COMBINERS.register("best_member", best_member, description="back for the fixture")


def test_fusion_ids_are_not_registered_by_hand():
    with pytest.raises(TypeError, match="register_combiner"):
        FUSION.register("late:x", object, description="x")


def test_a_learnt_combiner_state_is_saved_and_checked(best_member, tmp_path):
    image, audio, y = make_modalities(n=90, seed=0)
    X = {"image": image, "audio": audio}
    model = make_fusion("late:best_member", models={"image": "logreg", "audio": "logreg"},
                        stack_on="oof", cv=3).fit(X, y)
    assert model.combiner_source_ == "oof"
    assert sorted(model.member_weights().values()) == [0.0, 1.0]
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    manifest = json.loads((tmp_path / "m/manifest.json").read_text())
    manifest["state"]["chosen"] = "smell"
    (tmp_path / "m/manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="manifest.json: state 'chosen' must name one of"):
        load_model(tmp_path / "m")


def test_a_combiner_registered_in_a_test_runs_in_the_grid_and_is_listed(best_member,
                                                                        tmp_path):
    pairs = make_pairs_folder(tmp_path / "pairs", classes=("BEACH", "CITY", "FOREST"),
                              groups_per_class=5, frames_per_group=3,
                              looks=DEMO_RECIPE["looks"], sounds=DEMO_RECIPE["sounds"])
    cfg = tmp_path / "experiment.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"path": str(pairs)},
        "models": {"image": ["logreg"], "audio": ["logreg"]},
        "fusion": {"early": ["logreg"], "early_audio": ["pooled"],
                   "late": ["mean", "best_member"], "hybrid": ["best_member"]},
        "evaluation": {"n_bootstrap": 0},
        "features": {"cache_dir": str(tmp_path / "cache")},
        "output": {"runs_dir": str(tmp_path / "runs"), "name": "r"},
    }))
    result = runner.invoke(app, ["run", str(cfg)])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "runs/r/metrics.json").read_text())["results"]
    mine = {r["extra"]["family"]: r for r in rows if r["extra"].get("method") == "best_member"}
    assert set(mine) == {"late", "hybrid"}
    for row in mine.values():
        assert sorted(row["extra"]["member_weights"].values())[-1] == 1.0  # one member chosen
        assert 0.0 <= row["accuracy"] <= 1.0
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0
    assert "late:best_member" in listed.output and "hybrid:best_member" in listed.output


def _member_probas(y: np.ndarray, k: int, skill: float, seed: int) -> np.ndarray:
    """Probabilities of a member that puts ``skill`` extra mass on the true class."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(k), size=len(y))
    P[np.arange(len(y)), y] += skill
    return P / P.sum(axis=1, keepdims=True)


def test_shrunk_gives_a_member_at_chance_no_weight():
    from scenefusion.models.combiners import ShrunkCombiner

    y = np.repeat(np.arange(4), 60)
    classes = np.arange(4)
    probas = {"image": _member_probas(y, 4, 1.5, 0), "audio": _member_probas(y, 4, 0.0, 1)}
    combiner = ShrunkCombiner().fit(probas, y, classes)
    assert combiner.weights == {"image": 1.0, "audio": 0.0}
    np.testing.assert_allclose(combiner.combine(probas, True), probas["image"])


def test_shrunk_mixes_two_members_that_each_know_something():
    from scenefusion.models.combiners import ShrunkCombiner

    y = np.repeat(np.arange(4), 150)
    classes = np.arange(4)
    probas = {"image": _member_probas(y, 4, 0.6, 2), "audio": _member_probas(y, 4, 0.6, 3)}
    combiner = ShrunkCombiner().fit(probas, y, classes)
    assert 0.0 < combiner.weights["image"] < 1.0
    fused = combiner.combine(probas, True).argmax(axis=1)
    best = max(np.mean(p.argmax(axis=1) == y) for p in probas.values())
    assert np.mean(fused == y) >= best
