"""``features.audio: auto`` picks the representation per kind of data and says so."""

from __future__ import annotations

from scenefusion.config import ExperimentConfig
from scenefusion.data import load_dataset
from scenefusion.data.synthetic import make_pairs_folder
from scenefusion.features.audio.auto import resolve_audio_feature


def _chosen(feature_id, dataset):
    """The id of the feature a run resolves to, and its note."""
    feature, why = resolve_audio_feature(feature_id, dataset)
    return feature.id, why


def test_auto_is_the_default_and_an_explicit_id_is_kept(tmp_path):
    assert ExperimentConfig().features.audio == "auto"
    data = load_dataset(make_pairs_folder(tmp_path / "p", groups_per_class=2,
                                          frames_per_group=1))
    assert _chosen("logmel", data) == ("logmel", None)


def test_raw_clips_get_aisfx_over_the_whole_clip_up_to_four_seconds(tmp_path, monkeypatch):
    from scenefusion.features.audio import auto

    monkeypatch.setattr(auto, "birdnet_available", lambda: False)
    short = load_dataset(make_pairs_folder(tmp_path / "short", groups_per_class=2,
                                           frames_per_group=1, seconds=1.0))
    assert _chosen("auto", short)[0] == "aisfx"
    long = load_dataset(make_pairs_folder(tmp_path / "long", groups_per_class=2,
                                          frames_per_group=1, seconds=4.0))
    chosen, why = _chosen("auto", long)
    assert chosen == "aisfx@4s" and "4.0 s typical" in why
    longer = load_dataset(make_pairs_folder(tmp_path / "longer", groups_per_class=1,
                                            frames_per_group=1, seconds=9.0))
    assert _chosen("auto", longer)[0] == "aisfx@4s"


def test_without_aisfx_weights_raw_clips_get_mfccs_and_the_note_says_why(tmp_path,
                                                                        monkeypatch):
    from scenefusion.features.audio import auto

    def missing():
        raise FileNotFoundError("no weights")

    monkeypatch.setattr(auto, "find_aisfx_checkpoint", missing)
    monkeypatch.setattr(auto, "birdnet_available", lambda: False)
    long = load_dataset(make_pairs_folder(tmp_path / "long", groups_per_class=2,
                                          frames_per_group=1, seconds=4.0))
    chosen, why = _chosen("auto", long)
    assert chosen == "mfcc@4s" and "pip install --no-deps aisfx" in why


def test_the_reference_layout_keeps_its_mfcc_rows(reference_root):
    chosen, why = _chosen("auto", load_dataset(reference_root))
    assert chosen == "mfcc" and "reference layout" in why


def _with_birdnet(monkeypatch, tmp_path, seconds: float):
    """``auto``'s choice and reason for raw clips of ``seconds`` with aiSFX and BirdNET
    installed (``auto`` is returned to patch further)."""
    from scenefusion.features.audio import auto

    monkeypatch.setattr(auto, "birdnet_available", lambda: True)
    monkeypatch.setattr(auto, "find_aisfx_checkpoint", lambda: None)
    clips = load_dataset(make_pairs_folder(tmp_path / f"clips{seconds}", groups_per_class=2,
                                           frames_per_group=1, seconds=seconds))
    return auto, clips, _chosen("auto", clips)


def test_with_the_birdnet_extra_raw_clips_get_the_pair_and_the_note_names_its_licence(
        tmp_path, monkeypatch):
    auto, long, (chosen, why) = _with_birdnet(monkeypatch, tmp_path, 4.0)
    assert chosen == "aisfx_birdnet@4s"
    assert "[birdnet] extra is installed" in why and "CC BY-NC-SA 4.0" in why

    def missing():
        raise FileNotFoundError("no weights")

    monkeypatch.setattr(auto, "find_aisfx_checkpoint", missing)  # BirdNET alone beats MFCCs
    chosen, why = _chosen("auto", long)
    assert chosen == "birdnet@4s" and "pip install --no-deps aisfx" in why


def test_clips_shorter_than_birdnets_window_get_aisfx_alone(tmp_path, monkeypatch):
    _, _, (chosen, why) = _with_birdnet(monkeypatch, tmp_path, 1.0)
    assert chosen == "aisfx"
    assert "BirdNET is added for clips of 3 s or more" in why and "CC BY-NC-SA" not in why


def test_auto_with_a_length_says_what_auto_accepts(tmp_path):
    """``auto`` picks the clip length itself, so ``auto@3s`` is refused with what to write
    instead, in the config, in the CLI and in the library, never as an unknown 'auto'."""
    import pytest
    import yaml
    from pydantic import ValidationError
    from typer.testing import CliRunner

    from scenefusion.cli import app
    from scenefusion.errors import InvalidValue
    from scenefusion.features.audio.auto import check_audio_id, context_seconds

    expected = "auto takes no length"
    with pytest.raises(ValidationError, match=expected) as raised:
        ExperimentConfig.model_validate({"features": {"audio": "auto@3s"}})
    assert "unknown audio feature" not in str(raised.value)
    for call in (check_audio_id, context_seconds):
        with pytest.raises(InvalidValue, match=rf"'auto@3s': {expected} .* e\.g\. aisfx@3s"):
            call("auto@3s")
    assert check_audio_id("auto") == "auto" and check_audio_id("mfcc@3s") == "mfcc@3s"
    config = tmp_path / "experiment.yaml"
    config.write_text(yaml.safe_dump({"features": {"audio": "auto@3s"}}))
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 1 and expected in " ".join(result.output.split())
    assert "Traceback" not in result.output
