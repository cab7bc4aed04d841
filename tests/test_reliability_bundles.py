"""Tampered or damaged saved models are refused by name, without running anything (issue 13)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from arrays import make_modalities
from safetensors.torch import load_file, save_file

from scenefusion.models import LateFusion, load_model, make_model, save_model
from scenefusion.models.persistence import ModelLoadError, UntrustedModelError


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """A classical, a torch and a late-fusion model, saved once; tests damage copies."""
    image, audio, y = make_modalities(60, 0, 3, dim=16, center_scale=0.5)
    root = tmp_path_factory.mktemp("saved")
    logreg = make_model("logreg").fit(image, y)
    mlp = make_model("mlp", hidden_sizes=(8,), max_epochs=3).fit(image, y)
    late = LateFusion({"image": make_model("logreg"), "audio": make_model("logreg")}, "stacking",
                      cv=2).fit({"image": image, "audio": audio}, y)
    return {name: save_model(model, root / name)
            for name, model in (("classical", logreg), ("torch", mlp), ("late", late))}


def copy(saved: dict[str, Path], name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved[name], tmp_path / name))


def refused(directory: Path, file: Path, reason: str) -> None:
    with pytest.raises((ModelLoadError, UntrustedModelError)) as err:
        load_model(directory)
    message = str(err.value)
    assert message.startswith("refusing to load") and str(file) in message, message
    assert reason in message, message


def edit_manifest(directory: Path, edit) -> Path:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    edited = edit(manifest)
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    return path


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "BadZipFile"),
    (lambda p: p.write_bytes(b""), "BadZipFile"),
])
def test_damaged_skops_file(saved, tmp_path, damage, reason):
    model = copy(saved, "classical", tmp_path)
    damage(model / "pipeline.skops")
    refused(model, model / "pipeline.skops", reason)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_a_pickle_renamed_skops_is_refused_and_never_runs(saved, tmp_path):
    model = copy(saved, "classical", tmp_path)
    marker = tmp_path / "pwned"
    (model / "pipeline.skops").write_bytes(pickle.dumps(_Payload(marker)))
    refused(model, model / "pipeline.skops", "")
    assert not marker.exists()


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "Error"),
    (lambda p: p.write_bytes(b""), "Error"),
    (lambda p: save_file({k: (torch.zeros(v.shape[0] + 1, *v.shape[1:]) if k.endswith(
        "weight") else v) for k, v in load_file(str(p)).items()}, str(p)), "size mismatch"),
    (lambda p: save_file({k: v for k, v in load_file(str(p)).items() if k != "net.layers.0.bias"},
                         str(p)), "Missing key"),
    (lambda p: save_file({k: v for k, v in load_file(str(p)).items() if k != "scaler.scale"},
                         str(p)), "scaler.scale"),
    (lambda p: save_file({**load_file(str(p)), "net.extra": torch.zeros(2)}, str(p)),
     "Unexpected key"),
])
def test_damaged_safetensors(saved, tmp_path, damage, reason):
    model = copy(saved, "torch", tmp_path)
    damage(model / "weights.safetensors")
    refused(model, model / "weights.safetensors", reason)


@pytest.mark.parametrize("edit, reason", [
    (lambda m: "{not json", "not valid JSON"),
    (lambda m: [m], "expected a JSON object"),
    (lambda m: {k: v for k, v in m.items() if k != "kind"}, "missing key(s) kind"),
    (lambda m: {**m, "surprise": 1}, "unknown manifest key(s) ['surprise']"),
    (lambda m: {**m, "kind": "magic"}, "unknown model kind 'magic'"),
    (lambda m: {**m, "format_version": 99}, "unsupported format"),
    (lambda m: {**m, "model_id": "gpt"}, "unknown ClassicalModel id 'gpt'"),
    (lambda m: {**m, "params": {**m["params"], "nonsense": 3}}, "TypeError"),
    (lambda m: {**m, "classes": m["classes"][:1]}, "at least two distinct classes"),
    (lambda m: {**m, "classes": m["classes"][::-1]}, "fingerprint"),
    (lambda m: {**m, "state": {}}, "KeyError"),
])
def test_edited_manifest(saved, tmp_path, edit, reason):
    model = copy(saved, "classical", tmp_path)
    path = edit_manifest(model, edit)
    refused(model, path, reason)


def test_a_class_list_that_does_not_match_the_model(saved, tmp_path):
    """Without a fingerprint (models saved before 0.3), the model's own classes decide."""
    model = copy(saved, "classical", tmp_path)
    edit_manifest(model, lambda m: {k: v for k, v in m.items() if k != "classes_sha256"}
                  | {"classes": [0, 1, 2, 3]})
    refused(model, model / "pipeline.skops", "but the manifest lists")


def test_a_damaged_fusion_member_is_named(saved, tmp_path):
    model = copy(saved, "late", tmp_path)
    member = model / "members" / "1" / "pipeline.skops"
    member.write_bytes(b"")
    refused(model, member, "BadZipFile")


def test_an_intact_copy_still_loads(saved, tmp_path):
    for name in saved:
        assert load_model(copy(saved, name, tmp_path)).classes_.tolist() == [0, 1, 2]
