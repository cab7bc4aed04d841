"""Untrusted media: any decoder error is the file's fault on every video path, lengths are
bounded by what is decoded (never a header), and the server's work per request is bounded."""

from __future__ import annotations

import re
import struct
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

av = pytest.importorskip("av", reason="videos need PyAV: pip install -e '.[video]'")
from test_video import _audio_bundle as audio_bundle  # noqa: E402  (an mfcc+logreg bundle)
from videos import write_video  # noqa: E402

from scenefusion.cli import app  # noqa: E402
from scenefusion.data import DataError, VideoOptions, load_dataset  # noqa: E402
from scenefusion.data.video import (  # noqa: E402
    decoding,
    sound_seconds,
    video_to_pairs,
    videos_to_pairs,
)
from scenefusion.timeline import predict_video  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src" / "scenefusion"


def bad_metadata_video(path: Path) -> Path:
    """A good mp4 whose encoder tag is made invalid UTF-8: PyAV raises UnicodeDecodeError
    inside ``av.open`` (not an FFmpegError)."""
    source = write_video(path.with_name(f".source{path.suffix}"), seconds=2, freq=620.0)
    data = bytearray(source.read_bytes())
    source.unlink()
    at = data.find(b"Lavf")
    assert at > 0
    data[at:at + 4] = b"\xff\xfe\x9a\x80"
    path.write_bytes(data)
    with pytest.raises(UnicodeDecodeError):
        av.open(str(path)).close()
    return path


def lying_mkv(path: Path, seconds: float, states: float) -> Path:
    """A Matroska video of ``seconds`` whose header's Duration says ``states`` seconds."""
    data = bytearray(write_video(path, seconds=seconds, fps=5, size=32).read_bytes())
    at = data.find(b"\x44\x89\x88")  # EBML Duration, an 8-byte float in TimecodeScale (ms)
    assert at > 0
    data[at + 3:at + 11] = struct.pack(">d", states * 1000)
    path.write_bytes(data)
    with av.open(str(path)) as container:
        assert container.duration / 1e6 == pytest.approx(states)
    return path


# --- one decode-error rule -----------------------------------------------------------------

def test_only_the_decoding_helper_opens_a_video():
    """Every video path decodes through data.video.decoding, so one rule covers them all."""
    opens = [f"{p.relative_to(SRC)}:{n}" for p in SRC.rglob("*.py")
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"\bav\.open\(", line)]
    assert opens == [f"data/video.py:{_line_of('data/video.py', 'av.open(')}"]


def _line_of(relative: str, text: str) -> int:
    lines = (SRC / relative).read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


@pytest.mark.parametrize("error", [UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid"),
                                   KeyError("codec"), RuntimeError("decoder fell over"),
                                   MemoryError()])
def test_any_exception_while_decoding_is_the_files_data_error(tmp_path, monkeypatch, error):
    video = write_video(tmp_path / "v.mp4", seconds=1)

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(av, "open", broken)
    with pytest.raises(DataError) as raised, decoding(video):
        pass
    assert str(raised.value).startswith(f"{video}: not a readable video (")


