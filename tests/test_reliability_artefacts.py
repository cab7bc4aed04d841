"""A damaged artefact in the cache is rebuilt, never used: exports, int8 models, merged weights
and cut videos carry a sha256 seal checked when they are loaded (a flipped byte still parses,
as wrong numbers); a cut's list cannot point outside the cut; non-finite rows are never cached.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from test_quantize import TinyNet
from test_reliability_cache import FakeImageExtractor

from scenefusion import cache_integrity
from scenefusion.data import load_pairs_folder
from scenefusion.features.audio import AudioFeature, MfccParams
from scenefusion.features.backbones import effnet
from scenefusion.features.extract import extract_audio, extract_images
from scenefusion.features.image import ImageExtractor
from scenefusion.features.quantize import generated_images
from scenefusion.features.store import FeatureStore
from scenefusion.paths import cache_dir_in_use


def flip_64_bytes(path: Path) -> None:
    """Invert 64 bytes in the middle of a file: the damage a bad disk or a stray write does,
    which leaves a weight file or a graph parseable but its numbers wrong."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))


def _tiny(cache: Path, precision: str = "fp32", **kw) -> ImageExtractor:
    extractor = ImageExtractor("effnet_lite0", runtime="onnx", cache_dir=cache, threads=1,
                               precision=precision, **kw)
    extractor._model = TinyNet().eval()
    return extractor


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def _quarantined(path: Path) -> Path:
    return path.with_name(path.name + cache_integrity.CORRUPT_SUFFIX)


def test_flipped_bytes_in_an_onnx_export_are_exported_again(tmp_path, batch, caplog):
    first = _tiny(tmp_path)
    expected = first.embed(batch)
    path = first.onnx_path()
    assert cache_integrity.seal_path(path).is_file()
    flip_64_bytes(path)
    onnx.load(path)  # still parses: only the checksum can tell
    with caplog.at_level(logging.WARNING):
        healed = _tiny(tmp_path).embed(batch)
    np.testing.assert_allclose(healed, expected, rtol=1e-6)
    assert f"cached ONNX export {path} cannot be loaded" in caplog.text
    assert "does not match its sha256 checksum" in caplog.text
    assert "exporting it again" in caplog.text
    assert _quarantined(path).is_file() and cache_integrity.damage(path) is None


def test_an_export_without_a_checksum_is_exported_again(tmp_path, batch, caplog):
    first = _tiny(tmp_path)
    expected = first.embed(batch)
    cache_integrity.seal_path(first.onnx_path()).unlink()  # e.g. made by an older version
    with caplog.at_level(logging.WARNING):
        np.testing.assert_allclose(_tiny(tmp_path).embed(batch), expected, rtol=1e-6)
    assert "it has no checksum" in caplog.text
    assert cache_integrity.damage(first.onnx_path()) is None


def test_flipped_bytes_in_an_int8_model_are_quantised_again(tmp_path, batch, caplog):
    calibration = list(generated_images(4))
    first = _tiny(tmp_path, "int8", calibration_images=calibration)
    expected = first.embed(batch)
    path = first.int8_path()
    flip_64_bytes(path)
    onnx.load(path)
    with caplog.at_level(logging.WARNING):
        healed = _tiny(tmp_path, "int8", calibration_images=calibration).embed(batch)
    np.testing.assert_allclose(healed, expected, rtol=1e-5, atol=1e-6)
    assert f"cached int8 model {path} cannot be loaded" in caplog.text
    assert "quantising it again" in caplog.text and _quarantined(path).is_file()


def test_flipped_bytes_in_the_merged_lite_weights_are_merged_again(tmp_path, monkeypatch, caplog):
    # small stand-ins for the two packages' weight files: the merge code is the real one
    for name, seed in (("lite0", 0), ("lite2", 1)):
        state = {"conv.weight": torch.randn(64, 256, generator=torch.Generator().manual_seed(seed))}
        torch.save(state, tmp_path / f"{name}.pth")
        monkeypatch.setattr(effnet, f"{name}_file", lambda n=name: str(tmp_path / f"{n}.pth"))
    with cache_dir_in_use(tmp_path / "cache"):
        path = Path(effnet.pair_file())
        good = torch.load(path, weights_only=True)
        flip_64_bytes(path)
        damaged = torch.load(path, weights_only=True)  # loads: wrong numbers, no error
        assert not all(torch.equal(damaged[k], good[k]) for k in good)
        with caplog.at_level(logging.WARNING):
            assert Path(effnet.pair_file()) == path
    merged = torch.load(path, weights_only=True)
    assert merged.keys() == good.keys() and all(torch.equal(merged[k], good[k]) for k in good)
    assert f"cached merged weight file {path} cannot be loaded" in caplog.text
    assert "merging it again" in caplog.text and _quarantined(path).is_file()
    assert not list(path.parent.glob("*.tmp"))


def test_a_fresh_artefact_that_does_not_load_is_an_error_not_a_loop(tmp_path):
    builds = []

    def build(path: Path) -> None:
        builds.append(path)
        path.write_text("fresh")

    def load(path: Path) -> str:
        raise ValueError("never loads")

    with pytest.raises(ValueError, match="never loads"):
        cache_integrity.load_or_build(tmp_path / "a.bin", build, load)
    assert len(builds) == 1


