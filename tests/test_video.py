"""Videos -> one image + one second of audio per second."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner
from videos import write_video

from scenefusion.cli import app
from scenefusion.data import DataError, load_pairs_folder
from scenefusion.data.video import video_to_pairs
from scenefusion.predict import Prediction
from scenefusion.timeline import NothingClassified, smooth_timeline, timeline_frame, video_verdict


def test_each_second_gives_the_middle_frame_and_its_second_of_audio(tmp_path):
    video = write_video(tmp_path / "harbour1.mp4", seconds=3, freq=440.0)
    images = video_to_pairs(video, tmp_path / "pairs", "RIVER")
    assert [p.name for p in images] == ["harbour1_00000.jpg", "harbour1_00001.jpg",
                                        "harbour1_00002.jpg"]
    # frame at t + 0.5 s = frame 5, 15, 25 of a 10 fps video, brightness 8 * index
    brightness = [np.asarray(Image.open(p)).mean() for p in images]
    np.testing.assert_allclose(brightness, [40, 120, 200], atol=6)
    for p in images:
        audio, rate = sf.read(p.with_suffix(".wav"))
        assert rate == 16000 and audio.shape == (16000,)  # resampled from 44.1 kHz stereo
        peak = np.argmax(np.abs(np.fft.rfft(audio))) * rate / len(audio)
        assert abs(peak - 440) < 3
    dataset = load_pairs_folder(tmp_path / "pairs")
    assert len(dataset) == 3 and set(dataset.groups) == {"RIVER/harbour1"}


def test_video_without_audio_or_not_a_video_is_a_named_error(tmp_path):
    silent = write_video(tmp_path / "mute.mp4", audio_rate=None)
    with pytest.raises(DataError, match="mute.mp4: video has no audio track"):
        video_to_pairs(silent, tmp_path / "out", "X")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"definitely not a video")
    with pytest.raises(DataError, match="junk.mp4: not a readable video"):
        video_to_pairs(junk, tmp_path / "out", "X")
    with pytest.raises(DataError, match="gone.mp4: video file not found"):
        video_to_pairs(tmp_path / "gone.mp4", tmp_path / "out", "X")


def test_from_video_cli_writes_pairs_and_skips_bad_files(tmp_path):
    good = write_video(tmp_path / "beach2.mp4", seconds=2)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope")
    result = CliRunner().invoke(app, ["data", "from-video", str(good), str(bad), "--label",
                                      "BEACH", "--out", str(tmp_path / "pairs")])
    assert result.exit_code == 0, result.output
    assert "2 pairs" in result.output and "bad.mp4" in result.output
    assert len(list((tmp_path / "pairs" / "BEACH").glob("*.wav"))) == 2


def test_audio_seconds_takes_more_sound_around_each_frame(tmp_path):
    video = write_video(tmp_path / "street.mp4", seconds=4, freq=440.0)
    images = video_to_pairs(video, tmp_path / "pairs", "CITY", audio_seconds=3)
    lengths = [sf.info(p.with_suffix(".wav")).frames for p in images]
    assert lengths == [48000] * 4  # shifted inside the 4 s track at both ends
    with pytest.raises(ValueError, match="audio_seconds"):
        video_to_pairs(video, tmp_path / "pairs", "CITY", audio_seconds=0.1)
    result = CliRunner().invoke(app, ["data", "from-video", str(video), "--label", "CITY",
                                      "--out", str(tmp_path / "cli"), "--audio-seconds", "2"])
    assert result.exit_code == 0, result.output
    assert {sf.info(p).frames for p in (tmp_path / "cli" / "CITY").glob("*.wav")} == {32000}


def _timeline(rows: list[dict | str]) -> list[Prediction]:
    """Per-second predictions as predict_rows gives them; a str = an error."""
    out = []
    for r in rows:
        if isinstance(r, str):
            out.append(Prediction(None, None, error=r))
        else:
            best = max(r, key=r.get)
            out.append(Prediction(None, None, predicted=best, probability=r[best],
                                  probabilities=dict(r), modalities=["image", "audio"]))
    return out


def test_smoothing_outvotes_a_lone_odd_second_and_skips_errors():
    beach, city = {"BEACH": 0.8, "CITY": 0.2}, {"BEACH": 0.3, "CITY": 0.7}
    rows = _timeline([beach, beach, city, "x.wav: unreadable", beach])
    assert smooth_timeline(rows, 1) is rows
    out = smooth_timeline(rows, 3, top_k=2)
    assert [r.predicted or "" for r in out] == ["BEACH", "BEACH", "BEACH", "", "BEACH"]
    # second 2 averages seconds 1 and 2 only (3 is an error); second 4 itself and second 3 not
    assert out[2].probabilities["BEACH"] == pytest.approx((0.8 + 0.3) / 2)
    assert out[4].probabilities == pytest.approx(beach)
    assert [c for c, _ in out[2].top_k] == ["BEACH", "CITY"]
    assert [p for _, p in out[2].top_k] == pytest.approx([0.55, 0.45])
    assert out[3].error == "x.wav: unreadable"
    assert [r.predicted or "" for r in rows] == ["BEACH", "BEACH", "CITY", "", "BEACH"]  # kept
    best, totals, counts = video_verdict(out)
    assert best == "BEACH" and counts == {"BEACH": 4}
    assert sum(totals.values()) == pytest.approx(1.0)
    frame = timeline_frame(out)
    assert list(frame["second"]) == [0, 1, 2, 3, 4]
    assert frame["top_k"][2] == "BEACH 0.550; CITY 0.450" and "image" not in frame


def test_the_decisive_seconds_of_a_video_whose_scene_changes_halfway():
    from scenefusion.timeline import decisive_seconds

    city = [{"BEACH": 0.2 + 0.02 * i, "CITY": 0.8 - 0.02 * i} for i in range(3)]
    beach = [{"BEACH": 0.9 - 0.05 * i, "CITY": 0.1 + 0.05 * i} for i in range(4)]
    rows = _timeline([*city, "x.wav: unreadable", *beach])
    best, _, _ = video_verdict(rows)
    assert best == "BEACH"
    why = decisive_seconds(rows, best, n=2)
    assert why["toward"] == [(4, pytest.approx(0.9)), (5, pytest.approx(0.85))]  # second half
    assert why["against"] == [(0, pytest.approx(0.2)), (1, pytest.approx(0.22))]  # first half
    assert all(s != 3 for side in why.values() for s, _ in side)  # the error second is no one's
    assert decisive_seconds(rows, "CITY", n=1) == {"toward": [(0, pytest.approx(0.8))],
                                                   "against": [(4, pytest.approx(0.1))]}


def test_smoothing_recomputes_the_low_margin_warning_and_fills_unknown_classes():
    rows = _timeline([{"BEACH": 0.51, "CITY": 0.49}, {"BEACH": 0.9, "CITY": 0.1},
                      {"BEACH": 0.95}])  # e.g. a fallback model that knows one class
    rows[0].warnings = ["used best-image",
                        "low margin: the model cannot tell BEACH 0.510, CITY 0.490 apart"]
    out = smooth_timeline(rows, 3)
    assert out[0].warnings == ["used best-image"]
    assert out[2].probabilities["CITY"] == pytest.approx(0.05 / 0.975)
    with pytest.raises(ValueError, match=">= 1 second"):
        smooth_timeline(rows, 0)


def test_verdict_breaks_a_tie_in_seconds_by_mean_probability_and_needs_one_second():
    assert video_verdict(_timeline([{"A": 0.6, "B": 0.4}, {"A": 0.1, "B": 0.9}]))[0] == "B"
    with pytest.raises(NothingClassified, match="no second of the video could be classified"):
        video_verdict(_timeline(["bad"]))


def _audio_bundle(tmp_path):
    import numpy as np

    from scenefusion.models import make_model
    from scenefusion.predict import save_bundle

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 10)
    model = make_model("logreg").fit(rng.normal(y[:, None, None], 0.3, (20, 8, 13)), y)
    return save_bundle(model, {"name": "audio:mfcc+logreg", "kind": "audio",
                               "classes": ["A", "B"], "audio_features": "mfcc",
                               "audio_source": "raw-audio"}, tmp_path / "b")


def test_predict_video_exit_codes_unreadable_is_1_nothing_classified_is_2(tmp_path):
    bundle = _audio_bundle(tmp_path)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    args = ["predict", "--model", str(bundle), "--out", str(tmp_path / "s.csv"), "--video"]
    result = CliRunner().invoke(app, [*args, str(junk)])
    assert result.exit_code == 1 and "not a readable video" in result.output
    silent = write_video(tmp_path / "silent.mp4", seconds=2, freq=0.0)  # every second silent
    result = CliRunner().invoke(app, [*args, str(silent)])
    assert result.exit_code == 2, result.output
    assert "no second of the video could be classified" in result.output
    assert len(pd.read_csv(tmp_path / "s.csv")) == 2  # the per-second errors are written
    good = write_video(tmp_path / "tone.mp4", seconds=2)
    result = CliRunner().invoke(app, [*args, str(good)])
    assert result.exit_code == 0 and "of 2 seconds" in result.output