def test_a_write_error_while_cutting_is_not_blamed_on_the_video(tmp_path, monkeypatch):
    """Frames are decoded inside the rule, files written outside it: a full disk stays an
    OSError (the CLI names the disk's problem), not 'not a readable video'."""
    import scenefusion.data.video as video_module

    def full(path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(video_module, "open_new", full)
    video = write_video(tmp_path / "v.mp4", seconds=2)
    with pytest.raises(OSError, match="No space left") as raised:
        video_to_pairs(video, tmp_path / "out", "x")
    assert not isinstance(raised.value, DataError)


def test_non_utf8_metadata_is_a_named_error_in_the_cutter_and_from_video(tmp_path):
    bad = bad_metadata_video(tmp_path / "meta.mp4")
    with pytest.raises(DataError, match=r"meta\.mp4: not a readable video \(.*utf-8"):
        video_to_pairs(bad, tmp_path / "out", "x")
    good = write_video(tmp_path / "ok.mp4", seconds=2)
    cut = videos_to_pairs([bad, good], tmp_path / "pairs", "BEACH")
    assert [str(e.path) for e in cut.skipped] == [str(bad)] and cut.total == 2
    result = CliRunner().invoke(app, ["data", "from-video", str(bad), str(good), "--label",
                                      "BEACH", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "meta.mp4" in result.output and "not a readable video" in result.output
    assert "Traceback" not in result.output


def test_non_utf8_metadata_is_a_named_skip_in_a_video_folder_inspect_and_manifest(
        tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEFUSION_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "videos"
    for label, freq in (("BEACH", 330.0), ("CITY", 880.0)):
        (data / label).mkdir(parents=True)
        write_video(data / label / "v0.mp4", seconds=2, freq=freq)
    bad = bad_metadata_video(data / "BEACH" / "meta.mp4")
    result = CliRunner().invoke(app, ["data", "inspect", str(data)])
    assert result.exit_code == 0, result.output
    assert "meta.mp4" in result.output and "not a readable video" in result.output
    csv = data / "list.csv"
    csv.write_text("video,label,group\nBEACH/meta.mp4,BEACH,a\nBEACH/v0.mp4,BEACH,b\n"
                   "CITY/v0.mp4,CITY,c\n")
    dataset = load_dataset(csv, options=VideoOptions(cache_dir=tmp_path / "cache"))
    skips = {Path(s.path).name: s.reason for s in dataset.skipped}
    assert skips["meta.mp4"].startswith("not a readable video (")
    assert dataset.class_counts() == {"BEACH": 2, "CITY": 2}
    assert bad.is_file()


def test_non_utf8_metadata_is_exit_1_naming_it_in_predict_video(tmp_path):
    bad = bad_metadata_video(tmp_path / "meta.mp4")
    result = CliRunner().invoke(app, ["predict", "--model", str(audio_bundle(tmp_path)),
                                      "--out", str(tmp_path / "s.csv"), "--video", str(bad)])
    assert result.exit_code == 1, result.output
    assert "meta.mp4: not a readable video" in " ".join(result.output.split())
    assert "Traceback" not in result.output


# --- lengths by decoding ------------------------------------------------------------------

def test_a_header_that_understates_the_length_does_not_lift_the_limit(tmp_path):
    lie = lying_mkv(tmp_path / "lie.mkv", seconds=6, states=1)
    assert sound_seconds(lie, 2) < 3  # stopped just past the limit, not decoded to the end
    assert sound_seconds(lie, 100) == pytest.approx(6, abs=0.1)
    from scenefusion.predict import load_bundle

    rows = predict_video(load_bundle(audio_bundle(tmp_path)), lie, max_seconds=2)
    assert len(rows) == 2


def test_max_seconds_cuts_the_same_items_as_a_whole_decode(tmp_path):
    video = write_video(tmp_path / "v.mp4", seconds=5)
    whole = video_to_pairs(video, tmp_path / "whole", "x", audio_seconds=2)
    first = video_to_pairs(video, tmp_path / "first", "x", audio_seconds=2, max_seconds=3)
    assert [p.name for p in first] == [p.name for p in whole[:3]]
    for a, b in zip(first, whole, strict=False):
        assert np.array_equal(sf.read(a.with_suffix(".wav"))[0],
                              sf.read(b.with_suffix(".wav"))[0])


# --- the server ---------------------------------------------------------------------------

fastapi = pytest.importorskip("fastapi", reason="serve is an optional extra")
pytest.importorskip("python_multipart", reason="serve needs python-multipart")


class CountingLock:
    """A lock that counts how often it is taken."""

    def __init__(self) -> None:
        self.lock, self.taken = threading.Lock(), 0

    def __enter__(self):
        self.lock.acquire()
        self.taken += 1
        return self

    def __exit__(self, *exc):
        self.lock.release()


def served(tmp_path: Path, monkeypatch, **limits):
    import types

    import scenefusion.serve.app as serve_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    lock = CountingLock()
    monkeypatch.setattr(serve_app, "threading", types.SimpleNamespace(Lock=lambda: lock))
    return TestClient(serve_app.create_app(audio_bundle(tmp_path), **limits)), lock


def test_serve_names_a_video_with_non_utf8_metadata_in_a_422(tmp_path, monkeypatch):
    client, lock = served(tmp_path, monkeypatch)
    bad = bad_metadata_video(tmp_path / "meta.mp4")
    response = client.post("/predict", files={"video": ("holiday.mp4", bad.read_bytes(),
                                                        "video/mp4")})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("holiday.mp4: not a readable video (")
    assert lock.taken == 0


def test_serve_refuses_a_video_longer_than_its_limit_whatever_its_header_says(tmp_path,
                                                                           monkeypatch):
    client, lock = served(tmp_path, monkeypatch, max_video_seconds=3)
    lie = lying_mkv(tmp_path / "lie.mkv", seconds=6, states=1)
    response = client.post("/predict", files={"video": ("lie.mkv", lie.read_bytes(),
                                                        "video/x-matroska")})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == ("lie.mkv: video is longer than 3 s; this server "
                                         "accepts at most 3 s (scenefusion serve "
                                         "--max-video-seconds)")
    assert lock.taken == 0
    fits = write_video(tmp_path / "fits.mp4", seconds=3)
    response = client.post("/predict", files={"video": ("fits.mp4", fits.read_bytes(),
                                                        "video/mp4")})
    assert response.status_code == 200, response.text
    assert len(response.json()["timeline"]) == 3 and lock.taken == 1


def test_serve_refuses_a_sound_longer_than_max_audio_seconds_before_the_lock(tmp_path,
                                                                             monkeypatch):
    client, lock = served(tmp_path, monkeypatch, max_audio_seconds=4)
    assert client.get("/model").json()["limits"]["max_audio_seconds"] == 4
    rate = 16000
    t = np.arange(rate * 10) / rate
    long = tmp_path / "long.wav"
    sf.write(long, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    response = client.post("/predict", files={"audio": ("long.wav", long.read_bytes(),
                                                        "audio/wav")})
    assert response.status_code == 422
    assert response.json()["detail"] == ("long.wav: sound is longer than 4 s; this server "
                                         "accepts at most 4 s (scenefusion serve "
                                         "--max-audio-seconds)")
    assert lock.taken == 0
    sf.write(long, (0.3 * np.sin(2 * np.pi * 440 * t[:rate * 4])).astype(np.float32), rate)
    response = client.post("/predict", files={"audio": ("ok.wav", long.read_bytes(),
                                                        "audio/wav")})
    assert response.status_code == 200, response.text
    assert lock.taken == 1


def test_serve_command_takes_max_audio_seconds():
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert "--max-audio-seconds" in result.output