def test_concurrent_loaders_build_an_artefact_once_and_never_judge_it_half_sealed(tmp_path):
    builds, loaded = [], []

    def slow_build(path: Path) -> None:  # the seal is written after this returns
        builds.append(path)
        time.sleep(0.2)
        path.write_text("artefact")

    def load(path: Path) -> None:
        loaded.append(path.read_text())

    workers = [threading.Thread(target=cache_integrity.load_or_build,
                                args=(tmp_path / "a.bin", slow_build, load)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(builds) == 1 and loaded == ["artefact"] * 3
    assert not _quarantined(tmp_path / "a.bin").exists()


def test_a_folder_checksum_sees_renamed_and_edited_files(tmp_path):
    folder = tmp_path / "cut"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"one")
    cache_integrity.seal(folder)
    assert cache_integrity.damage(folder) is None
    (folder / "a.jpg").rename(folder / "b.jpg")
    assert "does not match" in cache_integrity.damage(folder)
    (folder / "b.jpg").rename(folder / "a.jpg")
    (folder / "a.jpg").write_bytes(b"two")
    assert "does not match" in cache_integrity.damage(folder)


# --- cut videos ---------------------------------------------------------------------------------

@pytest.fixture()
def cut(tmp_path):
    pytest.importorskip("av")
    from videos import write_video

    from scenefusion.data.video_folder import VideoOptions, cut_cached

    video = write_video(tmp_path / "clip.mp4", seconds=2)
    options = VideoOptions(cache_dir=tmp_path / "cache")
    pairs = cut_cached(video, options)
    return video, options, pairs, cut_cached


def test_a_damaged_cut_is_cut_again(cut, caplog):
    video, options, pairs, cut_cached = cut
    image = pairs[0][0]
    good = image.read_bytes()
    flip_64_bytes(image)
    with caplog.at_level(logging.WARNING):
        again = cut_cached(video, options)
    assert again == pairs and image.read_bytes() == good
    assert "cached video cut" in caplog.text and "cutting it again" in caplog.text
    assert _quarantined(image.parent).is_dir()


@pytest.mark.parametrize("reseal", [False, True], ids=["seal-left", "seal-rewritten"])
def test_a_cut_list_naming_a_file_outside_the_cut_is_never_read(cut, tmp_path, caplog, reseal):
    video, options, pairs, cut_cached = cut
    folder = pairs[0][0].parent
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.jpg").write_bytes(b"secret")
    (folder / "cut.json").write_text(json.dumps(["../../../outside/leak"]))
    if reseal:  # whoever edits the cache can rewrite the checksum too: the path check holds
        cache_integrity.seal(folder)
    with caplog.at_level(logging.WARNING):
        again = cut_cached(video, options)
    assert again == pairs
    assert all(p.resolve().is_relative_to(folder.resolve()) for pair in again for p in pair)
    assert "cutting it again" in caplog.text
    if reseal:
        assert "names ../../../outside/leak.jpg, outside the cut's folder" in caplog.text


# --- non-finite rows ----------------------------------------------------------------------------

class NanOnDarkImages(FakeImageExtractor):
    """Embeds like FakeImageExtractor, but NaN for every image darker than the median."""

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        rows = super().embed(batch)
        rows[rows.mean(axis=1) < 128] = np.nan
        return rows


def test_non_finite_embeddings_are_named_skips_and_never_cached(pairs_copy, tmp_path):
    items = load_pairs_folder(pairs_copy).items
    store = FeatureStore(tmp_path / "cache")
    result = extract_images(items, NanOnDarkImages(), store, batch_size=4, num_workers=0)
    bad = {str(it.image) for it, ok in zip(items, result.ok, strict=True) if not ok}
    assert bad and len(bad) < len(items)
    assert {s.path for s in result.skipped} == bad
    assert all("fake_image embedding holds NaN" in s.reason for s in result.skipped)
    assert np.isfinite(result.features[result.ok]).all()
    table = store.table("fake_image", "v1", (3,))
    assert len(table) == len(items) - len(bad)
    again = extract_images(items, NanOnDarkImages(), store, batch_size=4, num_workers=0)
    assert (again.reused, again.computed, len(again.skipped)) == (len(table), 0, len(bad))


def test_non_finite_audio_features_are_named_skips(pairs_copy, tmp_path, monkeypatch):
    items = load_pairs_folder(pairs_copy).items
    first = items[0].audio

    def inf_for_the_first(path: Path, params: MfccParams) -> np.ndarray:
        value = np.inf if Path(path) == first else 0.5
        return np.full((params.frames, params.channels), value, np.float32)

    fake = AudioFeature(MfccParams(), inf_for_the_first, id="fake")
    result = extract_audio(items, FeatureStore(tmp_path / "cache"), fake)
    assert [s.path for s in result.skipped] == [str(first)] and not result.ok[0]
    assert "fake feature holds NaN or infinite values" in result.skipped[0].reason
    assert result.computed == len(items) - 1


def test_the_store_refuses_non_finite_rows(tmp_path):
    table = FeatureStore(tmp_path).table("x", "p", (2,))
    with pytest.raises(ValueError, match="NaN or infinite"):
        table.put_many(["a"], np.array([[1.0, np.nan]], np.float32))
    assert len(table) == 0
