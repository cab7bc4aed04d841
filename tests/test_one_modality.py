"""A data set of sounds only (or photos only) is a data set: it runs the unimodal half of the
grid, says why there are no fusion rows, saves best/ and predict and serve answer with it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from installed import RAW_AUDIO
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.data import load_dataset
from scenefusion.data.synthetic import DEMO_RECIPE, make_pairs_folder

runner = CliRunner()
CLASSES = ("BEACH", "CITY", "FOREST")


def one_modality_folder(root: Path, keep: str) -> Path:
    """The synthetic pairs with one side deleted: ROOT/<class>/*.wav (or *.png) only."""
    make_pairs_folder(root, classes=CLASSES, groups_per_class=5, frames_per_group=3,
                      sounds=DEMO_RECIPE["sounds"][:3])
    drop = "*.png" if keep == "audio" else "*.wav"
    for path in root.glob(f"*/{drop}"):
        path.unlink()
    return root


def run_on(data: Path, tmp_path: Path) -> Path:
    cfg = tmp_path / "experiment.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"path": str(data)},
        "models": {"image": ["logreg"], "audio": ["logreg", "svm"]},
        "evaluation": {"n_bootstrap": 0},
        "features": {"cache_dir": str(tmp_path / "cache")},
        "output": {"runs_dir": str(tmp_path / "runs"), "name": "r"},
    }))
    result = runner.invoke(app, ["run", str(cfg)])
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / "r"


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("audio-only")
    data = one_modality_folder(tmp / "sounds", "audio")
    return run_on(data, tmp), data


def test_a_folder_of_sounds_is_an_audio_only_data_set(audio_run):
    _, data = audio_run
    dataset = load_dataset(data)
    assert dataset.modalities == ("audio",)
    assert len(dataset) == 45 and not dataset.skipped
    shown = runner.invoke(app, ["data", "inspect", str(data)])
    assert shown.exit_code == 0, shown.output
    assert "audio only: no fusion rows" in " ".join(shown.output.split())


def test_an_audio_only_run_has_audio_rows_a_note_and_one_bundle(audio_run):
    run_dir, _ = audio_run
    rows = json.loads((run_dir / "metrics.json").read_text())["results"]
    assert sorted(r["name"] for r in rows) == [f"audio:{RAW_AUDIO}+logreg",
                                               f"audio:{RAW_AUDIO}+svm"]
    assert "one-modality data set (audio only)" in (run_dir / "report.md").read_text()
    assert (run_dir / "best/bundle.json").is_file()
    assert not (run_dir / "best-image").exists() and not (run_dir / "best-audio").exists()
    assert json.loads((run_dir / "best/bundle.json").read_text())["kind"] == "audio"


def test_the_report_and_bundle_state_the_audio_features_licence(audio_run):
    from scenefusion.features.audio import audio_licence

    run_dir, _ = audio_run
    bundle = json.loads((run_dir / "best/bundle.json").read_text())
    licence = audio_licence(bundle["audio_features"])
    assert bundle["audio_features"].split("@")[0] == RAW_AUDIO
    assert bundle["audio_licence"] == licence
    report = (run_dir / "report.md").read_text()
    assert (licence in report) if licence else "licence" not in report.lower()


def test_predict_answers_a_sound_with_an_audio_only_bundle(audio_run, tmp_path):
    run_dir, data = audio_run
    sound = sorted((data / "CITY").glob("*.wav"))[0]
    result = runner.invoke(app, ["predict", "--model", str(run_dir / "best"), "--audio",
                                 str(sound)])
    assert result.exit_code == 0, result.output
    assert result.stdout.split()[0] in CLASSES
    folder = tmp_path / "new"
    folder.mkdir()
    (folder / "a.wav").write_bytes(sound.read_bytes())
    out = tmp_path / "p.csv"
    result = runner.invoke(app, ["predict", "--model", str(run_dir), "--pairs", str(folder),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame["modalities"]) == ["audio"] and frame["predicted"][0] in CLASSES
    image = make_pairs_folder(tmp_path / "img", classes=("X",), groups_per_class=1,
                              frames_per_group=1)
    photo = next(image.glob("X/*.png"))
    refused = runner.invoke(app, ["predict", "--model", str(run_dir / "best"), "--image",
                                  str(photo)])
    assert refused.exit_code != 0
    assert "needs audio" in " ".join(refused.output.split())


def test_serve_answers_a_sound_with_an_audio_only_bundle(audio_run):
    pytest.importorskip("fastapi")
    pytest.importorskip("python_multipart")
    from fastapi.testclient import TestClient

    from scenefusion.serve import create_app

    run_dir, data = audio_run
    sound = sorted((data / "FOREST").glob("*.wav"))[0]
    client = TestClient(create_app(run_dir / "best"))
    response = client.post("/predict", files={"audio": (sound.name, sound.read_bytes(),
                                                        "audio/wav")})
    assert response.status_code == 200, response.text
    assert response.json()["modalities"] == ["audio"]


def test_a_manifest_with_only_an_image_column_runs_the_image_half(tmp_path):
    data = one_modality_folder(tmp_path / "photos", "image")
    rows = [{"image": str(p.relative_to(data)), "label": p.parent.name,
             "group": p.stem.rsplit("_", 1)[0]} for p in sorted(data.glob("*/*.png"))]
    pd.DataFrame(rows).to_csv(data / "manifest.csv", index=False)
    run_dir = run_on(data / "manifest.csv", tmp_path)
    results = json.loads((run_dir / "metrics.json").read_text())["results"]
    assert {r["extra"]["family"] for r in results} == {"image"}
    assert "one-modality data set (image only)" in (run_dir / "report.md").read_text()
    assert json.loads((run_dir / "best/bundle.json").read_text())["kind"] == "image"
