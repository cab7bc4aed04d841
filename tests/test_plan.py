"""The resolved plan: every id becomes its object once, after loading; an audio feature defined
in this file only is one registration away from a whole `scenefusion run`; resolving changes no
cache key; and no stage outside loading and display parses ids again."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.config import ExperimentConfig
from scenefusion.data import load_dataset
from scenefusion.data.synthetic import make_pairs_folder
from scenefusion.features.audio import AUDIO_FEATURES, AudioFeature, audio_feature
from scenefusion.models.combiners import COMBINERS
from scenefusion.plan import resolve_plan

SRC = Path(__file__).resolve().parents[1] / "src" / "scenefusion"
runner = CliRunner()
TINY_GRID = {"models": {"image": ["logreg"], "audio": ["logreg"]},
             "fusion": {"early": ["logreg"], "early_audio": ["pooled"], "late": ["mean"],
                        "hybrid": []},
             "evaluation": {"n_bootstrap": 0, "explain_errors": 0}}


@dataclass(frozen=True)
class LoudnessParams:
    """Four windows of RMS loudness and zero-crossing rate over 1 s (a throw-away feature)."""

    clip_seconds: int = 1
    windows: int = 4

    @property
    def frames(self) -> int:
        return self.windows

    @property
    def channels(self) -> int:
        return 2


def loudness(path: Path, params: LoudnessParams) -> np.ndarray:
    samples, _ = sf.read(path, dtype="float32", always_2d=True)
    windows = np.array_split(samples.mean(axis=1), params.windows)
    return np.array([[np.sqrt(np.mean(w ** 2)), np.mean(np.abs(np.diff(np.sign(w)))) / 2]
                     for w in windows], np.float32)


@pytest.fixture()
def loudness_feature():
    """Registers the feature for one test and removes it afterwards."""
    AUDIO_FEATURES.register("test_loudness", AudioFeature(LoudnessParams(), loudness),
                            description="RMS loudness and zero crossings, 4 windows")
    yield "test_loudness"
    AUDIO_FEATURES.unregister("test_loudness")


def test_a_registered_audio_feature_runs_through_scenefusion_run(loudness_feature, tmp_path):
    root = make_pairs_folder(tmp_path / "data", groups_per_class=3, frames_per_group=3,
                             image_size=32)
    cfg = {"data": {"path": str(root)}, **TINY_GRID,
           "features": {"cache_dir": str(tmp_path / "cache"), "audio": "test_loudness@2s"},
           "output": {"runs_dir": str(tmp_path / "runs"), "name": "r"}}
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["run", str(tmp_path / "experiment.yaml")])
    assert result.exit_code == 0, result.output
    audio = json.loads((tmp_path / "runs/r/best-audio/bundle.json").read_text())
    assert audio["audio_features"] == "test_loudness@2s"
    key = audio_feature("test_loudness@2s").key()  # the seconds are part of the key
    assert (tmp_path / "cache" / f"test_loudness@2s-{key}").is_dir()
    assert key != audio_feature("test_loudness").key()


def test_the_plan_resolves_auto_once_and_the_run_config_names_the_choice(tmp_path):
    dataset = load_dataset(make_pairs_folder(tmp_path / "d", groups_per_class=2,
                                             frames_per_group=2, image_size=16))
    plan = resolve_plan(ExperimentConfig.model_validate(TINY_GRID), dataset)
    chosen = plan.features.audio
    assert chosen is not None and chosen.id == plan.config.features.audio != "auto"
    assert any("features.audio auto ->" in n for n in plan.notes)
    assert plan.grid.audio_id == chosen.id and plan.grid.backbones == plan.features.backbones
    assert [c.id for c in plan.grid.late] == ["mean"]
    assert type(plan.grid.late[0].prototype) is COMBINERS.get("mean")
    assert [m.id for m in plan.grid.image_models] == ["logreg"]
    assert plan.video.audio_seconds == 4  # auto's longest context, cut before it chose


def test_a_photo_only_plan_names_no_audio_feature(tmp_path):
    root = make_pairs_folder(tmp_path / "d", groups_per_class=2, frames_per_group=2,
                             image_size=16)
    for wav in root.glob("*/*.wav"):
        wav.unlink()
    plan = resolve_plan(ExperimentConfig(), load_dataset(root))
    assert plan.features.audio is None and plan.grid.audio_id is None and not plan.notes


def test_resolving_an_id_leaves_the_cache_key_as_it_was():
    """The resolved feature carries its id for display; the key hashes only what computes."""
    for feature_id in ("mfcc", "aisfx", "logmel_stats"):
        assert audio_feature(feature_id).key() == AUDIO_FEATURES.get(feature_id).key()
    assert audio_feature("mfcc@1s").key() == AUDIO_FEATURES.get("mfcc").key()


#: keys of signal-processing features as computed before the plan existed (the ids were then
#: re-resolved at every stage): feature tables cached by earlier versions stay valid
KEYS_BEFORE = {"mfcc": "7a6bde76db08", "mfcc@3s": "8d82b9198683", "logmel": "607793f04c3b",
               "logmel_stats": "387bb4f21566", "logmel_stats_norm": "8a38b9cbf782"}


@pytest.mark.parametrize("feature_id", sorted(KEYS_BEFORE))
def test_cache_keys_are_those_of_earlier_versions(feature_id):
    assert audio_feature(feature_id).key() == KEYS_BEFORE[feature_id]


def _calls(pattern: str) -> dict[str, int]:
    found = {}
    for path in SRC.rglob("*.py"):
        n = len(re.findall(pattern, path.read_text()))
        if n:
            found[str(path.relative_to(SRC))] = n
    return found


def test_audio_ids_are_resolved_in_at_most_three_places_outside_the_registry():
    callers = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "audio_feature"):
                callers.add(str(path.relative_to(SRC)))
    callers.discard("features/audio/registry.py")
    assert len(callers) <= 3, callers


def test_no_stage_builds_or_splits_fusion_ids():
    """Fusion ids are written for display (the row name, a model's ``fusion_id``) and read
    when loading (``make_fusion``, the FUSION registry); nothing else builds or parses them."""
    built = _calls(r"f\"(late|hybrid):")
    assert set(built) <= {"grid/rows.py", "models/fusion_registry.py"}, built
    split = _calls(r"split\(\":\"\)")
    assert set(split) <= {"models/fusion_registry.py"}, split
