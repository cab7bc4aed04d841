"""A damaged or contended feature cache heals instead of blocking.

Every unreadable chunk is logged with its path, moved into `quarantine/` and its items are
recomputed; a truncated ONNX export is exported again; a failed write names the folder and
leaves no temporary file; concurrent runs share one computation; Ctrl-C keeps what was computed.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from scenefusion.data import load_pairs_folder
from scenefusion.features import image as image_mod
from scenefusion.features import onnx as onnx_mod
from scenefusion.features import store as store_mod
from scenefusion.features.audio import AudioFeature, MfccParams
from scenefusion.features.extract import extract_audio, extract_images
from scenefusion.features.image import ImageExtractor, export_onnx
from scenefusion.features.store import CacheError, FeatureStore, FeatureTable

CALLS: list[Path] = []
INTERRUPT_AT: list[int] = []  # raise KeyboardInterrupt on this call number (1-based)


def fake_sound(path: Path, params: MfccParams) -> np.ndarray:
    """A cheap, deterministic stand-in for MFCCs: a function of the file's bytes."""
    CALLS.append(path)
    if INTERRUPT_AT and len(CALLS) == INTERRUPT_AT[0]:
        raise KeyboardInterrupt
    seed = int.from_bytes(Path(path).read_bytes()[-64:][:8], "little")
    return np.random.default_rng(seed).random((params.frames, params.channels), np.float32)


FEATURE = AudioFeature(MfccParams(), fake_sound, id="fake")


@pytest.fixture(autouse=True)
def fake_audio():
    """CALLS counts what `fake_sound` computed."""
    CALLS.clear()
    INTERRUPT_AT.clear()


@pytest.fixture()
def items(pairs_copy):
    return load_pairs_folder(pairs_copy).items  # 12 items


def _audio(items, store, **kw):
    return extract_audio(items, store, FEATURE, flush_every=4, **kw)


def _chunks(store: FeatureStore) -> list[Path]:
    return sorted((store.root / f"fake-{FEATURE.key()}").glob("chunk-*.npz"))


# --- damaged chunks ----------------------------------------------------------------------------

