"""No user file replaced and no path leaving its folder: `data from-video` never overwrites,
a class label and a run name are one folder name, and predict's manifests stay in their
folder unless the user says otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner
from videos import write_video

from scenefusion.cli import app
from scenefusion.config import ConfigError, ExperimentConfig, load_config, with_overrides
from scenefusion.data import DataError
from scenefusion.data.synthetic import make_pairs_folder
from scenefusion.data.video import PairClash, video_to_pairs
from scenefusion.predict import read_pairs

runner = CliRunner()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "v_1s.mp4", seconds=2)


# --- from-video never replaces a file --------------------------------------------------------

def test_from_video_refuses_an_existing_file_and_writes_nothing(tmp_path, video):
    folder = tmp_path / "o" / "BEACH"
    folder.mkdir(parents=True)
    (folder / "v_1s_00001.wav").write_text("mine")
    result = runner.invoke(app, ["data", "from-video", str(video), "--label", "BEACH",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    assert "v_1s_00001.wav" in result.output and "already exists" in result.output
    assert "Traceback" not in result.output
    assert (folder / "v_1s_00001.wav").read_text() == "mine"
    assert sorted(p.name for p in folder.iterdir()) == ["v_1s_00001.wav"]  # nothing written


def test_the_library_refuses_a_clash_before_writing_any_pair(tmp_path, video):
    (tmp_path / "BEACH").mkdir()
    (tmp_path / "BEACH" / "v_1s_00000.jpg").write_text("mine")
    with pytest.raises(PairClash, match="v_1s_00000.jpg: already exists"):
        video_to_pairs(video, tmp_path, "BEACH")
    assert sorted(p.name for p in (tmp_path / "BEACH").iterdir()) == ["v_1s_00000.jpg"]


def test_two_videos_with_one_stem_are_refused_before_either_is_cut(tmp_path, video):
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = write_video(other / "v_1s.mkv", seconds=2)
    result = runner.invoke(app, ["data", "from-video", str(video), str(twin), "--label", "CITY",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "written twice" in result.output
    assert not (tmp_path / "o" / "CITY").exists()


def test_from_video_adds_beside_existing_pairs_of_other_videos(tmp_path, video):
    (tmp_path / "o" / "BEACH").mkdir(parents=True)
    (tmp_path / "o" / "BEACH" / "other_00000.wav").write_text("mine")
    result = runner.invoke(app, ["data", "from-video", str(video), "--label", "BEACH",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "o" / "BEACH").glob("v_1s_*"))) == 4
    assert (tmp_path / "o" / "BEACH" / "other_00000.wav").read_text() == "mine"


# --- a label is one folder name ---------------------------------------------------------------

@pytest.mark.parametrize("label", ["../victim/keep", "../../evil", "/x/y", "", "..", "a\\b"])
def test_a_label_that_is_not_one_folder_name_is_refused(tmp_path, video, label):
    out = tmp_path / "sub" / "out"
    result = runner.invoke(app, ["data", "from-video", str(video), "--label", label,
                                 "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "--label" in result.output and "one folder name" in result.output
    assert not any(tmp_path.rglob("*.wav")) and not any(tmp_path.rglob("*.jpg"))
    with pytest.raises(ValueError, match="one folder name"):
        video_to_pairs(video, out, label)


# --- a run name is one folder name ------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../escaped_run", "/tmp/abs_run", "", "."])
def test_a_run_name_that_is_not_one_folder_name_is_refused(tmp_path, name):
    path = tmp_path / "c.yaml"
    path.write_text(f"output:\n  name: {name!r}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: output.name: run name .* one folder name"):
        load_config(path)
    with pytest.raises(ConfigError, match="output.name"):
        with_overrides(ExperimentConfig(), **{"output.name": name})
    result = runner.invoke(app, ["run", "--name", name, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1 and "one folder name" in result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escaped_run").exists()


# --- predict's manifests stay in their folder -------------------------------------------------

@pytest.fixture()
def leaking_manifest(tmp_path):
    pairs = make_pairs_folder(tmp_path / "outside", classes=("A", "B"), groups_per_class=1,
                              frames_per_group=1)
    inner = tmp_path / "m"
    inner.mkdir()
    rows = [{"image": "", "audio": "../outside/A/a0_000.wav"},
            {"image": "", "audio": "../../../../etc/passwd"}]
    pd.DataFrame(rows).to_csv(inner / "m.csv", index=False)
    return inner / "m.csv", pairs


def test_predict_manifest_paths_may_not_leave_its_folder(leaking_manifest, tmp_path):
    csv, _ = leaking_manifest
    with pytest.raises(DataError, match=r"m.csv:2: audio path '../outside/A/a0_000.wav' leaves "
                                        r"the manifest folder.*--allow-outside-paths"):
        read_pairs(csv)
    images, audios = read_pairs(csv, allow_outside=True)
    assert images == [None, None] and audios[0] == csv.parent / "../outside/A/a0_000.wav"


def test_predict_cli_refuses_a_leaving_manifest_and_accepts_it_when_allowed(leaking_manifest,
                                                                          tmp_path):
    from scenefusion.models import make_model
    from scenefusion.predict import save_bundle

    csv, _ = leaking_manifest
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 10)
    model = make_model("logreg").fit(rng.normal(y[:, None, None], 0.3, (20, 8, 13)), y)
    save_bundle(model, {"name": "audio:mfcc+logreg", "kind": "audio", "classes": ["A", "B"],
                        "audio_features": "mfcc", "audio_source": "raw-audio"}, tmp_path / "b")
    out = tmp_path / "pred.csv"
    args = ["predict", "--model", str(tmp_path / "b"), "--pairs", str(csv), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "leaves the manifest folder" in result.output
    assert "Traceback" not in result.output and not out.exists()
    result = runner.invoke(app, [*args, "--allow-outside-paths"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out).fillna("")
    assert frame["predicted"][0] in {"A", "B"} and "passwd" in frame["error"][1]
