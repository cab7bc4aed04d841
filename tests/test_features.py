"""Image backbones registry, MFCC sequences, and the resumable feature store."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from sklearn.datasets import load_sample_images
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.data import load_pairs_folder
from scenefusion.features.audio import AUDIO_FEATURES, audio_feature
from scenefusion.features.audio.mfcc import mfcc_seconds, mfcc_sequence
from scenefusion.features.backbones import IMAGE_BACKBONES
from scenefusion.features.extract import extract_audio, extract_images
from scenefusion.features.image import ImageExtractor, preprocess
from scenefusion.features.store import FeatureStore
from scenefusion.models.sequences import SequenceStandardizer, pool_sequence


@pytest.fixture(scope="module")
def lite0() -> ImageExtractor:
    return ImageExtractor("effnet_lite0")


# --- image backbones ---------------------------------------------------------------------------

def test_effnet_lite0_recognises_real_photos(lite0):
    """Real ImageNet weights + the right normalisation: sensible top-5 on scikit-learn's photos."""
    images = [Image.fromarray(a) for a in load_sample_images().images]  # china.jpg, flower.jpg
    batch = torch.stack([lite0.preprocess(i) for i in images])
    top5 = np.argsort(-lite0.logits(batch), axis=1)[:, :5]
    temple_like = {442, 483, 497, 663, 698}  # bell cote, castle, church, monastery, palace
    flower_like = {985, 309}  # daisy, bee
    assert temple_like & set(top5[0].tolist())
    assert flower_like & set(top5[1].tolist())
    assert lite0.embed(batch).shape == (2, 1280)


def test_unknown_backbone_lists_choices():
    with pytest.raises(ValueError, match="unknown image backbone 'vgg99'.*effnet_lite0.*vgg19"):
        ImageExtractor("vgg99")


def test_vgg16_through_registry_with_weights_file(tmp_path):
    from scenefusion.features import backbones

    torch.manual_seed(0)
    path = tmp_path / "vgg16-random.pth"
    torch.save(backbones.vgg16().state_dict(), path)
    extractor = ImageExtractor("vgg16", weights=path, runtime="torch")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 260, 3), np.uint8))
    emb = extractor.embed(extractor.preprocess(image)[None])
    assert emb.shape == (1, 4096) and np.all(emb >= 0)  # fc7 after ReLU
    key = extractor.params_key()
    assert key != ImageExtractor("vgg16", runtime="torch").params_key()  # the user file counts
    with open(path, "ab") as fh:  # other bytes, same file name: other embeddings
        fh.write(b"\0")
    assert ImageExtractor("vgg16", weights=path, runtime="torch").params_key() != key


@pytest.mark.parametrize("backbone_id", IMAGE_BACKBONES.list())
def test_every_registered_backbone_embeds(backbone_id, tmp_path):
    """timm-style: every registry entry builds, preprocesses and embeds (random weights saved
    in the entry's own format stand in where the official file is absent)."""
    spec = IMAGE_BACKBONES.get(backbone_id)
    weights = None
    if spec.weights.source != "package":
        torch.manual_seed(0)
        weights = tmp_path / spec.weights.file_name
        torch.save(spec.builder().state_dict(), weights)
    extractor = ImageExtractor(backbone_id, weights=weights, runtime="torch", cache_dir=tmp_path)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 90, 3), np.uint8))
    x = extractor.preprocess(image)
    assert x.shape == (3, spec.input_size, spec.input_size)
    emb = extractor.embed(x[None])
    assert emb.shape == (1, spec.embedding_dim) and emb.dtype == np.float32
    assert np.isfinite(emb).all()
    if weights is not None:  # the given file is what was loaded
        assert extractor.model.weights_path == weights


def test_cache_key_follows_runtime_and_preprocessing():
    onnx, eager = ImageExtractor("effnet_lite0", runtime="onnx"), ImageExtractor(
        "effnet_lite0", runtime="torch")
    assert onnx.params_key() != eager.params_key()
    v1, v2 = ImageExtractor("resnet50.v1"), ImageExtractor("resnet50")
    assert v1.params_key() != v2.params_key()  # same architecture, other weights and resize


def test_preprocess_gives_input_size_for_any_aspect():
    for backbone_id in ("effnet_lite2", "inception_v3"):
        spec = IMAGE_BACKBONES.get(backbone_id)
        for shape in ((64, 200, 3), (300, 90, 3)):
            img = Image.fromarray(np.zeros(shape, np.uint8))
            assert preprocess(img, spec).shape == (3, spec.input_size, spec.input_size)


