"""Every config value is bounded and named when the config is read, before any work: seeds,
threads, bootstrap resamples, model hyper-parameters, the class list; and data that cannot
train a classifier (one class, a class with one video) stops before extraction."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.config import ConfigError, load_config
from scenefusion.cpu import limit_threads, usable_cores
from scenefusion.data.synthetic import make_pairs_folder

runner = CliRunner()


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("seed: -1\n", r"c.yaml: seed: Input should be greater than or equal to 0"),
    (f"seed: {2**80}\n", r"c.yaml: seed: Input should be less than or equal to 4294967295"),
    ("split: {seed: -2}\n", r"c.yaml: split.seed: Input should be greater than or equal to 0"),
    ("evaluation: {n_bootstrap: 1.0e+12}\n",
     r"c.yaml: evaluation.n_bootstrap: Input should be less than or equal to 100000"),
    ("features: {batch_size: 100000000}\n", r"c.yaml: features.batch_size: .* 4096"),
    ("models: {params: {svm: {C: abc}}}\n",
     r"c.yaml: models.params: svm: The 'C' parameter of SVC must be a float .* Got 'abc'"),
    ("models: {params: {lstm: {hidden_size: -5}}}\n",
     r"c.yaml: models.params: lstm: The 'hidden_size' parameter of LSTMModel .* Got -5"),
    ("models: {params: {mlp: {dropout: 1.5}}}\n", r"models.params: mlp: The 'dropout' parameter"),
    ("models: {params: {rf: {n_estimators: 0}}}\n", r"models.params: rf: The 'n_estimators'"),
    ("data: {classes: []}\n", r"c.yaml: data.classes: the class list is empty"),
])
def test_a_bad_value_names_the_file_and_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(config_file(tmp_path, text))


def test_every_model_default_passes_its_own_constraints():
    from scenefusion.models import MODELS, make_model
    from scenefusion.models.base import check_hyper_parameters

    for model_id in MODELS.list():
        check_hyper_parameters(make_model(model_id))


def test_threads_above_the_usable_cores_are_capped_with_a_note(tmp_path, caplog):
    cores = usable_cores()
    with caplog.at_level(logging.WARNING):
        cfg = load_config(config_file(tmp_path, "threads: 100000\nfeatures: {threads: 5000}\n"))
    assert cfg.threads == cores and cfg.features.threads == cores
    assert f"threads 100000 is more than the {cores} core(s)" in caplog.text
    with limit_threads(100000) as n:  # `extract --threads` goes through the same cap
        assert n == cores


def test_a_bad_value_stops_run_before_any_work(tmp_path):
    path = config_file(tmp_path, yaml.safe_dump({
        "data": {"path": str(tmp_path / "nowhere")}, "evaluation": {"n_bootstrap": 10**12},
        "features": {"cache_dir": str(tmp_path / "cache")},
        "output": {"runs_dir": str(tmp_path / "runs")}}))
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 1 and "evaluation.n_bootstrap" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()


def _run_on(tmp_path: Path, data: Path):
    path = config_file(tmp_path, yaml.safe_dump({
        "data": {"path": str(data)}, "features": {"cache_dir": str(tmp_path / "cache")},
        "output": {"runs_dir": str(tmp_path / "runs"), "name": "r"},
        "models": {"image": ["logreg"], "audio": ["logreg"]},
        "fusion": {"early": ["logreg"], "late": ["mean"], "hybrid": []}}))
    return runner.invoke(app, ["run", str(path)])


def test_one_class_is_refused_before_extraction(tmp_path):
    data = make_pairs_folder(tmp_path / "pairs", classes=("BEACH",), groups_per_class=3,
                             frames_per_group=2)
    result = _run_on(tmp_path, data)
    assert result.exit_code == 1, result.output
    assert "only one class ('BEACH')" in result.output and "at least 2 classes" in result.output
    assert not any((tmp_path / "cache").rglob("*.npz"))  # nothing was extracted


def test_a_class_with_one_source_video_is_refused_before_extraction(tmp_path):
    data = make_pairs_folder(tmp_path / "pairs", classes=("BEACH", "CITY"), groups_per_class=1,
                             frames_per_group=3)
    result = _run_on(tmp_path, data)
    assert result.exit_code == 1, result.output
    assert "source group" in result.output and "needs at least 2" in result.output
    assert not any((tmp_path / "cache").rglob("*.npz"))
