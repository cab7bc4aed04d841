"""The `aisfx` audio feature: finding and safely loading the pretrained weights, the embedding,
the ONNX export cache, and one-step sequences in pool_sequence.

Runs without the aisfx package: a random state_dict saved in the package's checkpoint format
stands in (the real file is tested where `pip install --no-deps aisfx==0.1.2` put it)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from scenefusion.data.validate import DataError
from scenefusion.features.audio import AUDIO_FEATURES, aisfx, aisfx_weights, audio_feature
from scenefusion.features.backbones import (
    WeightsLoadError,
    WeightsMismatchError,
    WeightsNotFoundError,
)
from scenefusion.models.sequences import pool_sequence

SR = 44100
REAL = aisfx_weights._packaged_checkpoint()
needs_real = pytest.mark.skipif(REAL is None or not REAL.is_file(),
                                reason="aisfx not installed (pip install --no-deps aisfx==0.1.2)")


def _wav(path, seconds=1.0, sr=SR, kind="tone", freq=440.0, channels=1):
    n = int(seconds * sr)
    t = np.arange(n) / sr
    rng = np.random.default_rng(0)
    if kind == "tone":
        wave = 0.3 * np.sin(2 * np.pi * freq * t)
    elif kind == "noise":
        wave = 0.3 * rng.normal(size=n)
    else:  # clicks
        wave = (np.arange(n) % (sr // 10) < 50) * 0.8 + 0.001 * rng.normal(size=n)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    sf.write(path, data.astype(np.float32), sr)
    return path


def _random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """The package's state_dict layout with random values: embedding net + a classifier head."""
    torch.manual_seed(seed)
    net = aisfx.build_embedding_net()
    for module in net.modules():  # non-trivial batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = {f"embedding_net.{k}": v.clone() for k, v in net.state_dict().items()}
    state["fc.0.0.weight"] = torch.randn(256, 512)
    return state


def _save(path, state, extra=None):
    """Saved like aisfx's checkpoint.pth: a (state_dict, datasets) tuple."""
    torch.save((state, extra if extra is not None else {"prosfx": (0, 78)}), path)
    return path