def test_torchvision_backbone_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr("torch.hub.download_url_to_file", _offline)
    with pytest.raises(FileNotFoundError, match=r"vgg19-dcbb9e9d\.pth") as err:
        ImageExtractor("vgg19").embed(torch.zeros(1, 3, 224, 224))
    assert str(tmp_path / "hub" / "checkpoints") in str(err.value)


def _offline(*args, **kwargs):
    raise OSError("no network in tests")


# --- audio -------------------------------------------------------------------------------------

def _tone(path, seconds, sr=16000, channels=1, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, sr)
    return path


def test_mfcc_sequence_matches_reference_shape_at_any_rate(tmp_path):
    a = mfcc_sequence(_tone(tmp_path / "a.wav", 1.0))
    b = mfcc_sequence(_tone(tmp_path / "b.wav", 1.0, sr=44100, channels=2))
    assert a.shape == b.shape == (8, 13)
    np.testing.assert_allclose(a, b, atol=0.05 * np.abs(a).max())  # same sound, resampled


def test_short_clip_loops_and_long_recording_splits_into_seconds(tmp_path):
    assert mfcc_sequence(_tone(tmp_path / "s.wav", 0.3)).shape == (8, 13)
    assert mfcc_seconds(_tone(tmp_path / "l.wav", 3.5)).shape == (3, 8, 13)


def test_deltas_triple_the_channels(tmp_path):
    seq = mfcc_sequence(_tone(tmp_path / "a.wav", 1.0), AUDIO_FEATURES.get("mfcc_deltas").params)
    assert seq.shape == (8, 39)


def test_standardizer_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    train = rng.normal(5, 2, (50, 8, 13))
    test = rng.normal(50, 2, (10, 8, 13))
    scaler = SequenceStandardizer().fit(train)
    assert abs(scaler.transform(train).mean()) < 1e-5
    assert scaler.transform(test).mean() > 10  # not re-centred on test data


def test_pool_sequence_is_mean_std_min_max():
    x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    pooled = pool_sequence(x)
    assert pooled.shape == (2, 8)
    np.testing.assert_allclose(pooled[0], [2, 3, x[0, :, 0].std(), x[0, :, 1].std(), 0, 1, 4, 5])


# --- store and extraction ----------------------------------------------------------------------

def test_cached_rerun_reuses_everything_and_gives_identical_features(pairs_root, tmp_path, lite0):
    ds = load_pairs_folder(pairs_root)
    store = FeatureStore(tmp_path / "cache")
    first = extract_images(ds.items, lite0, store, batch_size=8, num_workers=0)
    again = extract_images(ds.items, lite0, store, batch_size=8, num_workers=0)
    assert (first.computed, first.reused) == (36, 0)
    assert (again.computed, again.reused) == (0, 36)
    np.testing.assert_array_equal(first.features, again.features)
    a1, a2 = extract_audio(ds.items, store, audio_feature("mfcc")), extract_audio(
        ds.items, store, audio_feature("mfcc"))
    assert (a1.computed, a2.reused) == (36, 36) and a1.features.shape == (36, 8, 13)
    np.testing.assert_array_equal(a1.features, a2.features)


def test_killed_run_resumes_without_recomputing(pairs_root, tmp_path, lite0):
    ds = load_pairs_folder(pairs_root)
    store = FeatureStore(tmp_path / "cache")

    def die_after_12(done, total):
        if done >= 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_images(ds.items, lite0, store, batch_size=4, num_workers=0, flush_every=4,
                       progress=die_after_12)
    resumed = extract_images(ds.items, lite0, store, batch_size=4, num_workers=0)
    assert resumed.reused == 12 and resumed.computed == 24  # flushed chunks survive the kill
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_changed_file_is_recomputed_and_corrupt_one_skipped(pairs_copy, tmp_path, lite0):
    ds = load_pairs_folder(pairs_copy)
    store = FeatureStore(tmp_path / "cache")
    extract_images(ds.items, lite0, store, num_workers=0)
    target = ds.items[0].image
    Image.new("RGB", (64, 64), (255, 0, 0)).save(target)
    ds.items[1].image.write_bytes(b"broken after the data check")
    res = extract_images(ds.items, lite0, store, num_workers=0)
    assert res.computed == 1 and res.reused == 10
    assert not res.ok[1] and "not a readable image" in res.skipped[0].reason


