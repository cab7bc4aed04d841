"""The comparison grid on Ray: same seeds, same metrics as the serial grid."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.data.synthetic import make_pairs_folder
from scenefusion.evaluation.compare import diff_runs

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

GRID = {"models": {"image": ["logreg"], "audio": ["lstm"], "params": {"lstm": {"max_epochs": 4}}},
        "fusion": {"early": ["logreg"], "late": ["weighted", "stacking"], "hybrid": ["stacking"]},
        "evaluation": {"n_bootstrap": 50}}


def test_ray_grid_gives_the_serial_grids_metrics(tmp_path, ray_session):
    data = make_pairs_folder(tmp_path / "pairs", groups_per_class=3, frames_per_group=3)
    cfg = {"data": {"path": str(data)}, **GRID,
           "features": {"cache_dir": str(tmp_path / "cache")},
           "output": {"runs_dir": str(tmp_path / "runs")}}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    for name, kind in (("serial", "local"), ("ray", "ray")):
        result = runner.invoke(app, ["run", str(path), "--name", name, "--runner", kind])
        assert result.exit_code == 0, result.output
    runs = tmp_path / "runs"
    rows = json.loads((runs / "ray/metrics.json").read_text())["results"]
    assert len(rows) == 1 + 1 + 2 + 2 + 1
    assert diff_runs(runs / "serial/metrics.json", runs / "ray/metrics.json") == []