@pytest.fixture()
def no_package(monkeypatch):
    """As on a machine without the aisfx package and without $SCENEFUSION_AISFX_WEIGHTS."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "aisfx" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(aisfx_weights.importlib.util, "find_spec", find_spec)
    monkeypatch.delenv(aisfx.ENV_WEIGHTS, raising=False)


@pytest.fixture()
def random_weights(tmp_path, no_package, monkeypatch):
    path = _save(tmp_path / "random-aisfx.pth", _random_state())
    monkeypatch.setenv(aisfx.ENV_WEIGHTS, str(path))
    return path


# --- the real checkpoint -----------------------------------------------------------------------

@needs_real
def test_real_checkpoint_loads_through_the_allow_list_and_embeds(tmp_path, monkeypatch):
    monkeypatch.delenv(aisfx.ENV_WEIGHTS, raising=False)
    assert aisfx.find_aisfx_checkpoint() == REAL
    assert aisfx.checkpoint_digest(REAL) == aisfx.OFFICIAL_SHA256
    assert sorted(torch.serialization.get_unsafe_globals_in_checkpoint(REAL)) == [
        "numpy.core.multiarray.scalar", "numpy.dtype"]  # + Int64DType, built from numpy.dtype
    state = aisfx.load_aisfx_state(REAL)
    assert len(state) == 48 and state["conv_block4.conv2.weight"].shape == (512, 512, 3, 3)
    feature = AUDIO_FEATURES.get("aisfx")
    emb = {kind: feature(_wav(tmp_path / f"{kind}.wav", kind=kind))
           for kind in ("tone", "noise", "clicks")}
    for e in emb.values():
        assert e.shape == (1, 512) and e.dtype == np.float32 and np.isfinite(e).all()
    unit = {k: v[0] / np.linalg.norm(v[0]) for k, v in emb.items()}
    assert unit["tone"] @ unit["noise"] < 0.95 and unit["tone"] @ unit["clicks"] < 0.95
    low = feature(_wav(tmp_path / "low.wav", freq=220.0))[0]
    assert unit["tone"] @ (low / np.linalg.norm(low)) > unit["tone"] @ unit["noise"]


@needs_real
def test_onnx_and_torch_runtimes_agree_on_the_real_weights(tmp_path, monkeypatch):
    monkeypatch.delenv(aisfx.ENV_WEIGHTS, raising=False)
    wav = _wav(tmp_path / "a.wav", kind="clicks")
    onnx = aisfx.aisfx_embedding(wav, aisfx.AisfxParams(runtime="onnx"))
    eager = aisfx.aisfx_embedding(wav, aisfx.AisfxParams(runtime="torch"))
    np.testing.assert_allclose(onnx, eager, atol=1e-4 * np.abs(eager).max())


# --- without the package: a random checkpoint in the same format -------------------------------

@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_random_checkpoint_in_the_package_format_gives_the_declared_shape(random_weights,
                                                                          tmp_path, runtime):
    params = aisfx.AisfxParams(runtime=runtime)
    emb = aisfx.aisfx_embedding(_wav(tmp_path / "a.wav", channels=2), params)
    assert emb.shape == AUDIO_FEATURES.get("aisfx").shape == (1, 512)
    assert emb.dtype == np.float32 and np.isfinite(emb).all() and (emb >= 0).all()  # after ReLU
    assert aisfx.find_aisfx_checkpoint() == random_weights


def test_network_is_fully_convolutional_and_matches_a_plain_reading_of_the_paper(random_weights):
    """Our module against the architecture written out with functional ops, at several lengths."""
    state = aisfx.load_aisfx_state(random_weights)
    net = aisfx.load_aisfx_net()
    F = torch.nn.functional

    def reference(x):
        x = x.unsqueeze(1)
        for i in range(1, 5):
            for j in (1, 2):
                p = f"conv_block{i}."
                x = F.conv2d(x, state[f"{p}conv{j}.weight"], padding=1)
                x = F.batch_norm(x, state[f"{p}bn{j}.running_mean"], state[f"{p}bn{j}.running_var"],
                                 state[f"{p}bn{j}.weight"], state[f"{p}bn{j}.bias"], eps=1e-5)
                x = F.relu(x)
            if i < 4:
                x = F.max_pool2d(x, 2)
        return x.mean(dim=3).max(dim=2).values

    for frames in (8, 44, 101):
        x = torch.rand(2, frames, 96, generator=torch.Generator().manual_seed(frames))
        with torch.inference_mode():
            np.testing.assert_allclose(net(x).numpy(), reference(x).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="T >= 8"):
        aisfx.embed_frames(np.zeros((1, 7, 96), np.float32))


def test_preprocessing_is_the_papers_log_mel_input():
    sr = 44100
    t = np.arange(sr) / sr
    clip = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    frames = aisfx.aisfx_frames(clip)
    assert frames.shape == (44, 96) and frames.dtype == np.float32  # 1 + 44100 // 1024 frames
    np.testing.assert_allclose(aisfx.aisfx_frames(clip * 0.01), frames, atol=1e-4)  # peak norm
    assert frames.min() >= 0 and 0.5 < frames.max() <= 1.2  # min-max scaled, paper's constants
    import librosa

    centres = librosa.mel_frequencies(n_mels=98, fmin=0, fmax=22050, htk=True)[1:-1]
    assert abs(int(frames.mean(axis=0).argmax()) - int(np.abs(centres - 1000).argmin())) <= 1

    bands = librosa.filters.mel(sr=sr, n_fft=2048, n_mels=96, fmin=0, fmax=22050, htk=True,
                                norm=1.0)
    np.testing.assert_allclose(bands.sum(axis=1), 1.0, rtol=1e-5)  # unit_sum, as Essentia


def test_short_and_bad_audio_behave_as_for_every_audio_feature(random_weights, tmp_path):
    feature = AUDIO_FEATURES.get("aisfx")
    assert feature(_wav(tmp_path / "short.wav", seconds=0.3)).shape == (1, 512)  # looped to 1 s
    for name, problem in (("tiny.wav", "too short"), ("cut.wav", "truncated"),
                          ("junk.wav", "not a readable audio file")):
        path = tmp_path / name
        if name == "tiny.wav":
            _wav(path, seconds=0.1)  # under read_audio's 0.25 s minimum, as for mfcc
        elif name == "cut.wav":
            _wav(path)
            path.write_bytes(path.read_bytes()[: 20000])
        else:
            path.write_bytes(b"RIFF but not really a wave file")
        with pytest.raises(DataError, match=problem):
            feature(path)


def test_extraction_through_the_store_skips_a_corrupt_file(random_weights, pairs_copy, tmp_path):
    from scenefusion.data import load_pairs_folder
    from scenefusion.features.extract import extract_audio
    from scenefusion.features.store import FeatureStore

    ds = load_pairs_folder(pairs_copy)
    ds.items[1].audio.write_bytes(b"broken")
    store = FeatureStore(tmp_path / "cache")
    first = extract_audio(ds.items, store, audio_feature("aisfx"))
    assert first.features.shape == (len(ds.items), 1, 512)
    assert not first.ok[1] and first.ok.sum() == len(ds.items) - 1 and len(first.skipped) == 1
    again = extract_audio(ds.items, store, audio_feature("aisfx"))
    assert again.reused == len(ds.items) - 1 and again.computed == 0
    np.testing.assert_array_equal(first.features, again.features)


def test_the_onnx_export_goes_to_the_feature_store_that_was_chosen(random_weights, pairs_copy,
                                                                   tmp_path, monkeypatch):
    """`--cache DIR` keeps everything extraction writes in DIR, the aisfx graph included."""
    from scenefusion.data import load_pairs_folder
    from scenefusion.features.extract import extract_audio
    from scenefusion.features.store import FeatureStore
    from scenefusion.paths import default_cache_dir

    monkeypatch.setenv("SCENEFUSION_CACHE", str(tmp_path / "default"))
    monkeypatch.setattr(aisfx, "_SESSIONS", {})
    extract_audio(load_pairs_folder(pairs_copy).items[:2], FeatureStore(tmp_path / "chosen"),
                  audio_feature("aisfx"))
    assert [p.name for p in (tmp_path / "chosen" / "onnx").glob("aisfx-*.onnx")]
    assert not (tmp_path / "default").exists()
    assert default_cache_dir() == tmp_path / "default"  # only while extracting


# --- refusing bad checkpoints ------------------------------------------------------------------

class _Payload:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_checkpoint_with_an_arbitrary_object_is_refused_and_never_runs(tmp_path, zipfile):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pth"
    torch.save((_random_state(), _Payload(marker)), path,
               _use_new_zipfile_serialization=zipfile)
    untrusted = aisfx.UntrustedWeightsError
    with pytest.raises(untrusted, match=f"refusing to load {path}: .*allow-list") as err:
        aisfx.load_aisfx_state(path)
    assert isinstance(err.value, WeightsLoadError)
    assert "system" in str(err.value)
    with pytest.raises(untrusted):
        aisfx.load_aisfx_net(path)
    assert not marker.exists()


def test_numpy_globals_beyond_the_official_files_are_refused(tmp_path):
    """The allow-list is exactly what aisfx 0.1.2's file needs (int64 scalars, under numpy 1's
    or numpy 2's module name): a scalar of another dtype is outside it."""
    path = _save(tmp_path / "float.pth", _random_state(), {"x": (np.float64(0.5), 3)})
    with pytest.raises(aisfx.UntrustedWeightsError,
                       match=f"refusing to load {path}: .*Float64DType"):
        aisfx.load_aisfx_state(path)