def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip_middle_byte(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


def _rewrite(p: Path, values_of) -> None:
    with np.load(p) as data:
        keys, values = data["keys"], data["values"]
    with p.open("wb") as fh:
        np.savez(fh, keys=keys, values=values_of(values))


DAMAGES = {
    "truncated": _truncate,
    "bad_crc": _flip_middle_byte,
    "zero_bytes": lambda p: p.write_bytes(b""),
    "not_a_zip": lambda p: p.write_bytes(b"garbage " * 50),
    "wrong_shape": lambda p: _rewrite(p, lambda v: v[:, :, :7]),
    "keys_values_lengths_differ": lambda p: _rewrite(p, lambda v: v[:-1]),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_chunk_is_quarantined_and_recomputed(damage, items, tmp_path, caplog):
    store = FeatureStore(tmp_path / "cache")
    clean = _audio(items, store)
    assert clean.computed == 12 and len(_chunks(store)) == 3
    bad = _chunks(store)[1]
    DAMAGES[damage](bad)
    CALLS.clear()
    with caplog.at_level(logging.WARNING, logger="scenefusion.features.store"):
        healed = _audio(items, store)
    assert (healed.computed, healed.reused) == (4, 8) and len(CALLS) == 4
    np.testing.assert_array_equal(healed.features, clean.features)
    assert healed.ok.all() and not healed.skipped
    assert str(bad) in caplog.text and "moved to" in caplog.text
    assert (bad.parent / "quarantine" / bad.name).is_file() and not bad.exists()
    if damage == "wrong_shape":
        assert "(4, 8, 7)" in caplog.text and "(8, 13)" in caplog.text
    again = _audio(items, store)  # healed for good: nothing left to warn about or compute
    assert (again.computed, again.reused) == (0, 12)


def test_bad_crc_damage_is_only_seen_when_values_are_read(items, tmp_path):
    """The case get_many must handle: keys read fine at index time, values do not."""
    store = FeatureStore(tmp_path / "cache")
    _audio(items, store)
    bad = _chunks(store)[0]
    _flip_middle_byte(bad)
    table = store.table("fake", FEATURE.key(), FEATURE.shape)
    assert len(table) == 12  # the index still lists the damaged chunk's keys
    keys = list(table._load_index())
    assert len(table.get_many(keys)) == 8  # its rows are dropped, the rest returned
    assert len(table) == 8 and (bad.parent / "quarantine" / bad.name).is_file()


def test_unmovable_damaged_chunk_is_ignored_without_looping(items, tmp_path, monkeypatch, caplog):
    store = FeatureStore(tmp_path / "cache")
    _audio(items, store)
    bad = _chunks(store)[0]
    _flip_middle_byte(bad)
    monkeypatch.setattr(store_mod.os, "replace", _raise(OSError(errno.EROFS, "Read-only")))
    table = store.table("fake", FEATURE.key(), FEATURE.shape)
    assert len(table.get_many(list(table._load_index()))) == 8
    assert "cannot move it aside" in caplog.text and str(bad) in caplog.text


def _raise(exc: BaseException):
    def fail(*args, **kwargs):
        raise exc
    return fail


# --- a truncated ONNX export --------------------------------------------------------------------

class TinyBackbone(nn.Module):
    """Stands in for a real backbone: its embedding is the per-channel mean."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _tiny_onnx_extractor(cache: Path) -> ImageExtractor:
    extractor = ImageExtractor("effnet_lite0", runtime="onnx", cache_dir=cache, threads=1)
    extractor._model = TinyBackbone()
    return extractor


def test_truncated_onnx_export_is_exported_again(tmp_path, caplog, monkeypatch):
    batch = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    first = _tiny_onnx_extractor(tmp_path)
    expected = first.embed(batch)
    path = first.onnx_path()
    _truncate(path)
    exports = []
    monkeypatch.setattr(image_mod, "export_onnx", lambda *a: exports.append(a) or export_onnx(*a))
    with caplog.at_level(logging.WARNING, logger="scenefusion.features.image"):
        healed = _tiny_onnx_extractor(tmp_path).embed(batch)
    np.testing.assert_allclose(healed, expected, rtol=1e-6)
    assert len(exports) == 1 and str(path) in caplog.text and "exporting it again" in caplog.text
    assert path.stat().st_size > 0 and not list(path.parent.glob("*.tmp"))


def test_export_that_still_does_not_load_is_a_clear_error_not_a_loop(tmp_path, monkeypatch):
    class Broken(Exception):
        pass

    monkeypatch.setattr(onnx_mod, "new_session", _raise(Broken("INVALID_PROTOBUF")))
    extractor = _tiny_onnx_extractor(tmp_path)
    with pytest.raises(CacheError, match="cannot load the fresh export.*INVALID_PROTOBUF.*torch"):
        extractor.embed(torch.zeros(1, 3, 224, 224))
    assert extractor.onnx_path().is_file()  # exported once more, then given up


def test_failed_onnx_export_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "onnx" / "x.onnx"

    def half_written(model, args, f, **kw):
        Path(f).write_bytes(b"\x08\x07partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.onnx, "export", half_written)
    with pytest.raises(OSError, match="No space left"):
        export_onnx(TinyBackbone(), 32, path)
    assert list(path.parent.iterdir()) == []


# --- failed writes and stale temporary files ----------------------------------------------------

def test_full_disk_raises_a_clear_error_and_leaves_no_temp_file(tmp_path, monkeypatch):
    table = FeatureStore(tmp_path).table("x", "p", (3,))

    def savez_then_enospc(fh, **arrays):
        fh.write(b"PK\x03\x04 half a chunk")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod.np, "savez", savez_then_enospc)
    with pytest.raises(CacheError) as info:
        table.put_many(["a"], np.ones((1, 3), np.float32))
    message = str(info.value)
    assert message.startswith(str(table.folder)) and "No space left on device" in message
    assert "--cache" in message and isinstance(info.value, ValueError)
    assert list(table.folder.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_cache_fails_up_front_and_on_write(items, tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o555)
    try:
        store = FeatureStore(root)
        pattern = f"{re.escape(str(root))}.*not writable.*Permission denied"
        with pytest.raises(CacheError, match=pattern):
            store.check_writable()
        with pytest.raises(CacheError, match="cannot write to the feature cache.*Permission"):
            _audio(items, store)
        assert list(root.rglob("*")) == []
    finally:
        root.chmod(0o755)


def test_check_writable_passes_and_leaves_nothing(tmp_path):
    store = FeatureStore(tmp_path / "new" / "cache")
    assert store.check_writable() == store.root and list(store.root.iterdir()) == []


def test_stale_temporary_chunks_are_removed_fresh_ones_kept(tmp_path):
    table = FeatureStore(tmp_path).table("x", "p")
    table.folder.mkdir(parents=True)
    old, fresh = table.folder / ".chunk-old.npz.tmp", table.folder / ".chunk-new.npz.tmp"
    old.write_bytes(b"left by a kill")
    fresh.write_bytes(b"being written by another process")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert len(table) == 0
    assert not old.exists() and fresh.exists()


# --- concurrent runs ----------------------------------------------------------------------------

def test_run_that_waited_for_the_lock_reuses_the_other_runs_work(items, tmp_path, monkeypatch):
    """Deterministic: the other run fills the table while this one waits for the lock."""
    store = FeatureStore(tmp_path / "cache")
    original = FeatureTable.locked
    other: list = []

    def other_run_first(self):
        if not other:
            other.append(None)  # its own locking goes straight through
            other[0] = _audio(items, FeatureStore(store.root))
        return original(self)

    monkeypatch.setattr(FeatureTable, "locked", other_run_first)
    mine = _audio(items, store)
    assert other[0].computed == 12 and len(CALLS) == 12
    assert (mine.computed, mine.reused) == (0, 12)
    assert len(_chunks(store)) == 3  # nothing stored twice
    np.testing.assert_array_equal(mine.features, other[0].features)


def _extract_in_child(items, root, start, results) -> None:
    start.wait()
    out = _audio(items, FeatureStore(root))
    results.put(out.computed)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_two_concurrent_processes_compute_each_item_once(items, tmp_path):
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_extract_in_child, args=(items, tmp_path, start, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    computed = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert computed == [0, 12]
    assert len(_chunks(FeatureStore(tmp_path))) == 3


def test_lock_is_exclusive_between_processes(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    table = FeatureStore(tmp_path).table("x", "p")
    with table.locked():
        with open(table.folder / ".lock", "rb") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(table.folder / ".lock", "rb") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on exit


# --- Ctrl-C keeps what was computed -------------------------------------------------------------

def test_interrupted_audio_extraction_keeps_computed_rows(items, tmp_path):
    store = FeatureStore(tmp_path / "cache")
    INTERRUPT_AT.append(7)
    with pytest.raises(KeyboardInterrupt):
        extract_audio(items, store, FEATURE, flush_every=256)
    table = store.table("fake", FEATURE.key(), FEATURE.shape)
    assert len(table) == 6
    INTERRUPT_AT.clear()
    resumed = extract_audio(items, store, FEATURE)
    assert (resumed.computed, resumed.reused) == (6, 6)
    assert not list(store.root.rglob("*.tmp"))


class FakeImageExtractor:
    """What extract_images needs of an extractor, without a network: per-channel means."""

    id, dim = "fake_image", 3

    def params_key(self) -> str:
        return "v1"

    def preprocessor(self):
        return _to_tensor

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        return batch.mean(dim=(2, 3)).numpy()


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.resize((8, 8)), np.float32).transpose(2, 0, 1))


def test_interrupted_image_extraction_keeps_computed_rows(items, tmp_path):
    store = FeatureStore(tmp_path / "cache")

    def stop_after_8(done, total):
        if done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_images(items, FakeImageExtractor(), store, batch_size=4, num_workers=0,
                       flush_every=256, progress=stop_after_8)
    resumed = extract_images(items, FakeImageExtractor(), store, batch_size=4, num_workers=0)
    assert (resumed.computed, resumed.reused) == (4, 8)
