"""A folder of videos is a data set: cut once into the cache, one item per second, grouped by
video; a re-run decodes nothing, an edited video is cut again, a bad video is a named skip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import yaml
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("av")
from videos import write_video  # noqa: E402

from scenefusion.cli import app  # noqa: E402
from scenefusion.data import (  # noqa: E402
    DataError,
    VideoOptions,
    detect_layout,
    load_dataset,
    video_folder,  # noqa: E402
)

runner = CliRunner()


def video_folder_of(root: Path, per_class: int = 2, seconds: int = 3) -> Path:
    for c, freq in (("BEACH", 330.0), ("CITY", 880.0)):
        (root / c).mkdir(parents=True)
        for v in range(per_class):
            write_video(root / c / f"clip{v}.mp4", seconds=seconds, freq=freq + 40 * v)
    return root


def test_a_folder_of_videos_is_found_and_cut_one_item_per_second(tmp_path):
    data = video_folder_of(tmp_path / "videos")
    assert detect_layout(data) == "videos"
    dataset = load_dataset(data, options=VideoOptions(audio_seconds=2,
                                                      cache_dir=tmp_path / "cache"))
    assert dataset.layout == "videos" and not dataset.skipped
    assert len(dataset) == 12  # 2 classes x 2 videos x 3 s
    assert dataset.groups_per_class() == {"BEACH": 2, "CITY": 2}
    assert sorted({it.group for it in dataset.items}) == [
        "BEACH/clip0.mp4", "BEACH/clip1.mp4", "CITY/clip0.mp4", "CITY/clip1.mp4"]
    first = next(it for it in dataset.items if it.id == "BEACH/clip0.mp4/00001")
    assert sf.info(first.audio).duration == pytest.approx(2.0, abs=0.01)  # the feature's span
    assert Image.open(first.image).size == (64, 64)
    assert first.image.is_relative_to(tmp_path / "cache" / video_folder.CUTS_FOLDER)
    assert dataset.videos == {"videos": 4, "cut": 4, "reused": 0, "fps": 1.0}


def test_a_rerun_decodes_nothing_and_an_edited_video_is_cut_again(tmp_path, monkeypatch):
    data = video_folder_of(tmp_path / "videos")
    options = VideoOptions(cache_dir=tmp_path / "cache")
    first = load_dataset(data, options=options)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached video was decoded again")

    with monkeypatch.context() as patch:
        patch.setattr(video_folder, "video_to_pairs", no_decoding)
        again = load_dataset(data, options=options)
    assert again.videos["cut"] == 0 and again.videos["reused"] == 4
    assert [it.image for it in again.items] == [it.image for it in first.items]
    write_video(data / "CITY" / "clip1.mp4", seconds=4, freq=1200.0)  # edited in place
    edited = load_dataset(data, options=options)
    assert edited.videos["cut"] == 1 and edited.videos["reused"] == 3
    assert len(edited) == 13  # the edited video is now 4 s long


def test_the_progress_bar_says_videos_are_being_cut(tmp_path):
    from scenefusion.data import loading_stage

    data = video_folder_of(tmp_path / "videos", per_class=1, seconds=1)
    assert loading_stage(data) == loading_stage(data, " Videos ") == "cutting videos"
    assert loading_stage(data, "pairs") == "checking files"


def test_steps_per_second_and_a_maximum_length(tmp_path):
    data = video_folder_of(tmp_path / "videos", per_class=1, seconds=3)
    dataset = load_dataset(data, options=VideoOptions(fps=2, max_seconds=2,
                                                      cache_dir=tmp_path / "cache"))
    assert dataset.class_counts() == {"BEACH": 4, "CITY": 4}  # 2 per second, first 2 s


def test_bad_videos_are_named_skips_and_the_rest_still_load(tmp_path):
    data = video_folder_of(tmp_path / "videos", per_class=1)
    write_video(data / "BEACH" / "silent.mp4", seconds=2, audio_rate=None)
    (data / "CITY" / "broken.mp4").write_bytes(b"not a video at all")
    write_video(data / "CITY" / "short.mp4", seconds=0.5)
    (data / "CITY" / "notes.txt").write_text("shot on a phone")
    shutil.copy(data / "CITY" / "clip0.mp4", data / "CITY" / "clip0_copy.mp4")
    dataset = load_dataset(data, options=VideoOptions(cache_dir=tmp_path / "cache"))
    reasons = {Path(s.path).name: s.reason for s in dataset.skipped}
    assert "no audio track" in reasons["silent.mp4"]
    assert "not a readable video" in reasons["broken.mp4"]
    assert "shorter than one second" in reasons["short.mp4"]
    assert "not a video" in reasons["notes.txt"]
    # the same footage twice: its items are kept under one video only, never on both sides
    assert reasons["clip0_copy.mp4"].startswith("same content as ")
    assert reasons["clip0_copy.mp4"].split(";")[0].endswith("clip0.mp4")
    assert len(dataset) == 6
    assert {it.group for it in dataset.items} == {"BEACH/clip0.mp4", "CITY/clip0.mp4"}


def test_a_manifest_with_a_video_column_lists_videos_and_their_groups(tmp_path):
    data = video_folder_of(tmp_path / "videos")
    csv = tmp_path / "videos" / "list.csv"
    csv.write_text("video,label,group\n"
                   "BEACH/clip0.mp4,BEACH,bay\n"
                   "BEACH/clip1.mp4,BEACH,bay\n"
                   "CITY/clip0.mp4,CITY,street\n"
                   "../elsewhere.mp4,CITY,x\n"
                   "CITY/missing.mp4,CITY,y\n")
    assert detect_layout(csv) == "video-manifest"
    dataset = load_dataset(csv, options=VideoOptions(cache_dir=tmp_path / "cache"))
    assert dataset.class_counts() == {"BEACH": 6, "CITY": 3}
    # two videos of one place share their group
    assert dataset.groups_per_class() == {"BEACH": 1, "CITY": 1}
    assert {it.group for it in dataset.items} == {"bay", "street"}
    reasons = " | ".join(s.reason for s in dataset.skipped)
    assert "leaves the manifest folder" in reasons and "video file not found" in reasons
    assert data.is_dir()


def test_inspect_prints_videos_and_seconds_and_run_trains_on_a_video_folder(tmp_path):
    data = tmp_path / "videos"
    for c, freq in (("BEACH", 330.0), ("CITY", 880.0)):
        (data / c).mkdir(parents=True)
        for v in range(4):
            write_video(data / c / f"v{v}.mp4", seconds=3, freq=freq + 30 * v)
    shown = runner.invoke(app, ["data", "inspect", str(data)],
                          env={"SCENEFUSION_CACHE": str(tmp_path / "cache")})
    assert shown.exit_code == 0, shown.output
    assert "videos layout" in shown.output and "seconds" in shown.output
    assert "8 found, 8 cut now, 0 reused" in shown.output
    cfg = tmp_path / "experiment.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"path": str(data)},
        "features": {"audio": "mfcc", "cache_dir": str(tmp_path / "cache")},
        "models": {"image": ["logreg"], "audio": ["logreg"]},
        "fusion": {"early": ["logreg"], "early_audio": ["pooled"], "late": ["product"],
                   "hybrid": []},
        "evaluation": {"n_bootstrap": 0},
        "output": {"runs_dir": str(tmp_path / "runs"), "name": "r"},
    }))
    result = runner.invoke(app, ["run", str(cfg)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())
    assert metrics  # a comparison was written
    assert (tmp_path / "runs" / "r" / "best" / "bundle.json").is_file()


def test_a_partly_filled_group_column_stops_a_video_manifest_as_it_stops_an_image_one(tmp_path):
    data = video_folder_of(tmp_path / "videos", per_class=1, seconds=1)
    csv = data / "list.csv"
    csv.write_text("video,label,group\n"
                   "BEACH/clip0.mp4,BEACH,bay\n"
                   "CITY/clip0.mp4,CITY,\n"
                   ",CITY,\n")  # an unusable row needs no group
    with pytest.raises(DataError, match=r"list\.csv: the 'group' column is empty in row\(s\) 3 "
                                        "but filled in others"):
        load_dataset(csv, options=VideoOptions(cache_dir=tmp_path / "cache"))
    csv.write_text("video,label,group\nBEACH/clip0.mp4,BEACH,\nCITY/clip0.mp4,CITY,\n")
    dataset = load_dataset(csv, options=VideoOptions(cache_dir=tmp_path / "cache"))
    assert dataset.group_source == "one group per video"  # an empty column: one per video
    assert {it.group for it in dataset.items} == {"BEACH/clip0.mp4", "CITY/clip0.mp4"}


def test_one_video_under_two_labels_is_skipped_in_every_row_using_it(tmp_path):
    data = video_folder_of(tmp_path / "videos", per_class=2, seconds=1)
    csv = data / "list.csv"
    csv.write_text("video,label\n"
                   "BEACH/clip0.mp4,BEACH\n"
                   "BEACH/clip0.mp4,CITY\n"
                   "./BEACH/clip0.mp4,BEACH\n"
                   "BEACH/clip1.mp4,BEACH\n"
                   "BEACH/clip1.mp4,BEACH\n"
                   "CITY/clip0.mp4,CITY\n")
    dataset = load_dataset(csv, options=VideoOptions(cache_dir=tmp_path / "cache"))
    assert {it.group for it in dataset.items} == {"BEACH/clip1.mp4", "CITY/clip0.mp4"}
    reasons = [(Path(s.path).name, s.reason) for s in dataset.skipped]
    conflicts = [r for name, r in reasons
                 if name == "clip0.mp4" and "listed under labels 'BEACH' and 'CITY'" in r]
    assert len(conflicts) == 3  # every row using it, whatever its spelling
    assert all("row 2, row 3, row 4" in r for r in conflicts)
    again = [r for name, r in reasons if name == "clip1.mp4"]
    assert again == ["listed again (first as row 5); kept there only"]
    assert not any("same content as" in r for _, r in reasons)  # never a copy of itself


def test_a_copy_of_one_footage_under_another_label_is_skipped_in_both(tmp_path):
    data = video_folder_of(tmp_path / "videos", per_class=2, seconds=1)
    shutil.copy(data / "BEACH" / "clip0.mp4", data / "CITY" / "copied.mp4")
    dataset = load_dataset(data, options=VideoOptions(cache_dir=tmp_path / "cache"))
    reasons = {Path(s.path).name: s.reason for s in dataset.skipped}
    assert "listed under labels 'BEACH' and 'CITY'" in reasons["clip0.mp4"]
    assert "listed under labels 'BEACH' and 'CITY'" in reasons["copied.mp4"]
    assert {it.group for it in dataset.items} == {"BEACH/clip1.mp4", "CITY/clip0.mp4",
                                                  "CITY/clip1.mp4"}


def test_a_video_outside_any_class_folder_is_a_named_skip(tmp_path):
    data = video_folder_of(tmp_path / "videos", per_class=1, seconds=1)
    write_video(data / "loose.mp4", seconds=1)
    dataset = load_dataset(data, options=VideoOptions(cache_dir=tmp_path / "cache"))
    reasons = {Path(s.path).name: s.reason for s in dataset.skipped}
    assert reasons == {"loose.mp4": "not inside a class folder: videos go in ROOT/<class>/"}
    assert len(dataset) == 2


def test_temporary_folders_of_killed_cuts_are_removed_on_the_next_load(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time

    data = video_folder_of(tmp_path / "videos", per_class=1, seconds=1)
    cuts = tmp_path / "cache" / video_folder.CUTS_FOLDER
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    host = socket.gethostname()
    killed = cuts / f".abc-fps1.{dead.stdout.strip()}@{host}.0123abcd.tmp"
    live = cuts / f".abc-fps1.{os.getpid()}@{host}.4567abcd.tmp"
    elsewhere = cuts / ".abc-fps1.1@another-host.89abcdef.tmp"  # its pid means nothing here
    old_style = cuts / ".abc-fps1.deadbeef.tmp"  # from before owners were named
    for folder in (killed, live, elsewhere, old_style):
        (folder / "cut").mkdir(parents=True)
        (folder / "cut" / "x_00000.jpg").write_bytes(b"half")
    week_ago = time.time() - 7 * 24 * 3600
    for folder in (old_style, old_style / "cut"):
        os.utime(folder, (week_ago, week_ago))
    dataset = load_dataset(data, options=VideoOptions(cache_dir=tmp_path / "cache"))
    assert len(dataset) == 2
    assert not killed.exists() and not old_style.exists()
    assert live.is_dir() and elsewhere.is_dir()  # a cut that may still be running is kept
    assert not [p for p in cuts.glob(".*.tmp") if p not in (live, elsewhere)]