def test_the_official_layout_resaved_under_numpy_2_loads(tmp_path):
    """torch.save under numpy 2 pickles the official file's int64 scalars as
    ``numpy._core.multiarray.scalar``: the same three globals, so the file is accepted."""
    path = _save(tmp_path / "np2.pth", _random_state(), {"prosfx": (np.int64(0), np.int64(78))})
    assert "numpy._core.multiarray.scalar" in torch.serialization.get_unsafe_globals_in_checkpoint(
        path)
    state = aisfx.load_aisfx_state(path)
    assert state["conv_block4.conv2.weight"].shape == (512, 512, 3, 3)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.pop("embedding_net.conv_block3.bn1.running_var"),
     "missing tensors embedding_net.conv_block3.bn1.running_var"),
    (lambda s: s.__setitem__("embedding_net.conv_block1.conv1.weight", torch.zeros(64, 1, 5, 5)),
     r"conv_block1.conv1.weight has shape \(64, 1, 5, 5\), the network needs \(64, 1, 3, 3\)"),
    (lambda s: s.__setitem__("embedding_net.conv_block5.conv1.weight", torch.zeros(1)),
     "unexpected tensors embedding_net.conv_block5.conv1.weight"),
    (lambda s: s["embedding_net.conv_block2.bn2.weight"].fill_(float("nan")),
     "conv_block2.bn2.weight holds NaN"),
], ids=["missing", "shape", "extra", "nan"])
def test_missing_or_misshaped_tensors_are_refused_naming_the_file(tmp_path, edit, message):
    state = _random_state()
    edit(state)
    path = _save(tmp_path / "bad.pth", state)
    with pytest.raises(WeightsMismatchError, match=f"refusing to load {path}: .*{message}"):
        aisfx.load_aisfx_state(path)


