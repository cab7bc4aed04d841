"""`scenefusion serve`: the JSON API and the page, over a small trained run (TestClient)."""

from __future__ import annotations

import io
import re
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("fastapi", reason="serve is an optional extra: pip install -e '.[serve]'")
pytest.importorskip("python_multipart", reason="serve needs python-multipart ([serve] extra)")
with warnings.catch_warnings():  # newer Starlette prefers httpx2 over httpx; both work
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from scenefusion.cli import app as cli  # noqa: E402
from scenefusion.data.synthetic import make_pairs_folder  # noqa: E402
from scenefusion.predict import load_bundle, predict_pairs, predict_rows  # noqa: E402
from scenefusion.serve import create_app  # noqa: E402
from scenefusion.serve.app import ranked  # noqa: E402

TINY_GRID = {"models": {"image": ["logreg"], "audio": ["logreg"]},
             "fusion": {"early": ["logreg"], "late": ["mean"], "hybrid": []},
             "evaluation": {"n_bootstrap": 50}}
_RUNS: dict[str, Path] = {}


def trained_run(tmp_path_factory) -> dict[str, Path]:
    """A finished tiny run on synthetic pairs (best/, best-image/, best-audio/), trained once
    per test session: the browser test imports this too."""
    if not _RUNS:
        tmp = tmp_path_factory.mktemp("serve-run")
        data = make_pairs_folder(tmp / "pairs", groups_per_class=3, frames_per_group=3)
        cfg = {"data": {"path": str(data)}, **TINY_GRID,
               "features": {"cache_dir": str(tmp / "cache")},
               "output": {"runs_dir": str(tmp / "runs"), "name": "r"}}
        (tmp / "experiment.yaml").write_text(yaml.safe_dump(cfg))
        result = CliRunner().invoke(cli, ["run", str(tmp / "experiment.yaml")])
        assert result.exit_code == 0, result.output
        _RUNS.update(best=tmp / "runs" / "r" / "best", pairs=data)
    return _RUNS


def pair_files(run: dict[str, Path], label: str = "BEACH", n: int = 0) -> tuple[Path, Path]:
    image = sorted((run["pairs"] / label).glob("*.png"))[n]
    return image, image.with_suffix(".wav")


def upload(image: Path | None = None, audio: Path | None = None) -> dict:
    files = {}
    if image is not None:
        files["image"] = (image.name, image.read_bytes(), "image/png")
    if audio is not None:
        files["audio"] = (audio.name, audio.read_bytes(), "audio/wav")
    return files


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def bundle(run):
    return load_bundle(run["best"])


@pytest.fixture(scope="module")
def client(run):
    return TestClient(create_app(run["best"]))


def test_good_pair_answers_as_predict_pairs_with_per_modality_probabilities(client, run,
                                                                            bundle):
    image, audio = pair_files(run, "FOREST")
    response = client.post("/predict", files=upload(image, audio), data={"top_k": "2"})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = predict_pairs(bundle, [image], [audio]).iloc[0]
    assert body["class"] == expected["predicted"]
    assert body["model"] == expected["model"] == bundle.info["name"]
    assert body["modalities"] == expected["modalities"].split("+")
    assert [p["class"] for p in body["top_k"]] == [
        part.rsplit(" ", 1)[0] for part in expected["top_k"].split("; ")][:2]
    # the run saved best-image/ and best-audio/: both single-modality answers are shown
    assert set(body["per_modality"]) >= {"image", "audio"}
    for result in body["per_modality"].values():
        assert sorted(p["class"] for p in result["probabilities"]) == bundle.classes
        assert sum(p["probability"] for p in result["probabilities"]) == pytest.approx(1, abs=1e-6)
    # unrounded: the API gives the model's own numbers, not the 3-decimal top-k text
    exact = predict_pairs(bundle, [image], [audio], with_probabilities=True).iloc[0]
    assert body["probability"] == exact["probabilities"][body["class"]] == exact["probability"]
    assert body["per_modality"]["audio"]["model"].startswith("audio:")
    # a late / hybrid answer says what each member contributed, as predict's rows do
    assert body["members"] == predict_rows(bundle, [image], [audio])[0].members
    assert body["saliency"] is None  # only when asked
    explained = client.post("/predict", files=upload(image, audio),
                            data={"explain": "true"}).json()["saliency"]
    assert explained["class"] == body["class"] and explained["method"]
    grid = explained["grid"]
    assert len(grid) >= 2 and all(len(row) == len(grid[0]) for row in grid)
    assert max(map(max, grid)) > 0 and 0 < explained["crop"] <= 1
    # the map explains the same image-only probability the answer shows for that class
    image_alone = {p["class"]: p["probability"] for p in body["per_modality"]["image"][
        "probabilities"]}
    assert explained["probability"] == pytest.approx(image_alone[body["class"]], abs=1e-3)
    assert any("SYNTHETIC" in w for w in body["warnings"])
    assert body["timeline"] is None


