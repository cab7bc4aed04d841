"""Fail early and name the file: output locations, data that cannot train, broken run files and
bundles, user text shown as written; one sentence, never a traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.data.synthetic import make_pairs_folder
from scenefusion.features.backbones import IMAGE_BACKBONES, WeightsLoadError, load_weights
from scenefusion.files import FileProblem, read_json_object

runner = CliRunner()

#: Class names that are rich markup, matplotlib mathtext (invalid), and a lone dollar sign.
ODD_CLASSES = ("[red]", "$\\x$", "a$b")
TINY_GRID = {"models": {"image": ["logreg"], "audio": ["logreg"]},
             "fusion": {"early": ["logreg"], "late": ["mean"], "hybrid": []},
             "evaluation": {"n_bootstrap": 50}}


def config(tmp: Path, data_path: Path, **sections) -> Path:
    cfg = {"data": {"path": str(data_path)}, **TINY_GRID,
           "features": {"cache_dir": str(tmp / "cache")},
           "output": {"runs_dir": str(tmp / "runs"), "name": "r"}}
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    path = tmp / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory):
    """A finished run on classes named like markup and math."""
    tmp = tmp_path_factory.mktemp("odd")
    data = make_pairs_folder(tmp / "pairs", classes=ODD_CLASSES, groups_per_class=3,
                             frames_per_group=3)
    result = runner.invoke(app, ["run", str(config(tmp, data))])
    assert result.exit_code == 0, result.output
    return tmp / "runs" / "r", data


def test_odd_class_names_are_shown_as_written(odd_run):
    run_dir, data = odd_run
    assert not (run_dir / "INCOMPLETE").exists()
    assert len(list((run_dir / "plots").glob("*.png"))) > 1
    assert json.loads((run_dir / "best/bundle.json").read_text())["classes"] == sorted(
        ODD_CLASSES)
    shown = runner.invoke(app, ["data", "inspect", str(data)])
    assert shown.exit_code == 0
    for name in ODD_CLASSES:
        assert name in shown.output


def test_runs_folder_that_is_a_file_fails_before_any_work(tmp_path, odd_run):
    _, data = odd_run
    (tmp_path / "runs").write_text("not a folder")
    result = runner.invoke(app, ["run", str(config(tmp_path, data))])
    assert result.exit_code == 1
    assert "runs folder is a file" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_cache_that_is_a_file_fails_before_any_work(tmp_path, odd_run):
    _, data = odd_run
    (tmp_path / "cache").write_text("not a folder")
    result = runner.invoke(app, ["run", str(config(tmp_path, data))])
    assert result.exit_code == 1 and "feature cache is a file" in result.output
    assert not (tmp_path / "runs").exists()
    result = runner.invoke(app, ["extract", str(data), "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 1 and "feature cache is a file" in result.output


def test_a_configured_class_without_items_stops_before_training(tmp_path, odd_run):
    _, data = odd_run
    cfg = config(tmp_path, data, data={"classes": ["[red]", "a$b", "NOPE"]})
    result = runner.invoke(app, ["run", str(cfg)])
    assert result.exit_code == 1
    assert "'NOPE'" in result.output and "no usable items" in result.output
    assert not (tmp_path / "runs" / "r").exists()  # nothing was started


def test_data_without_usable_items_exits_2_and_starts_no_run(tmp_path):
    empty = tmp_path / "empty"
    (empty / "BEACH").mkdir(parents=True)
    result = runner.invoke(app, ["run", str(config(tmp_path, empty))])
    assert result.exit_code == 2 and "no usable items" in result.output
    assert not (tmp_path / "runs" / "r").exists()
    result = runner.invoke(app, ["extract", str(empty), "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 2 and "no usable items" in result.output


def test_a_run_that_stops_is_marked_incomplete(tmp_path, odd_run, monkeypatch):
    _, data = odd_run

    def broken_reports(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr("scenefusion.experiment.write_reports", broken_reports)
    result = runner.invoke(app, ["run", str(config(tmp_path, data))])
    assert result.exit_code != 0
    marker = tmp_path / "runs" / "r" / "INCOMPLETE"
    assert "disk full (simulated)" in marker.read_text()
    result = runner.invoke(app, ["evaluate", str(tmp_path / "runs" / "r")])
    assert result.exit_code == 1 and "incomplete run folder" in result.output


@pytest.mark.parametrize("text, problem", [
    ("{bad", "not valid JSON"), ("[1, 2]", "expected a JSON object"), ("{}", "missing key"),
])
def test_broken_metrics_json_is_named(tmp_path, odd_run, text, problem):
    run_dir, _ = odd_run
    copy = shutil.copytree(run_dir, tmp_path / "copy")
    (copy / "metrics.json").write_text(text)
    result = runner.invoke(app, ["evaluate", str(copy)])
    assert result.exit_code == 1
    assert "metrics.json" in result.output and problem in result.output


@pytest.mark.parametrize("edit, problem", [
    (lambda info: "{bad", "not valid JSON"),
    (lambda info: {**info, "classes": info["classes"][:-1]}, "fingerprint"),
    (lambda info: {**info, "classes": info["classes"][::-1]}, "fingerprint"),
    (lambda info: {k: v for k, v in info.items() if k != "classes_sha256"}
     | {"classes": info["classes"][:-1]}, "predicts 3 classes"),  # a bundle from before 0.3
    (lambda info: {**info, "classes": [info["classes"][0]] * 3}, "class name twice"),
    (lambda info: {**info, "kind": "magic"}, "unknown kind"),
    (lambda info: {**info, "audio_features": "nope"}, "unknown audio feature"),
    (lambda info: {**info, "image_backbone": "vgg99"}, "unknown image backbone"),
    (lambda info: {k: v for k, v in info.items() if k != "classes"}, "missing key"),
])
def test_a_damaged_bundle_json_is_refused_by_name(tmp_path, odd_run, edit, problem):
    run_dir, data = odd_run
    copy = shutil.copytree(run_dir / "best", tmp_path / "best")
    info = json.loads((copy / "bundle.json").read_text())
    edited = edit(info)
    (copy / "bundle.json").write_text(edited if isinstance(edited, str) else json.dumps(edited))
    image = next(data.rglob("*.png"))
    result = runner.invoke(app, ["predict", "--model", str(copy), "--image", str(image),
                                 "--audio", str(image.with_suffix(".wav"))])
    assert result.exit_code == 1, result.output
    assert "bundle.json" in result.output and problem in result.output
    assert "Traceback" not in result.output


def test_predict_checks_out_before_predicting(tmp_path, odd_run):
    run_dir, data = odd_run
    (tmp_path / "taken").write_text("a file where a folder should be")
    result = runner.invoke(app, ["predict", "--model", str(run_dir / "best"), "--pairs",
                                 str(data), "--out", str(tmp_path / "taken" / "p.csv")])
    assert result.exit_code == 1 and "is a file, not a folder" in result.output
    out = tmp_path / "new" / "deeper" / "p.csv"  # a missing folder is created
    result = runner.invoke(app, ["predict", "--model", str(run_dir / "best"), "--pairs",
                                 str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()


@pytest.mark.parametrize("text, problem", [
    ("", "not a readable CSV"), ("image,audio\n", "no rows"),
    ('image,audio\n"a.png,b.wav\n', "not a readable CSV"),
])
def test_an_empty_or_broken_pairs_csv_is_named(tmp_path, odd_run, text, problem):
    run_dir, _ = odd_run
    csv = tmp_path / "pairs.csv"
    csv.write_text(text)
    result = runner.invoke(app, ["predict", "--model", str(run_dir / "best"), "--pairs",
                                 str(csv), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 1
    assert "pairs.csv" in result.output and problem in result.output


def test_an_unknown_layout_is_a_message():
    result = runner.invoke(app, ["data", "inspect", ".", "--layout", "xml"])
    assert result.exit_code == 1
    assert "unknown layout 'xml'" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("content, problem", [
    (b"", "empty or cut short"), (bytes(range(256)) * 4, "not a PyTorch weight file"),
])
def test_garbage_weights_are_one_sentence(tmp_path, content, problem):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsLoadError, match=problem) as err:
        load_weights(IMAGE_BACKBONES.get("effnet_lite0"), path)
    assert str(path) in str(err.value) and "weights_only" not in str(err.value)


def test_read_json_object_names_the_file(tmp_path):
    path = tmp_path / "x.json"
    with pytest.raises(FileProblem, match="x.json: file not found"):
        read_json_object(path)
    path.write_text('{"a": 1}')
    assert read_json_object(path, required=("a",)) == {"a": 1}
    with pytest.raises(FileProblem, match=r"x.json: missing key\(s\) b"):
        read_json_object(path, required=("a", "b"))


def test_data_demo_refuses_a_users_folder_and_never_overwrites(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    result = runner.invoke(app, ["data", "demo", str(mine)])
    assert result.exit_code == 1 and "not empty" in result.output
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    result = runner.invoke(app, ["data", "demo", str(mine), "--force"])
    assert result.exit_code == 0, result.output
    assert (mine / "notes.txt").read_text() == "my notes"
    assert (mine / "SYNTHETIC.txt").is_file()


def test_a_model_trained_on_generated_data_says_so_when_it_predicts(odd_run):
    run_dir, data = odd_run
    info = json.loads((run_dir / "best/bundle.json").read_text())
    assert info["trained_on"]["synthetic"] is True
    image = next(data.rglob("*.png"))
    result = runner.invoke(app, ["predict", "--model", str(run_dir / "best"), "--image",
                                 str(image), "--audio", str(image.with_suffix(".wav"))])
    assert result.exit_code == 0, result.output
    assert "trained on SYNTHETIC demo data" in result.output


@pytest.mark.parametrize("options, problem", [
    (["--audio", "mfcc@99s"], "context must be 1 to"),
    (["--runtime", "bogus"], "unknown runtime 'bogus'"),
    (["--runtime", "torch", "--precision", "int8"], "precision int8 runs on ONNX Runtime"),
])
def test_a_bad_extract_option_is_one_sentence(tmp_path, odd_run, options, problem):
    _, data = odd_run
    result = runner.invoke(app, ["extract", str(data), "--cache", str(tmp_path / "c"), *options])
    assert result.exit_code == 1, result.output
    assert problem in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # the CLI's handler, not a library error
