"""End to end: config validation, `scenefusion run`, `evaluate`, `predict`, `data download`."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import yaml
from installed import RAW_AUDIO
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.config import ConfigError, load_config
from scenefusion.data.download import DownloadError, download_reference
from scenefusion.data.synthetic import DEMO_RECIPE, make_pairs_folder, make_reference_like

runner = CliRunner()

SMALL_GRID = {
    "models": {"image": ["logreg", "mlp"], "audio": ["lstm", "logreg"],
               "params": {"lstm": {"max_epochs": 15}, "mlp": {"max_epochs": 30}}},
    "fusion": {"early": ["logreg"], "late": ["mean", "weighted", "product", "stacking"],
               "hybrid": ["stacking"]},
    "evaluation": {"n_bootstrap": 200},
}


def write_config(tmp_path: Path, data: Path, **extra) -> Path:
    cfg = {"data": {"path": str(data)}, **SMALL_GRID,
           "features": {"cache_dir": str(tmp_path / "cache")},
           "output": {"runs_dir": str(tmp_path / "runs"), "name": "r"}, **extra}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def demo_pairs(tmp_path_factory) -> Path:
    return make_pairs_folder(tmp_path_factory.mktemp("demo") / "pairs",
                             classes=("BEACH", "CITY", "FOREST", "RESTAURANT"),
                             groups_per_class=6, frames_per_group=4, looks=DEMO_RECIPE["looks"],
                             sounds=DEMO_RECIPE["sounds"])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, demo_pairs):
    tmp = tmp_path_factory.mktemp("run")
    result = runner.invoke(app, ["run", str(write_config(tmp, demo_pairs))])
    assert result.exit_code == 0, result.output
    return tmp / "runs" / "r", result.output, tmp


# --- config ------------------------------------------------------------------------------------

def test_unknown_key_is_rejected_with_its_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  imgae: [svm]\n")
    with pytest.raises(ConfigError, match=r"c.yaml: models.imgae: Extra inputs are not permitted"):
        load_config(path)


def test_unknown_model_and_backbone_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  image: [svm, xgboost]\n")
    with pytest.raises(ConfigError, match="unknown image model.*xgboost"):
        load_config(path)
    path.write_text("features:\n  image_backbones: [vgg99]\n")
    with pytest.raises(ConfigError, match="unknown image backbone .vgg99.; choose one of eff"):
        load_config(path)


def test_a_model_is_offered_only_for_the_input_it_takes(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  image: [lstm]\n")
    with pytest.raises(ConfigError, match="'lstm' does not take image input.*image models"):
        load_config(path)
    path.write_text("models:\n  params: {svm: {C: 10, nope: 1}}\n")
    with pytest.raises(ConfigError, match=r"hyper-parameter\(s\) \['nope'\] for model 'svm'"):
        load_config(path)


def test_engine_is_read_as_runtime_with_a_warning(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("features:\n  engine: torch\n")
    with pytest.warns(DeprecationWarning, match="features.runtime"):
        assert load_config(path).features.runtime == "torch"


def test_empty_model_list_is_rejected(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  audio: []\n")
    with pytest.raises(ConfigError, match="models.audio: List should have at least 1 item"):
        load_config(path)


def test_relative_data_path_is_resolved_against_the_config(tmp_path):
    path = tmp_path / "sub" / "c.yaml"
    path.parent.mkdir()
    path.write_text("data:\n  path: ../data\n")
    assert load_config(path).data.path == (tmp_path / "data").resolve()


def test_default_config_is_the_full_grid():
    cfg = load_config(None)
    assert cfg.data.path is None and cfg.split.strategy == "group"
    assert {"svm", "logreg", "rf", "knn", "hgb", "mlp"} <= set(cfg.models.image)
    assert "lstm" in cfg.models.audio
    assert cfg.fusion.late == ["product", "stacking", "shrunk"]


# --- run ---------------------------------------------------------------------------------------

def test_run_writes_every_artefact_and_prints_the_table(finished_run):
    run_dir, output, _ = finished_run
    for name in ("config.yaml", "metrics.json", "report.md", "report.html", "split.json",
                 "timings.json", "plots/comparison.png", "best/bundle.json"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    names = [r["name"] for r in metrics["results"]]
    kinds = {r["extra"]["family"] for r in metrics["results"]}  # structured, never parsed
    assert kinds == {"image", "audio", "early", "late", "hybrid"}
    late = next(r["extra"] for r in metrics["results"] if r["extra"]["family"] == "late")
    # raw 1 s clips: auto picks aiSFX where its weights are installed (as CI does), else MFCCs
    assert late["backbone"] == "effnet_lite0" and late["audio_feature"] == RAW_AUDIO
    assert [m.split(":")[0] for m in late["members"]] == ["image", "audio"]
    assert set(late["member_weights"]) == {"image", "audio"}  # each modality's pull, reported
    assert "member weights of late:" in (run_dir / "report.md").read_text()
    assert len(names) == 2 + 2 + 2 + 4 + 1  # early: pooled MFCC and LSTM embedding
    assert len(list((run_dir / "plots").glob("confusion_*.png"))) == len(names)
    assert len(list((run_dir / "reports").glob("*.txt"))) == len(names)
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64") >= len(names) + 1
    for column in ("accuracy", "95% CI", "macro P", "macro R", "macro F1", "log-loss", "val acc"):
        assert column in output
    # too few held-out groups per class here: grouped CV picked the models, and its figure shows
    assert "CV acc" in output and "| CV acc. (ranks) |" in (run_dir / "report.md").read_text()
    assert "late:stacking:effnet_lite0" in output


def test_run_split_is_leak_free_and_recorded(finished_run):
    run_dir, _, _ = finished_run
    split = json.loads((run_dir / "split.json").read_text())
    assert split["strategy"] == "group"
    assert split["sizes"]["test"] > 0 and split["test_groups"]
    assert len(split["dataset_fingerprint"]) == 16  # names exactly which items were used


def test_bundles_say_what_they_were_trained_on_and_carry_their_calibration(finished_run):
    run_dir, output, _ = finished_run
    split = json.loads((run_dir / "split.json").read_text())
    rows = {r["name"]: r for r in json.loads((run_dir / "metrics.json").read_text())["results"]}
    for folder in ("best", "best-image", "best-audio"):
        info = json.loads((run_dir / folder / "bundle.json").read_text())
        row = rows[info["name"]]
        assert info["trained_on"]["dataset_fingerprint"] == split["dataset_fingerprint"]
        assert info["trained_on"]["split"] == "group"
        assert info["test_accuracy"] == pytest.approx(row["accuracy"], abs=1e-4)
        assert info["test_accuracy_ci"] == pytest.approx([row["ci_low"], row["ci_high"]],
                                                         abs=1e-4)
        calibration = info["calibration"]
        assert calibration == row["extra"]["calibration"]
        # 6 videos per class leave one per class in validation: too thin to fit a
        # temperature on, so it comes from out-of-fold training predictions, and is kept
        # only where it lowered ECE on held-out groups
        assert calibration["fitted_on"] == "out-of-fold training predictions"
        report = (run_dir / "report.md").read_text()
        if calibration["applied"]:
            assert calibration["held_out_ece_after"] < calibration["held_out_ece_before"]
            assert f"{folder}/ calibrated on the out-of-fold training predictions" in report
        else:
            assert calibration["temperature"] == 1.0
            assert f"{folder}/ not calibrated" in report
    assert all(0 <= r["extra"]["test_ece"] <= 1 for r in rows.values())


def test_combiners_learn_out_of_fold_when_validation_holds_one_video_per_class(finished_run,
                                                                             demo_pairs):
    run_dir, _, tmp = finished_run
    rows = json.loads((run_dir / "metrics.json").read_text())["results"]
    learned = {r["extra"]["combiner_source"] for r in rows if r["extra"].get("combiner_source")}
    assert learned == {"oof"}  # 6 videos per class: 1 in validation, too few to trust
    assert "combiners learned out-of-fold over training groups" in (
        run_dir / "report.md").read_text()
    (tmp / "forced").mkdir(exist_ok=True)
    cfg = write_config(tmp / "forced", demo_pairs,
                       fusion={**SMALL_GRID["fusion"], "combiner_on": "val"})
    result = runner.invoke(app, ["run", str(cfg), "--name", "forced-val", "--runs-dir",
                                 str(tmp / "runs"), "--cache", str(tmp / "cache")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp / "runs/forced-val/metrics.json").read_text())["results"]
    assert {r["extra"].get("combiner_source") for r in rows
            if r["extra"]["method"] in ("weighted", "stacking")} == {"val"}


def test_fusion_beats_each_modality_where_each_alone_is_blind(finished_run):
    """Demo data: two classes look alike, two others sound alike; only fusion sees all four."""
    run_dir, _, _ = finished_run
    acc = {r["name"]: r["accuracy"] for r in json.loads(
        (run_dir / "metrics.json").read_text())["results"]}
    best_image = max(v for k, v in acc.items() if k.startswith("image:"))
    best_audio = max(v for k, v in acc.items() if k.startswith("audio:"))
    best_late = max(v for k, v in acc.items() if k.startswith("late:"))
    assert best_late > max(best_image, best_audio)


def test_rerun_reuses_cached_features(finished_run, demo_pairs):
    _, _, tmp = finished_run
    from scenefusion.config import load_config
    from scenefusion.experiment import run_experiment

    cfg = load_config(tmp / "experiment.yaml")
    cfg.models.image, cfg.models.audio = ["logreg"], ["logreg"]
    cfg.fusion.early, cfg.fusion.late, cfg.fusion.hybrid = [], ["mean"], []
    out = run_experiment(cfg)
    assert out.extraction["image:effnet_lite0"]["computed"] == 0
    assert out.extraction["image:effnet_lite0"]["reused"] == 96
    assert out.extraction[f"audio:{RAW_AUDIO}"]["computed"] == 0


def test_progress_reports_extraction_models_and_epochs(finished_run):
    _, _, tmp = finished_run
    from scenefusion.config import with_overrides
    from scenefusion.experiment import run_experiment

    cfg = with_overrides(load_config(tmp / "experiment.yaml"), **{
        "models.image": ["logreg"], "models.audio": ["lstm"], "fusion.early": [],
        "fusion.late": ["mean"], "fusion.hybrid": [], "output.name": "progress",
        "runner.workers": 1})  # fits in this process: epochs can be reported
    stages = []
    run_experiment(cfg, progress=lambda stage, done, total: stages.append((stage, done, total)))
    names = {s for s, _, _ in stages}
    assert {f"audio: {RAW_AUDIO}", "image: effnet_lite0"} <= names
    assert any(s.startswith(f"training: audio:{RAW_AUDIO}+lstm (epoch ") for s in names)
    assert stages[-1][1:] == (3, 3)  # lstm, logreg, late:mean


def test_worker_processes_report_each_row_as_it_finishes(finished_run):
    _, _, tmp = finished_run
    from scenefusion.config import with_overrides
    from scenefusion.experiment import run_experiment

    cfg = with_overrides(load_config(tmp / "experiment.yaml"), **{
        "models.image": ["logreg"], "models.audio": ["lstm", "logreg"], "fusion.early": [],
        "fusion.late": ["mean"], "fusion.hybrid": [], "output.name": "rows", "runner.workers": 2})
    stages = []
    run_experiment(cfg, progress=lambda stage, done, total: stages.append((stage, done, total)))
    rows = [(s, done) for s, done, total in stages if s.startswith("training: ")]
    names = [s for s, _ in rows]
    assert {f"training: audio:{RAW_AUDIO}+lstm", f"training: audio:{RAW_AUDIO}+logreg",
            "training: image:effnet_lite0+logreg"} <= set(names)
    assert names[-1].startswith("training: late:mean:") and len(names) == 4
    assert [done for _, done in rows] == [1, 2, 3, 4] and stages[-1][1:] == (4, 4)


def test_evaluate_rerenders_without_retraining(finished_run):
    run_dir, _, _ = finished_run
    (run_dir / "report.html").unlink()
    for png in (run_dir / "plots").glob("*.png"):
        png.unlink()
    result = runner.invoke(app, ["evaluate", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert (run_dir / "report.html").is_file() and (run_dir / "plots/comparison.png").is_file()


def test_run_on_reference_layout(tmp_path):
    data = make_reference_like(tmp_path / "ref", groups_per_class=3, frames_per_group=4)
    cfg = write_config(tmp_path, data)
    raw = yaml.safe_load(cfg.read_text())
    raw["models"] = {"image": ["logreg"], "audio": ["logreg"]}
    raw["fusion"] = {"early": ["logreg"], "late": ["mean"], "hybrid": []}
    cfg.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["run", str(cfg)])
    assert result.exit_code == 0, result.output
    bundle = json.loads((tmp_path / "runs/r/best/bundle.json").read_text())
    assert bundle["audio_source"] == "reference-csv-mfcc"


def test_command_line_overrides_are_validated(tmp_path):
    result = runner.invoke(app, ["run", "--image-backbone", "vgg99", "--cache", str(tmp_path)])
    assert result.exit_code == 1 and "unknown image backbone" in result.output
    result = runner.invoke(app, ["run", "--split", "random", "--cache", str(tmp_path)])
    assert result.exit_code == 1 and "split.strategy" in result.output


def test_run_with_bad_config_fails_cleanly(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("split: {strategy: random}\n")
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 1
    assert "split.strategy" in result.output and "Traceback" not in result.output


# --- predict -----------------------------------------------------------------------------------

def test_predict_one_pair_and_one_modality(finished_run, demo_pairs):
    run_dir, _, _ = finished_run
    image, audio = demo_pairs / "CITY" / "city1_002.png", demo_pairs / "CITY" / "city1_002.wav"
    both = runner.invoke(app, ["predict", "--model", str(run_dir / "best"), "--image", str(image),
                               "--audio", str(audio)])
    assert both.exit_code == 0, both.output
    assert both.stdout.split()[0] in {"BEACH", "CITY", "FOREST", "RESTAURANT"}  # warnings: stderr
    for modality in ("image", "audio"):  # every run saves a fallback per modality
        assert (run_dir / f"best-{modality}" / "bundle.json").is_file()


def test_one_modality_falls_back_to_the_best_single_modality_model(finished_run, demo_pairs,
                                                                  tmp_path):
    """A best/ that needs audio (here: the run's audio model, standing in for early fusion),
    given an image alone or a pair with a corrupt sound: best-image/ classifies it, and the
    output says so."""
    import shutil

    from scenefusion.predict import load_bundle, predict_pairs

    run_dir, _, _ = finished_run
    run = tmp_path / "run"
    shutil.copytree(run_dir / "best-audio", run / "best")
    shutil.copytree(run_dir / "best-image", run / "best-image")
    bundle, image_only = load_bundle(run / "best"), load_bundle(run / "best-image")
    assert "audio" in bundle.required()
    image = demo_pairs / "CITY" / "city1_002.png"
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not audio")
    frame = predict_pairs(bundle, [image, image], [None, broken])
    assert (frame["error"] == "").all(), frame["error"].tolist()
    assert (frame["model"] == image_only.info["name"]).all()
    assert (frame["modalities"] == "image").all()
    assert frame["warning"].str.contains("needs image; used image:|needs audio; used image:").all()
    assert "broken.wav" in frame["warning"][1]
    result = runner.invoke(app, ["predict", "--model", str(run / "best"), "--image", str(image)])
    assert result.exit_code == 0, result.output
    assert "note:" in result.output and "needs audio; used image:" in result.output
    answer = next(line for line in result.output.splitlines() if image_only.info["name"] in line
                  and "used:" in line)
    assert answer.split()[0] in {"BEACH", "CITY", "FOREST", "RESTAURANT"}
    shutil.rmtree(run / "best-image")  # without a fallback, the old clear error remains
    frame = predict_pairs(load_bundle(run / "best"), [image], [None])
    assert frame["error"][0].endswith("needs audio")


def test_predict_pairs_writes_csv_and_reports_bad_rows(finished_run, demo_pairs, tmp_path):
    run_dir, _, _ = finished_run
    folder = tmp_path / "new"
    folder.mkdir()
    for stem in ("city1_000", "forest2_001"):
        cls = stem.split("1")[0].split("2")[0].upper()
        for ext in (".png", ".wav"):
            (folder / f"{stem}{ext}").write_bytes((demo_pairs / cls / f"{stem}{ext}").read_bytes())
    (folder / "broken.png").write_bytes(b"nope")
    out = tmp_path / "pred.csv"
    result = runner.invoke(app, ["predict", "--model", str(run_dir), "--pairs", str(folder),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out).fillna("")
    assert len(frame) == 3
    assert "broken.png" in result.output
    good = frame[frame["error"] == ""]
    assert len(good) == 2 and set(good["predicted"]) <= {"BEACH", "CITY", "FOREST", "RESTAURANT"}
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "broken.png").write_bytes(b"nope")
    result = runner.invoke(app, ["predict", "--model", str(run_dir), "--pairs", str(only_bad),
                                 "--out", str(tmp_path / "bad.csv")])
    assert result.exit_code == 2 and "no pair could be classified" in result.output
    assert (tmp_path / "bad.csv").is_file()  # the error rows are still written


def test_late_fusion_bundle_falls_back_to_the_present_modality(tmp_path, demo_pairs):
    # a late-fusion bundle trained on precomputed toy features is enough to check the plumbing
    import numpy as np

    from scenefusion.models import LateFusion, make_model
    from scenefusion.predict import load_bundle, predict_pairs, save_bundle

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 20)
    img = rng.normal(y[:, None], 0.3, (40, 1280)).astype("float32")
    aud = rng.normal(y[:, None, None], 0.3, (40, 8, 13)).astype("float32")
    model = LateFusion({"image": make_model("logreg"), "audio": make_model("logreg")}).fit(
        {"image": img, "audio": aud}, y)
    info = {"name": "late:mean:t", "kind": "late", "classes": ["A", "B"],
            "image_backbone": "effnet_lite0", "image_weights": None, "audio_features": "mfcc",
            "audio_source": "raw-audio"}
    save_bundle(model, info, tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    frame = predict_pairs(bundle, [None, demo_pairs / "CITY/city0_000.png"],
                          [demo_pairs / "CITY/city0_000.wav", None])
    assert list(frame["modalities"]) == ["audio", "image"]
    assert (frame["error"] == "").all()


def test_a_late_answer_says_how_much_each_member_pushed_toward_it(tmp_path, demo_pairs):
    import numpy as np
    from PIL import Image

    from scenefusion.features.audio import audio_feature
    from scenefusion.models import LateFusion, make_model
    from scenefusion.predict import load_bundle, predict_rows, save_bundle

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(2), 20)
    img = rng.normal(y[:, None], 0.3, (40, 1280)).astype("float32")
    aud = rng.normal(-y[:, None, None], 3.0, (40, 8, 13)).astype("float32")  # weak, other sign
    model = LateFusion({"image": make_model("logreg"), "audio": make_model("logreg")},
                       method="mean").fit({"image": img, "audio": aud}, y)
    info = {"name": "late:mean:t", "kind": "late", "classes": ["A", "B"],
            "image_backbone": "effnet_lite0", "image_weights": None, "audio_features": "mfcc",
            "audio_source": "raw-audio"}
    save_bundle(model, info, tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    image, audio = demo_pairs / "CITY/city0_000.png", demo_pairs / "CITY/city0_000.wav"
    row = predict_rows(bundle, [image], [audio])[0]
    assert set(row.members) == {"image", "audio"}
    chosen = bundle.classes.index(row.predicted)
    extractor = bundle.image_extractor
    picture = extractor.preprocess(Image.open(image).convert("RGB"))[None]
    alone = bundle.model.member_probabilities(
        {"image": extractor.embed(picture), "audio": audio_feature("mfcc")(audio)[None]})
    for name, member in row.members.items():
        assert member["weight"] == pytest.approx(0.5)  # mean: equal shares
        assert member["probability"] == pytest.approx(alone[name][0, chosen], abs=1e-4)
        assert member["contribution"] == pytest.approx(0.5 * member["probability"], abs=1e-4)
    # for the mean, the members' contributions add up to the fused probability
    assert sum(m["contribution"] for m in row.members.values()) == pytest.approx(
        row.probability, abs=1e-3)
    assert row.csv_row()["contributions"].startswith("image ")
    image_only = make_model("logreg").fit(img, y)
    save_bundle(image_only, {**info, "name": "image:logreg:t", "kind": "image"}, tmp_path / "i")
    assert predict_rows(load_bundle(tmp_path / "i"), [image], [None])[0].members == {}


def test_predict_without_bundle_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["predict", "--model", str(tmp_path), "--image", "x.png"])
    assert result.exit_code == 1 and "not a model bundle" in result.output


# --- download ----------------------------------------------------------------------------------

def test_download_uses_kagglehub_and_finds_the_nested_root(tmp_path, monkeypatch):
    archive = tmp_path / "kaggle" / "versions" / "1"
    make_reference_like(archive / "scene_data", groups_per_class=2, frames_per_group=1)
    fake = types.SimpleNamespace(dataset_download=lambda handle: str(archive))
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    assert download_reference() == archive / "scene_data"
    copied = download_reference(tmp_path / "mine")
    assert (copied / "dataset.csv").is_file() and (copied / "images").is_dir()


def test_run_without_data_uses_a_downloaded_reference_set(tmp_path, monkeypatch):
    from scenefusion.config import with_overrides
    from scenefusion.experiment import run_experiment

    monkeypatch.setenv("SCENEFUSION_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KAGGLEHUB_CACHE", raising=False)
    versions = tmp_path / "cache/kagglehub/datasets/birdy654/scene/versions/1"
    make_reference_like(versions / "data", groups_per_class=3, frames_per_group=3)

    def fake_download(handle):
        import os

        assert os.environ["KAGGLEHUB_CACHE"] == str(tmp_path / "cache" / "kagglehub")
        return str(versions)

    monkeypatch.setitem(sys.modules, "kagglehub",
                        types.SimpleNamespace(dataset_download=fake_download))
    assert download_reference() == versions / "data"
    cfg = with_overrides(load_config(None), **{
        "models.image": ["logreg"], "models.audio": ["logreg"], "fusion.early": [],
        "fusion.late": ["mean"], "fusion.hybrid": [], "output.runs_dir": tmp_path / "runs"})
    out = run_experiment(cfg)
    assert any("reference data set found in the cache" in n for n in out.notes)
    assert out.extraction["audio:mfcc"]["reused"] == 27  # the CSV's MFCC rows


def test_download_offline_explains_the_manual_route(monkeypatch):
    def offline(handle):
        raise ConnectionError("Name or service not known")

    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=offline))
    with pytest.raises(DownloadError, match="could not download.*kaggle.com/datasets"):
        download_reference()


def test_run_skips_and_reports_a_corrupt_file(tmp_path, demo_pairs):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(demo_pairs, data)
    (data / "BEACH" / "beach0_001.png").write_bytes(b"\x89PNG truncated")
    (data / "CITY" / "city0_002.wav").write_bytes(b"RIFF")
    cfg = write_config(tmp_path, data)
    raw = yaml.safe_load(cfg.read_text())
    raw["models"] = {"image": ["logreg"], "audio": ["logreg"]}
    raw["fusion"] = {"early": [], "late": ["mean"], "hybrid": []}
    cfg.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["run", str(cfg)])
    assert result.exit_code == 0, result.output
    notes = " ".join(json.loads((tmp_path / "runs/r/metrics.json").read_text())["notes"])
    assert "beach0_001.png" in notes and "city0_002.wav" in notes
    assert "2 item(s) had no usable features" in notes


def test_predict_a_video_second_by_second(finished_run, tmp_path):
    from videos import write_video

    run_dir, _, _ = finished_run
    video = write_video(tmp_path / "walk.mp4", seconds=3)
    out = tmp_path / "video.csv"
    result = runner.invoke(app, ["predict", "--model", str(run_dir), "--video", str(video),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out).fillna("")
    assert list(frame["second"]) == [0, 1, 2]
    assert set(frame["predicted"]) <= {"BEACH", "CITY", "FOREST", "RESTAURANT"}
    assert "of 3 seconds" in result.output
    assert "probabilities" not in frame  # the dicts stay in memory; the CSV keeps top_k text
    result = runner.invoke(app, ["predict", "--model", str(run_dir), "--video", str(video),
                                 "--out", str(out), "--smooth", "5"])
    assert result.exit_code == 0, result.output
    assert "smoothed over 5 s" in result.output
    smoothed = pd.read_csv(out).fillna("")
    assert list(smoothed["second"]) == [0, 1, 2]
    assert len(set(smoothed["predicted"])) == 1  # every 5 s window spans all 3 s: one average


def test_python_dash_m_runs_the_cli():
    """`python -m scenefusion` works where the console script is not on PATH (and is the
    module a spawned helper process re-imports safely: the CLI runs only under __main__)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "scenefusion", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "run" in done.stdout and "predict" in done.stdout


def test_thin_validation_means_selection_by_grouped_cross_validation(finished_run):
    """One validation video per class cannot choose a model: every row gets a grouped
    cross-validation estimate over the training videos, best/ is the row with the highest, and
    a fused row below its best member on it is marked."""
    run_dir, _, _ = finished_run
    rows = json.loads((run_dir / "metrics.json").read_text())["results"]
    assert all(r["extra"].get("cv_accuracy") is not None for r in rows)
    report = (run_dir / "report.md").read_text()
    assert "chosen by grouped 3-fold cross-validation over the training groups" in report
    best = json.loads((run_dir / "best/bundle.json").read_text())["name"]
    top = max(rows, key=lambda r: (r["extra"]["cv_accuracy"], -r["extra"]["cv_log_loss"]))
    assert best == top["name"]
    by_name = {r["name"]: r for r in rows}
    for r in rows:
        if r["extra"]["family"] in ("late", "hybrid"):
            members = max(by_name[m]["extra"]["cv_accuracy"] for m in r["extra"]["members"])
            assert r["extra"].get("below_best_member", False) == (
                r["extra"]["cv_accuracy"] < members)