def test_image_only_uses_the_image(client, run):
    image, _ = pair_files(run, "CITY")
    body = client.post("/predict", files=upload(image=image)).json()
    assert body["modalities"] == ["image"]
    assert "audio" not in body["per_modality"]
    assert body["class"] in {"BEACH", "CITY", "FOREST"}


def test_audio_only_is_answered_by_an_audio_model_that_says_so(client, run, bundle):
    _, audio = pair_files(run, "BEACH")
    response = client.post("/predict", files=upload(audio=audio))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["modalities"] == ["audio"]
    assert body["model"].startswith("audio:")
    assert list(body["per_modality"]) == ["audio"]
    if "image" in bundle.required():  # best/ needs the image: the fallback must be named
        assert f"model {bundle.info['name']} needs image" in body["warnings"]
        assert f"used {body['model']}" in body["warnings"]


def test_a_long_sound_says_which_seconds_decided(client, run, bundle, tmp_path):
    import numpy as np
    import soundfile as sf

    from scenefusion.timeline import predict_audio_windows

    # four seconds of a BEACH clip, then four of a CITY clip: 8 one-second windows
    parts = [sf.read(pair_files(run, label)[1])[0] for label in ("BEACH", "CITY")]
    rate = sf.info(pair_files(run, "BEACH")[1]).samplerate
    long_sound = tmp_path / "walk.wav"
    sf.write(long_sound, np.concatenate([np.tile(p, 4) for p in parts]), rate)
    body = client.post("/predict", files=upload(audio=long_sound)).json()
    windows, seconds = predict_audio_windows(bundle, long_sound)
    assert body["audio_window_seconds"] == seconds and len(windows) == 8 // int(seconds)
    decisive = body["decisive_seconds"]
    starts = {t for side in decisive.values() for t, _ in side}
    assert decisive["toward"] and starts <= {float(k * seconds) for k in range(len(windows))}
    by_start = {k * seconds: w.probabilities[body["class"]] for k, w in enumerate(windows)}
    best = max(by_start.values())
    assert decisive["toward"][0][1] == pytest.approx(best)  # the most decisive window first
    short = client.post("/predict", files=upload(audio=pair_files(run, "CITY")[1])).json()
    assert short["decisive_seconds"] is None  # one window: nothing to single out


def test_corrupt_image_is_422_naming_the_clients_file_not_a_server_path(client, run):
    image, audio = pair_files(run)
    broken = image.read_bytes()[:200]  # a PNG cut off after its header
    files = {"image": ("../../etc/holiday.png", broken, "image/png"),
             "audio": (audio.name, audio.read_bytes(), "audio/wav")}
    response = client.post("/predict", files=files)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("holiday.png: ")
    assert "image" in detail and "scenefusion-serve-" not in detail and "/etc" not in detail


def test_corrupt_audio_is_422_naming_the_file(client):
    files = {"audio": ("rain.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" * 20, "audio/wav")}
    response = client.post("/predict", files=files)
    assert response.status_code == 422
    assert re.match(r"rain\.wav: .*audio", response.json()["detail"])


def test_wrong_content_type_is_415_with_the_accepted_types(client):
    files = {"image": ("notes.txt", b"just some text", "text/plain")}
    response = client.post("/predict", files=files)
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "'notes.txt' (text/plain) is not a supported image file" in detail
    assert ".png" in detail


def test_missing_or_mixed_inputs_are_422_with_a_message(client, run):
    assert client.post("/predict").json()["detail"] == (
        "send an image and/or an audio file, or a video")
    image, _ = pair_files(run)
    files = {**upload(image=image), "video": ("clip.mp4", b"x", "video/mp4")}
    response = client.post("/predict", files=files)
    assert response.status_code == 422
    assert "not both" in response.json()["detail"]