def test_unreadable_checkpoints_are_refused_naming_the_file(tmp_path):
    good = _save(tmp_path / "good.pth", _random_state())
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:5000])
    wrong = tmp_path / "list.pth"
    torch.save([1, 2, 3], wrong)
    for path, reason in ((cut, "not a PyTorch checkpoint|cut short"),
                         (wrong, "it holds a list, not aiSFX.s")):
        with pytest.raises(WeightsLoadError, match=f"refusing to load {path}: ({reason})"):
            aisfx.load_aisfx_state(path)
    bare = tmp_path / "bare.pth"  # a plain state_dict without the prefix also loads
    torch.save({k.removeprefix("embedding_net."): v for k, v in _random_state().items()
                if k.startswith("embedding_net.")}, bare)
    assert len(aisfx.load_aisfx_state(bare)) == 48


# --- finding the weights -----------------------------------------------------------------------

def test_no_checkpoint_anywhere_says_how_to_install_it(no_package, tmp_path):
    with pytest.raises(WeightsNotFoundError) as err:
        aisfx.find_aisfx_checkpoint()
    assert "pip install --no-deps aisfx==0.1.2" in str(err.value)
    assert aisfx.ENV_WEIGHTS in str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(WeightsNotFoundError, match="pip install --no-deps aisfx"):
        AUDIO_FEATURES.get("aisfx")(_wav(tmp_path / "a.wav"))  # not a per-file DataError


def test_search_order_is_explicit_then_environment_then_package(random_weights, tmp_path,
                                                                monkeypatch):
    other = _save(tmp_path / "other.pth", _random_state(1))
    assert aisfx.find_aisfx_checkpoint(other) == other
    assert aisfx.find_aisfx_checkpoint() == random_weights
    with pytest.raises(WeightsNotFoundError, match="nowhere.pth"):
        aisfx.find_aisfx_checkpoint(tmp_path / "nowhere.pth")
    monkeypatch.setenv(aisfx.ENV_WEIGHTS, str(tmp_path / "gone.pth"))
    with pytest.raises(WeightsNotFoundError, match=f"{aisfx.ENV_WEIGHTS} names .*gone.pth"):
        aisfx.find_aisfx_checkpoint()


# --- ONNX export cache, cache key, import cost -------------------------------------------------

