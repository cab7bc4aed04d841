"""Loaders, validation of bad inputs, and the leakage-free split."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.data import (
    DataError,
    SplitError,
    load_dataset,
    load_manifest,
    load_pairs_folder,
    load_reference,
    make_split,
)
from scenefusion.data.datasets import derive_group
from scenefusion.data.synthetic import make_reference_like
from scenefusion.data.validate import read_audio

runner = CliRunner()


def reasons(dataset) -> dict[str, str]:
    return {s.path.rsplit("/", 1)[-1]: s.reason for s in dataset.skipped}


# --- loaders -----------------------------------------------------------------------------------

def test_pairs_folder_loads_every_pair_with_derived_groups(pairs_root):
    ds = load_pairs_folder(pairs_root)
    assert len(ds) == 36 and ds.classes == ["BEACH", "CITY", "FOREST"]
    assert ds.skipped == []
    assert set(ds.groups_per_class().values()) == {3}
    assert ds.group_source.startswith("derived")
    assert all(it.image.suffix == ".png" and it.audio.suffix == ".wav" for it in ds.items)


def test_manifest_loads_with_group_column(manifest_csv):
    ds = load_manifest(manifest_csv)
    assert len(ds) == 12 and ds.group_source == "manifest column"
    assert ds.items[0].image.is_file()


def test_manifest_without_group_derives_it(manifest_csv):
    frame = pd.read_csv(manifest_csv).drop(columns=["group"])
    frame.to_csv(manifest_csv, index=False)
    ds = load_manifest(manifest_csv)
    assert ds.group_source.startswith("derived")
    assert len(set(ds.groups)) == 6


def test_reference_layout_groups_by_source_folder_and_reshapes_mfcc(reference_root):
    ds = load_reference(reference_root)
    assert len(ds) == 54 and ds.layout == "reference"
    assert {it.group for it in ds.items if it.label == "BEACH"} == {"beach", "beach2", "beach3"}
    assert ds.items[0].mfcc.shape == (8, 13)
    row = pd.read_csv(reference_root / "dataset.csv").iloc[0]
    np.testing.assert_allclose(ds.items[0].mfcc[1, 0], row["mfcc_14"], rtol=1e-5)


def test_detect_layout_picks_each_loader(pairs_root, reference_root, manifest_csv):
    assert load_dataset(pairs_root).layout == "pairs"
    assert load_dataset(reference_root).layout == "reference"
    assert load_dataset(manifest_csv).layout == "manifest"


@pytest.mark.parametrize(
    "stem, group",
    [("beach0_013", "beach0"), ("restaurant5-0", "restaurant5"), ("river191", "river"),
     ("clip", "clip")],
)
def test_derive_group_strips_frame_number(stem, group):
    assert derive_group(stem) == group


# --- bad inputs --------------------------------------------------------------------------------

def test_missing_corrupt_truncated_and_unpaired_files_are_skipped_by_name(pairs_copy):
    beach = pairs_copy / "BEACH"
    (beach / "beach0_000.png").write_bytes(b"not an image at all")          # corrupt image
    png = (beach / "beach0_001.png").read_bytes()
    (beach / "beach0_001.png").write_bytes(png[: len(png) // 2])            # truncated image
    (beach / "beach1_000.wav").write_bytes(b"RIFF....WAVEfmt ")             # corrupt audio
    (beach / "beach1_001.wav").unlink()                                     # image without audio
    ds = load_pairs_folder(pairs_copy)
    why = reasons(ds)
    assert "not a readable image" in why["beach0_000.png"]
    assert "corrupt or truncated image" in why["beach0_001.png"]
    assert "not a readable audio file" in why["beach1_000.wav"]
    assert why["beach1_001.png"] == "no audio with the same name"
    assert len(ds) == 8 - 4 + 4  # 12 pairs, 4 damaged


def test_short_empty_and_silent_audio_are_rejected(tmp_path):
    sr = 16000
    sf.write(tmp_path / "short.wav", np.full(int(0.1 * sr), 0.2, np.float32), sr)
    sf.write(tmp_path / "silent.wav", np.zeros(sr, np.float32), sr)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), sr)
    with pytest.raises(DataError, match=r"short\.wav: audio too short \(0\.100 s\)"):
        read_audio(tmp_path / "short.wav")
    with pytest.raises(DataError, match="silent.wav: audio is silent"):
        read_audio(tmp_path / "silent.wav")
    with pytest.raises(DataError, match="empty.wav: audio is empty"):
        read_audio(tmp_path / "empty.wav")
    with pytest.raises(DataError, match="missing.wav: audio file not found"):
        read_audio(tmp_path / "missing.wav")


def test_other_sample_rate_is_resampled(tmp_path):
    t = np.arange(44100) / 44100
    sf.write(tmp_path / "cd.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100)
    audio, sr = read_audio(tmp_path / "cd.wav", target_sr=16000)
    assert sr == 16000 and abs(len(audio) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * sr / len(audio) - 440) < 3


def test_csv_missing_columns_named(tmp_path, reference_root):
    frame = pd.read_csv(reference_root / "dataset.csv").drop(columns=["CLASS2", "mfcc_7"])
    root = tmp_path / "ref"
    shutil.copytree(reference_root, root)
    frame.to_csv(root / "dataset.csv", index=False)
    with pytest.raises(DataError, match=r"dataset.csv: missing required column\(s\): CLASS2"):
        load_reference(root)
    # image-only and audio-only manifests are data sets; one with neither column is not
    pd.DataFrame({"file": ["a.png"], "label": ["X"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DataError, match="m.csv: missing required column.*image and/or audio"):
        load_manifest(tmp_path / "m.csv")
    pd.DataFrame({"image": ["a.png"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DataError, match="m.csv: missing required column.*label"):
        load_manifest(tmp_path / "m.csv")


def test_reference_missing_image_and_bad_mfcc_rows_are_skipped(tmp_path, reference_root):
    root = tmp_path / "ref"
    shutil.copytree(reference_root, root)
    (root / "images/beach/beach0.png").unlink()
    frame = pd.read_csv(root / "dataset.csv")
    frame.loc[1, "mfcc_5"] = np.nan
    frame.to_csv(root / "dataset.csv", index=False)
    ds = load_reference(root)
    assert len(ds) == 52
    assert any(s.reason == "file not found" or "not found" in s.reason for s in ds.skipped)
    assert any("MFCC values missing" in s.reason and s.path.endswith(":3") for s in ds.skipped)


def test_label_not_in_class_list_is_skipped_and_reported(reference_root):
    ds = load_reference(reference_root, classes=["BEACH", "CITY"])
    assert ds.classes == ["BEACH", "CITY"] and len(ds) == 36
    assert len(ds.skipped) == 18
    assert "label 'FOREST' is not in the class list" in ds.skipped[0].reason


def test_missing_data_folder_is_a_named_error(tmp_path):
    with pytest.raises(DataError, match="nowhere: not found"):
        load_dataset(tmp_path / "nowhere")


# --- split -------------------------------------------------------------------------------------

def test_grouped_split_never_shares_a_group_and_is_deterministic(tmp_path):
    root = make_reference_like(tmp_path / "r", groups_per_class=6, frames_per_group=5)
    ds = load_reference(root)
    a = make_split(ds, seed=3)
    b = make_split(ds, seed=3)
    c = make_split(ds, seed=4)
    groups = ds.groups
    sides = [set(groups[a.train]), set(groups[a.val]), set(groups[a.test])]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert len(a.train) + len(a.val) + len(a.test) == len(ds)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)
    # stratified: each class gets round(0.25 * 6) = 2 test groups, 1 val group, 3 train groups
    labels = ds.labels
    for k in range(len(ds.classes)):
        assert len(set(groups[a.test][labels[a.test] == k])) == 2
        assert len(set(groups[a.val][labels[a.val] == k])) == 1
        assert len(set(groups[a.train][labels[a.train] == k])) == 3


def test_class_with_two_groups_gets_val_from_training_frames_and_says_so(reference_root):
    ds = load_reference(reference_root)
    ds2 = ds.subset([i for i, it in enumerate(ds.items) if it.group != "forest3"])
    split = make_split(ds2, seed=0)
    groups = ds2.groups
    assert not set(groups[split.test]) & set(groups[split.train])
    assert any("'FOREST': 2 groups" in n for n in split.notes)


def test_class_with_one_group_cannot_be_split(reference_root):
    ds = load_reference(reference_root)
    keep = [i for i, it in enumerate(ds.items) if it.group not in ("city2", "city3")]
    with pytest.raises(SplitError, match="class 'CITY' has only 1 source group"):
        make_split(ds.subset(keep))


def test_frame_split_is_explicit_and_flagged(reference_root):
    split = make_split(load_reference(reference_root), strategy="frame")
    assert split.strategy == "frame" and "inflated" in split.notes[0]


# --- CLI ---------------------------------------------------------------------------------------

def test_inspect_reports_bad_files_by_name(pairs_copy):
    (pairs_copy / "CITY" / "city0_000.png").write_bytes(b"garbage")
    result = runner.invoke(app, ["data", "inspect", str(pairs_copy)])
    assert result.exit_code == 0, result.output
    assert "city0_000.png" in result.output and "not a readable image" in result.output
    assert "BEACH" in result.output


def test_inspect_exits_nonzero_when_nothing_usable(tmp_path):
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "x_1.png").write_bytes(b"junk")
    (tmp_path / "A" / "x_1.wav").write_bytes(b"junk")
    result = runner.invoke(app, ["data", "inspect", str(tmp_path)])
    assert result.exit_code == 2
    assert "x_1.png" in result.output


def test_inspect_missing_path_is_clear(tmp_path):
    result = runner.invoke(app, ["data", "inspect", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "not found" in result.output