def test_leftover_temp_and_unreadable_chunks_are_ignored(tmp_path):
    store = FeatureStore(tmp_path)
    table = store.table("x", "p")
    table.put_many(["a", "b"], np.ones((2, 3), np.float32))
    (table.folder / ".chunk-dead.npz.tmp").write_bytes(b"half written")
    (table.folder / "chunk-bad.npz").write_bytes(b"not a zip")
    fresh = store.table("x", "p")
    assert set(fresh.get_many(["a", "b", "c"])) == {"a", "b"}


def test_extract_cli_reports_computed_and_reused(pairs_root, tmp_path):
    runner = CliRunner()
    args = ["extract", str(pairs_root), "--cache", str(tmp_path / "c")]
    first = runner.invoke(app, args)
    second = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "effnet_lite0" in first.output and "│       36 │      0 │" in first.output
    assert "│        0 │     36 │" in second.output


def test_onnx_and_torch_runtimes_agree_and_export_is_cached(tmp_path):
    onnx = ImageExtractor("effnet_lite0", runtime="onnx", cache_dir=tmp_path)
    eager = ImageExtractor("effnet_lite0", runtime="torch", cache_dir=tmp_path)
    batch = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    a, b = onnx.embed(batch), eager.embed(batch)
    np.testing.assert_allclose(a, b, atol=1e-4 * np.abs(b).max())
    assert onnx.onnx_path().is_file() and onnx.onnx_path().parent == tmp_path / "onnx"
    again = ImageExtractor("effnet_lite0", runtime="onnx", cache_dir=tmp_path)
    np.testing.assert_array_equal(again.embed(batch), a)
    assert again._model is None  # the cached graph was used: torch model never built


def test_unknown_runtime_is_rejected_and_engine_still_works():
    with pytest.raises(ValueError, match="unknown runtime 'tpu'"):
        ImageExtractor("effnet_lite0", runtime="tpu")
    with pytest.warns(DeprecationWarning, match="runtime"):
        assert ImageExtractor("effnet_lite0", engine="torch").runtime == "torch"


def test_interrupted_extract_says_it_can_resume(pairs_root, tmp_path, monkeypatch):
    import scenefusion.features.extract as extract_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(extract_module, "extract_images", interrupted)
    result = CliRunner().invoke(app, ["extract", str(pairs_root), "--cache", str(tmp_path)])
    assert result.exit_code == 130
    assert "interrupted" in result.output and "resumes" in result.output


def test_an_audio_feature_can_use_seconds_of_context_around_each_item(tmp_path):
    """`ID@Ns` is the same representation of N seconds (clips from `data from-video
    --audio-seconds N`): its shape and cache key follow; malformed suffixes are named."""
    from scenefusion.features.audio import audio_feature

    one, three = audio_feature("logmel"), audio_feature("logmel@3s")
    assert one.shape == (100, 64) and three.shape == (300, 64)
    assert three.key() != one.key() and audio_feature("logmel@1s").key() == one.key()
    wav = _tone(tmp_path / "a.wav", 3.0)
    assert three(wav).shape == (300, 64)
    for bad, message in [("logmel@3", "ID@Ns"), ("logmel@0s", "1 to 30"),
                         ("nope@3s", "unknown audio feature")]:
        with pytest.raises(ValueError, match=message):
            audio_feature(bad)


def test_context_beyond_the_reference_sets_one_second_is_refused(tmp_path):
    from scenefusion.data.items import Item
    from scenefusion.features.extract import extract_audio
    from scenefusion.features.store import FeatureStore

    item = Item(id="a", label="x", group="g", mfcc=np.zeros((8, 13), np.float32))
    with pytest.raises(ValueError, match="only 1 s of precomputed MFCCs"):
        extract_audio([item], FeatureStore(tmp_path), audio_feature("mfcc@3s"))
    for other in ("logmel", "mfcc40", "aisfx"):  # would silently have used the MFCCs
        with pytest.raises(ValueError, match="only precomputed 8x13 MFCC rows"):
            extract_audio([item], FeatureStore(tmp_path), audio_feature(other))
    shipped = extract_audio([item], FeatureStore(tmp_path), audio_feature("mfcc"))
    assert shipped.features.shape == (1, 8, 13)


def test_the_config_accepts_audio_context_and_names_a_bad_one():
    from scenefusion.config import ConfigError, ExperimentConfig, with_overrides

    config = with_overrides(ExperimentConfig(), **{"features.audio": "mfcc@2s"})
    assert config.features.audio == "mfcc@2s"
    with pytest.raises((ConfigError, ValueError), match="ID@Ns"):
        with_overrides(ExperimentConfig(), **{"features.audio": "mfcc@two"})