def test_onnx_export_is_cached_per_weights_and_a_damaged_one_is_rebuilt(random_weights,
                                                                         tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEFUSION_CACHE", str(tmp_path / "cache"))
    wav = _wav(tmp_path / "a.wav", kind="noise")
    first = aisfx.aisfx_embedding(wav)
    path = aisfx.onnx_path()
    assert path.is_file() and path.parent == tmp_path / "cache" / "onnx"
    assert aisfx.onnx_path(_save(tmp_path / "other.pth", _random_state(1))) != path
    path.write_bytes(b"damaged")
    monkeypatch.setattr(aisfx, "_SESSIONS", {})
    np.testing.assert_array_equal(aisfx.aisfx_embedding(wav), first)
    assert path.stat().st_size > 1000  # exported again
    np.testing.assert_allclose(aisfx.aisfx_embedding(wav, aisfx.AisfxParams(runtime="torch")),
                               first, atol=1e-4 * np.abs(first).max())


def test_cache_key_covers_runtime_and_preprocessing(tmp_path, monkeypatch):
    monkeypatch.setenv(aisfx.ENV_WEIGHTS, str(_save(tmp_path / "w.pth", _random_state(0))))
    feature = AUDIO_FEATURES.get("aisfx")
    key = feature.key()
    for change in ({"runtime": "torch"}, {"n_mels": 64}, {"norm_max": 10.0}):
        assert dataclasses.replace(feature, params=dataclasses.replace(
            feature.params, **change)).key() != key
    with pytest.raises(ValueError, match="unknown aiSFX runtime 'tpu'"):
        aisfx.AisfxParams(runtime="tpu")


def test_importing_the_audio_features_does_not_import_torch():
    code = ("import sys, scenefusion.features.audio as a; a.AUDIO_FEATURES.get('aisfx'); "
            "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- one-step sequences ------------------------------------------------------------------------

def test_pool_sequence_returns_a_one_step_sequence_as_it_is():
    x = np.random.default_rng(0).normal(size=(5, 1, 512)).astype(np.float32)
    pooled = pool_sequence(x)
    assert pooled.shape == (5, 512) and pooled.dtype == np.float32
    np.testing.assert_array_equal(pooled, x[:, 0])
    assert pool_sequence(np.repeat(x, 2, axis=1)).shape == (5, 4 * 512)  # T > 1: unchanged


def test_classical_models_take_clip_embeddings_as_they_are():
    from scenefusion.models import make_model

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    X = (rng.normal(size=(40, 1, 16)) + y[:, None, None]).astype(np.float32)
    model = make_model("logreg").fit(X, y)
    assert model.n_features_in_ == 16 and (model.predict(X) == y).mean() > 0.9


def test_cache_key_names_the_weight_file_in_use(tmp_path, monkeypatch, no_package):
    """Features from another checkpoint are never served from the cache of the official one:
    the key carries the file's SHA-256 unless it is aisfx 0.1.2's own."""
    feature = AUDIO_FEATURES.get("aisfx")
    keys = []
    for seed in (0, 1):
        path = _save(tmp_path / f"w{seed}.pth", _random_state(seed))
        monkeypatch.setenv(aisfx.ENV_WEIGHTS, str(path))
        keys.append(feature.key())
        assert feature.key() == keys[-1]  # stable for one file
    assert keys[0] != keys[1]
    monkeypatch.delenv(aisfx.ENV_WEIGHTS)
    with pytest.raises(WeightsNotFoundError, match="pip install --no-deps aisfx"):
        feature.key()


@needs_real
def test_the_official_weights_keep_one_stable_cache_key(monkeypatch):
    monkeypatch.delenv(aisfx.ENV_WEIGHTS, raising=False)
    assert aisfx.AisfxParams().weights_identity() is None


def test_windows_embed_each_second_in_order(random_weights, tmp_path):
    """aisfx_windows@Ns: one embedding per second, the same as aiSFX on that second alone."""
    from scenefusion.features.audio import audio_feature

    tone, noise = _wav(tmp_path / "tone.wav", kind="tone"), _wav(tmp_path / "noise.wav",
                                                                 kind="noise")
    both = tmp_path / "both.wav"
    sf.write(both, np.concatenate([sf.read(tone)[0], sf.read(noise)[0]]).astype(np.float32), SR)
    windows = audio_feature("aisfx_windows@2s")
    seq = windows(both)
    assert seq.shape == windows.shape == (2, 512)
    single = AUDIO_FEATURES.get("aisfx")
    np.testing.assert_allclose(seq[0], single(tone)[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(seq[1], single(noise)[0], rtol=1e-4, atol=1e-5)
    assert AUDIO_FEATURES.get("aisfx_windows").key() != single.key()  # cached apart
