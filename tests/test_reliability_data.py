"""Loader reliability: every layout follows the same rules for groups, duplicates,
conflicting labels, stray whitespace, paths leaving the data folder, and the demo writer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.data import (
    DataError,
    load_dataset,
    load_manifest,
    load_pairs_folder,
    load_reference,
    make_split,
)
from scenefusion.data.synthetic import (
    demo_data_path,
    make_demo,
    make_pairs_folder,
    make_reference_like,
    write_manifest,
)

runner = CliRunner()


def small_pairs(root: Path) -> Path:
    return make_pairs_folder(root, groups_per_class=3, frames_per_group=2, image_size=16,
                             seconds=0.3)


def skip_reasons(dataset) -> dict[str, str]:
    return {s.path: s.reason for s in dataset.skipped}


# --- groups: every row or none, and no group on both sides of a split --------------------------

def test_partly_filled_group_column_is_refused_naming_the_rows(tmp_path):
    csv = write_manifest(small_pairs(tmp_path / "pairs"), tmp_path / "m.csv")
    frame = pd.read_csv(csv)
    frame.loc[[1, 3], "group"] = None
    frame.loc[5, "group"] = "   "
    frame.to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"m\.csv: the 'group' column is empty in row\(s\) 3, 5, 7 "
                                        r"but filled in others"):
        load_manifest(csv)


def test_an_entirely_empty_group_column_means_groups_from_file_names(tmp_path):
    csv = write_manifest(small_pairs(tmp_path / "pairs"), tmp_path / "m.csv")
    frame = pd.read_csv(csv)
    frame["group"] = None
    frame.to_csv(csv, index=False)
    ds = load_manifest(csv)
    assert ds.group_source.startswith("derived") and len(set(ds.groups)) == 9


def _video(item) -> str:
    """The video an item really came from, known from how the synthetic data was written."""
    if item.mfcc is not None:
        return item.image.parent.name
    return f"{item.image.parent.name}/{item.image.stem.rsplit('_', 1)[0]}"


def _pairs(tmp_path):
    return load_pairs_folder(small_pairs(tmp_path / "pairs"))


def _manifest_with_groups(tmp_path):
    return load_manifest(write_manifest(small_pairs(tmp_path / "pairs"), tmp_path / "m.csv"))


def _manifest_without_groups(tmp_path):
    root = small_pairs(tmp_path / "pairs")
    return load_manifest(write_manifest(root, tmp_path / "m.csv", with_group=False))


def _reference(tmp_path):
    return load_reference(make_reference_like(tmp_path / "ref", frames_per_group=2, image_size=16))


@pytest.mark.parametrize(
    "load", [_pairs, _manifest_with_groups, _manifest_without_groups, _reference],
    ids=["pairs", "manifest-groups", "manifest-no-groups", "reference"],
)
def test_default_split_puts_no_group_or_video_on_both_train_and_test(tmp_path, load):
    ds = load(tmp_path)
    assert len(ds) == 18 and ds.skipped == []
    split = make_split(ds)
    assert split.strategy == "group"
    groups, videos = ds.groups, [_video(it) for it in ds.items]
    fit_side = set(split.train) | set(split.val)
    assert not {groups[i] for i in fit_side} & {groups[i] for i in split.test}
    assert not {videos[i] for i in fit_side} & {videos[i] for i in split.test}
    assert len(split.test) > 0


# --- duplicates and conflicts, the same way in every loader -------------------------------------

def test_manifest_duplicate_row_is_kept_once_and_reported(tmp_path):
    csv = write_manifest(small_pairs(tmp_path / "pairs"), tmp_path / "m.csv")
    frame = pd.read_csv(csv)
    pd.concat([frame, frame.iloc[[0]]]).to_csv(csv, index=False)  # row 2 again as row 20
    ds = load_manifest(csv)
    assert len(ds) == 18
    assert skip_reasons(ds) == {f"{csv}:20": "duplicate of row 2"}


def test_reference_duplicate_row_is_kept_once_and_reported(tmp_path):
    root = make_reference_like(tmp_path / "ref", frames_per_group=2, image_size=16)
    frame = pd.read_csv(root / "dataset.csv")
    pd.concat([frame, frame.iloc[[2]]]).to_csv(root / "dataset.csv", index=False)
    ds = load_reference(root)
    assert len(ds) == 18
    assert skip_reasons(ds) == {f"{root / 'dataset.csv'}:20": "duplicate of row 4"}


def test_manifest_same_file_under_two_labels_drops_every_row_using_it(tmp_path):
    csv = write_manifest(small_pairs(tmp_path / "pairs"), tmp_path / "m.csv")
    frame = pd.read_csv(csv)
    clash = frame.iloc[[0]].assign(label="CITY")
    pd.concat([frame, clash]).to_csv(csv, index=False)
    ds = load_manifest(csv)
    assert len(ds) == 17
    why = skip_reasons(ds)
    assert set(why) == {f"{csv}:2", f"{csv}:20"}
    assert all("same file listed under labels 'BEACH' and 'CITY'" in r
               and "row 2, row 20" in r and "which is right is unknown" in r for r in why.values())


def test_reference_same_image_under_two_labels_drops_both_rows(tmp_path):
    root = make_reference_like(tmp_path / "ref", frames_per_group=2, image_size=16)
    frame = pd.read_csv(root / "dataset.csv")
    pd.concat([frame, frame.iloc[[0]].assign(CLASS2="FOREST")]).to_csv(
        root / "dataset.csv", index=False
    )
    ds = load_reference(root)
    assert len(ds) == 17 and len(ds.skipped) == 2
    assert all("labels 'BEACH' and 'FOREST'" in s.reason for s in ds.skipped)


def test_same_file_in_two_groups_is_kept_in_the_first_only(tmp_path):
    csv = write_manifest(small_pairs(tmp_path / "pairs"), tmp_path / "m.csv")
    frame = pd.read_csv(csv)
    other = frame.iloc[[0]].assign(audio=frame.loc[1, "audio"], group="elsewhere")
    pd.concat([frame, other]).to_csv(csv, index=False)
    ds = load_manifest(csv)
    assert len(ds) == 18
    reason = skip_reasons(ds)[f"{csv}:20"]
    assert "is also in group 'beach0' (row 2)" in reason and "both sides" in reason


def test_labels_are_stripped_of_spaces_in_every_loader(tmp_path):
    root = small_pairs(tmp_path / "pairs")
    csv = write_manifest(root, tmp_path / "m.csv")
    frame = pd.read_csv(csv)
    frame["label"] = frame["label"].map(lambda s: f" {s}  " if s == "CITY" else s)
    frame.to_csv(csv, index=False)
    ref = make_reference_like(tmp_path / "ref", frames_per_group=2, image_size=16)
    ref_frame = pd.read_csv(ref / "dataset.csv")
    ref_frame["CLASS2"] = ref_frame["CLASS2"].map(lambda s: f"{s} " if s == "FOREST" else s)
    ref_frame.to_csv(ref / "dataset.csv", index=False)
    loaded = [load_manifest(csv), load_reference(ref)]
    (root / "FOREST").rename(root / "FOREST ")
    loaded.append(load_pairs_folder(root))
    expected = ["BEACH", "CITY", "FOREST"]
    for ds in loaded:
        assert ds.classes == expected and ds.class_counts() == dict.fromkeys(expected, 6)
        assert len(set(ds.groups)) == 9


def test_pairs_folder_two_images_with_one_stem_are_reported_not_guessed(tmp_path):
    root = small_pairs(tmp_path / "pairs")
    shutil.copy(root / "CITY" / "city1_000.png", root / "CITY" / "city1_000.jpg")
    shutil.copy(root / "CITY" / "city2_001.wav", root / "CITY" / "city2_001.flac")
    ds = load_pairs_folder(root)
    assert len(ds) == 16
    why = skip_reasons(ds)
    assert why[str(root / "CITY" / "city1_000.jpg")] == (
        "two images for one pair: city1_000.jpg and city1_000.png; remove or rename one"
    )
    assert "two audio files for one pair: city2_001.flac and city2_001.wav" in why[
        str(root / "CITY" / "city2_001.png")
    ]


def test_inspect_lists_duplicates_as_skipped(tmp_path):
    csv = write_manifest(small_pairs(tmp_path / "pairs"), tmp_path / "m.csv")
    frame = pd.read_csv(csv)
    pd.concat([frame, frame.iloc[[0]]]).to_csv(csv, index=False)
    result = runner.invoke(app, ["data", "inspect", str(csv)])
    assert result.exit_code == 0, result.output
    assert "duplicate of row 2" in result.output and "m.csv:20" in result.output


# --- manifest paths that leave its folder -------------------------------------------------------

def test_manifest_paths_leaving_its_folder_are_refused_unless_allowed(tmp_path):
    root = small_pairs(tmp_path / "outside")
    data = tmp_path / "data"
    data.mkdir()
    csv = write_manifest(root, tmp_path / "m.csv")
    frame = pd.read_csv(csv)
    frame["image"] = "../" + frame["image"]
    frame.loc[0, "image"] = str((root / "BEACH" / "beach0_000.png").resolve())  # absolute
    frame.loc[1, "image"] = str(tmp_path / "data" / ".." / "outside" / "BEACH" / "beach0_001.png")
    frame["audio"] = "../" + frame["audio"]
    frame.to_csv(data / "m.csv", index=False)
    refused = load_manifest(data / "m.csv")
    assert len(refused) == 0 and len(refused.skipped) == 18
    assert all("leaves the manifest folder" in s.reason and "--allow-outside-paths" in s.reason
               for s in refused.skipped)
    assert "image path '../outside/BEACH/beach1_000.png'" in skip_reasons(refused)[
        f"{data / 'm.csv'}:4"
    ]
    accepted = load_dataset(data / "m.csv", allow_outside=True)
    assert len(accepted) == 18 and accepted.skipped == []


def test_manifest_absolute_path_inside_its_folder_is_accepted(tmp_path):
    root = small_pairs(tmp_path / "pairs")
    csv = write_manifest(root, tmp_path / "m.csv")
    frame = pd.read_csv(csv)
    frame["image"] = [str(tmp_path / p) for p in frame["image"]]
    frame.to_csv(csv, index=False)
    assert len(load_manifest(csv)) == 18


def test_reference_image_path_leaving_its_folder_is_refused(tmp_path):
    root = make_reference_like(tmp_path / "ref", frames_per_group=2, image_size=16)
    frame = pd.read_csv(root / "dataset.csv")
    frame.loc[0, "IMAGE"] = "../elsewhere/x.png"
    frame.to_csv(root / "dataset.csv", index=False)
    ds = load_reference(root)
    assert len(ds) == 17
    assert "image path '../elsewhere/x.png' leaves the data folder" in ds.skipped[0].reason


# --- layout names -------------------------------------------------------------------------------

def test_unknown_layout_is_a_clear_error_listing_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'xml'; valid layouts: auto, reference, "
                                         "manifest, pairs"):
        load_dataset(tmp_path, layout="xml")
    result = runner.invoke(app, ["data", "inspect", str(tmp_path), "--layout", "xml"])
    assert result.exit_code == 1 and "unknown layout 'xml'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_layout_names_are_case_and_space_insensitive(tmp_path):
    root = small_pairs(tmp_path / "pairs")
    assert load_dataset(root, layout=" Pairs").layout == "pairs"


# --- the demo writer never damages a user's folder ----------------------------------------------

def test_demo_refuses_a_non_empty_folder_without_force(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=f"{tmp_path}: folder is not empty.*--force"):
        make_demo(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_demo_with_force_never_overwrites_a_file_it_did_not_create(tmp_path):
    (tmp_path / "BEACH").mkdir()
    mine = tmp_path / "BEACH" / "beach0_000.png"
    mine.write_bytes(b"my holiday photo")
    with pytest.raises(DataError, match=r"beach0_000\.png: already exists; the demo never "
                                        "overwrites"):
        make_demo(tmp_path, force=True)
    assert mine.read_bytes() == b"my holiday photo"
    assert [p.name for p in (tmp_path / "BEACH").iterdir()] == ["beach0_000.png"]


def test_demo_writes_into_a_new_or_empty_folder_and_beside_other_files_with_force(tmp_path):
    make_demo(tmp_path / "new")
    assert len(load_pairs_folder(tmp_path / "new", check_files=False)) == 144
    (tmp_path / "empty").mkdir()
    make_demo(tmp_path / "empty")
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "notes.txt").write_text("mine")
    make_demo(tmp_path / "mixed", force=True)
    assert (tmp_path / "mixed" / "notes.txt").read_text() == "mine"
    with pytest.raises(DataError, match="already exists"):
        make_demo(tmp_path / "mixed", force=True)  # a second time: every file would clash


def test_cached_demo_is_reused_and_heals_a_half_written_folder(tmp_path):
    first = demo_data_path(tmp_path)
    stamp = (first / "BEACH" / "beach0_000.png").stat().st_mtime_ns
    assert demo_data_path(tmp_path) == first
    assert (first / "BEACH" / "beach0_000.png").stat().st_mtime_ns == stamp
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no staging leftovers
    shutil.rmtree(first / "CITY")
    (first / ".complete").unlink()  # as if killed mid-write
    assert demo_data_path(tmp_path) == first
    assert len(load_pairs_folder(first, check_files=False)) == 144


def test_every_file_the_pairs_loader_does_not_take_is_listed_with_why(tmp_path):
    from scenefusion.data.synthetic import make_pairs_folder

    root = make_pairs_folder(tmp_path / "pairs", classes=("BEACH", "CITY"), groups_per_class=2,
                             frames_per_group=2)
    nested = root / "BEACH" / "sub"
    nested.mkdir()
    (nested / "x_000.png").write_bytes((root / "BEACH" / "beach0_000.png").read_bytes())
    markup = root / "[bold]BEACH[" / "bold]"  # what a class named "[bold]BEACH[/bold]" becomes
    markup.mkdir(parents=True)
    (markup / "y_000.wav").write_bytes((root / "CITY" / "city0_000.wav").read_bytes())
    (root / "CITY" / "notes.txt").write_text("mine")
    (root / "README.md").write_text("about")
    (root / "CITY" / ".DS_Store").write_bytes(b"")  # hidden: not a data file
    dataset = load_dataset(root)
    reasons = {Path(s.path).relative_to(root).as_posix(): s.reason for s in dataset.skipped}
    assert "a folder inside class folder 'BEACH' (1 file(s) not read)" in reasons["BEACH/sub"]
    assert "class name cannot hold '/'" in reasons["[bold]BEACH[/bold]"]
    assert reasons["CITY/notes.txt"] == "not an image or audio file (.txt)"
    assert reasons["README.md"].startswith("not inside a class folder")
    assert "CITY/.DS_Store" not in reasons and "SYNTHETIC.txt" not in reasons
    assert len(dataset) == 8  # the real pairs are all kept
    shown = CliRunner().invoke(app, ["data", "inspect", str(root)], terminal_width=300)
    assert shown.exit_code == 0 and "BEACH/sub" in shown.output and "notes.txt" in shown.output