def test_oversized_upload_is_413_before_it_is_parsed(run):
    small = TestClient(create_app(run["best"], max_upload_mb=0.01))
    files = {"image": ("big.png", b"\0" * 20_000, "image/png")}
    response = small.post("/predict", files=files)
    assert response.status_code == 413
    assert response.json()["detail"].startswith("upload too large: this server accepts at "
                                                "most 0.01 MB")
    # a body without Content-Length (chunked) is counted as it arrives
    chunks = (b"--b\r\n" + b"\0" * 4096 for _ in range(5))
    response = small.post("/predict", content=chunks,
                          headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413
    assert "upload too large" in response.json()["detail"]


def test_concurrent_requests_get_the_answers_they_get_alone(client, run):
    pairs = [pair_files(run, label, n) for label in ("BEACH", "CITY", "FOREST") for n in (0, 4)]
    alone = [client.post("/predict", files=upload(i, a)).json() for i, a in pairs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(lambda p: client.post("/predict", files=upload(*p)), pairs))
    assert [r.status_code for r in together] == [200] * len(pairs)
    assert [r.json() for r in together] == alone


def test_uploads_live_in_a_temporary_folder_that_is_always_removed(client, run, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    image, audio = pair_files(run)
    assert client.post("/predict", files=upload(image, audio)).status_code == 200
    files = {"image": ("bad.png", b"not an image", "image/png")}
    assert client.post("/predict", files=files).status_code == 422
    assert list(tmp_path.iterdir()) == []


def test_health_and_model_describe_the_served_model(client, bundle):
    assert client.get("/health").json() == {"status": "ok", "model": bundle.info["name"]}
    info = client.get("/model").json()
    assert info["classes"] == ["BEACH", "CITY", "FOREST"]
    assert info["kind"] == bundle.kind and info["name"] == bundle.info["name"]
    assert info["synthetic"] is True and info["trained_on"]["synthetic"] is True
    assert any("SYNTHETIC" in w for w in info["warnings"])
    assert 0 <= info["test_accuracy"] <= 1 and len(info["test_accuracy_ci"]) == 2
    assert info["calibration"]["method"] == "temperature"
    assert info["single_modality_models"]["audio"].startswith("audio:")
    assert info["limits"] == {"max_upload_mb": 50.0, "max_video_seconds": 120.0,
                              "max_audio_seconds": 30.0}
    if bundle.kind != "audio":
        assert info["image_backbone"] == "effnet_lite0"


def test_page_is_one_self_contained_file_and_docs_exist(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    for element in ("image-input", "audio-input", "video-input", "spectrogram", "chart",
                    "predicted-class", "timeline"):
        assert f'id="{element}"' in page
    # the only URL is the SVG namespace name, which is never fetched
    assert set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"'`)]*", page)) == {
        "http://www.w3.org/2000/svg"}
    assert not re.search(r"<(?:script|link|img)[^>]+(?:src|href)=", page)
    assert client.get("/docs").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_video_gets_a_per_second_timeline_and_a_length_limit(client, run, tmp_path):
    pytest.importorskip("av", reason="videos need PyAV: pip install -e '.[video]'")
    from videos import write_video

    video = write_video(tmp_path / "walk.mp4", seconds=3)
    files = {"video": ("walk.mp4", video.read_bytes(), "video/mp4")}
    response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [s["second"] for s in body["timeline"]] == [0, 1, 2]
    assert body["class"] in {s["class"] for s in body["timeline"]}
    toward = body["decisive_seconds"]["toward"]
    assert toward and {second for second, _ in toward} <= {0, 1, 2}
    assert [p for _, p in toward] == sorted((p for _, p in toward), reverse=True)
    smoothed = client.post("/predict", files=files, data={"smooth": "5"}).json()
    assert len({s["class"] for s in smoothed["timeline"]}) == 1  # each 5 s window spans all 3 s
    assert client.post("/predict", files=files, data={"smooth": "0"}).status_code == 422
    short = TestClient(create_app(run["best"], max_video_seconds=2))
    response = short.post("/predict", files=files)
    assert response.status_code == 422
    assert response.json()["detail"] == ("walk.mp4: video is 3 s long; this server accepts at "
                                         "most 2 s (scenefusion serve --max-video-seconds)")
    files = {"video": ("broken.mp4", b"\0" * 1000, "video/mp4")}
    assert client.post("/predict", files=files).json()["detail"].startswith(
        "broken.mp4: not a readable video")


def test_probabilities_are_ranked_whatever_the_class_names():
    assert ranked({"A": 0.2, "A B": 0.5, "x; y": 0.3}) == [
        {"class": "A B", "probability": 0.5}, {"class": "x; y", "probability": 0.3},
        {"class": "A", "probability": 0.2}]


def test_serve_command_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    result = CliRunner().invoke(cli, ["serve", str(tmp_path)])
    assert result.exit_code == 1
    assert "not a model bundle" in result.output


def test_png_made_here_is_classified(client):
    """A brand-new image (not a training file) goes through the same path."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 200)).save(buffer, format="PNG")
    response = client.post("/predict", files={"image": ("new.png", buffer.getvalue(),
                                                        "image/png")})
    assert response.status_code == 200
    assert response.json()["class"] in {"BEACH", "CITY", "FOREST"}
