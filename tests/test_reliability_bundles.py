"""Tampered or damaged saved models are refused by name, without running anything.

Every damage below must end in one ModelLoadError "refusing to load FILE: reason" that names
the exact file, never in a library traceback and never in a half-loaded model."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
import torch
from arrays import make_modalities
from safetensors.torch import load_file, save_file
from sklearn.preprocessing import StandardScaler

from scenefusion.models import EarlyFusion, LateFusion, load_model, make_model, save_model
from scenefusion.models.persistence import (
    ModelLoadError,
    ModelNotFoundError,
    UntrustedModelError,
    class_fingerprint,
)

Edit = Callable[[dict], object]


@pytest.fixture(scope="module")
def data():
    image, audio, y = make_modalities(60, 0, 3, dim=16, center_scale=0.5)
    return {"image": image, "audio": audio}, y


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory) -> dict[str, Path]:
    """A classical, a torch, a late- and an early-fusion model, saved once; tests damage
    copies."""
    X, y = data
    root = tmp_path_factory.mktemp("saved")
    encoder = make_model("lstm", hidden_size=4, max_epochs=2).fit(X["audio"], y)
    models = {
        "classical": make_model("logreg").fit(X["image"], y),
        "torch": make_model("mlp", hidden_sizes=(8,), max_epochs=3).fit(X["image"], y),
        "late": LateFusion({"image": make_model("logreg"), "audio": make_model("logreg")},
                           "stacking", cv=2).fit(X, y),
        "early": EarlyFusion("logreg", audio_encoder=encoder).fit(X, y),
    }
    return {name: save_model(model, root / name) for name, model in models.items()}


def copy(saved: dict[str, Path], name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved[name], tmp_path / name))


def refused(directory: Path, file: Path, reason: str) -> ModelLoadError:
    """load_model refuses with one ModelLoadError naming `file` and giving `reason`."""
    with pytest.raises(ModelLoadError) as err:
        load_model(directory)
    message = str(err.value)
    assert message.startswith(f"refusing to load {file}: "), message
    assert reason in message, message
    assert err.value.path == str(file)
    return err.value


def edit_json(path: Path, edit: Edit) -> Path:
    edited = edit(json.loads(path.read_text()))
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    return path


def with_classes(classes: list) -> Edit:
    """A class-list edit that also recomputes the fingerprint, as a careful tamperer would:
    the fitted parts must still catch it."""
    return lambda m: {**m, "classes": classes, "classes_sha256": class_fingerprint(classes)}


def edit_tensors(path: Path, edit: Callable[[dict], dict]) -> None:
    save_file(edit(load_file(str(path))), str(path))


# -- skops files ------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


class Evil:
    """Any object outside the allowlist."""


@pytest.mark.parametrize("damage, reason", [
    (lambda p, _: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "BadZipFile"),
    (lambda p, _: p.write_bytes(b""), "BadZipFile"),
    (lambda p, _: p.unlink(), "file not found"),
    (lambda p, _: sio.dump(StandardScaler().fit([[0.0], [1.0]]), p), "no fitted classifier"),
    (lambda p, _: sio.dump({"pipeline": Evil()}, p), "outside the allowlist"),
], ids=["truncated", "zero-byte", "missing", "not-a-classifier", "untrusted-type"])
def test_damaged_skops_file(saved, tmp_path, damage, reason):
    model = copy(saved, "classical", tmp_path)
    damage(model / "pipeline.skops", tmp_path)
    refused(model, model / "pipeline.skops", reason)


def test_untrusted_types_are_one_of_the_load_errors():
    assert issubclass(UntrustedModelError, ModelLoadError)


def test_a_pickle_renamed_skops_is_refused_and_never_runs(saved, tmp_path):
    model = copy(saved, "classical", tmp_path)
    marker = tmp_path / "pwned"
    (model / "pipeline.skops").write_bytes(pickle.dumps(_Payload(marker)))
    refused(model, model / "pipeline.skops", "BadZipFile")
    assert not marker.exists()


# -- safetensors ------------------------------------------------------------------------------
def _grow(key: str, dim: int) -> Callable[[dict], dict]:
    """Tensors with one more row (dim 0) or column (dim 1) in `key`."""
    def edit(tensors: dict) -> dict:
        t = tensors[key]
        shape = list(t.shape)
        shape[dim] += 1
        return {**tensors, key: torch.zeros(shape, dtype=t.dtype)}
    return edit


def _map(key: str, change: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict], dict]:
    """Tensors with `key` changed."""
    return lambda tensors: {**tensors, key: change(tensors[key])}


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "SafetensorError"),
    (lambda p: p.write_bytes(b""), "SafetensorError"),
    (lambda p: p.unlink(), "file not found"),
    (lambda p: edit_tensors(p, _grow("net.layers.0.weight", 1)),
     "tensor net.layers.0.weight is torch.float32 (8, 17) but the network expects"),
    (lambda p: edit_tensors(p, _grow("net.layers.4.weight", 0)),
     "the network's output layer gives 4 classes but the manifest lists 3"),
    (lambda p: edit_tensors(p, lambda t: {k: v for k, v in t.items() if k != "net.layers.0.bias"}),
     "missing tensor(s) net.layers.0.bias"),
    (lambda p: edit_tensors(p, lambda t: {**t, "net.extra": torch.zeros(2)}),
     "unexpected tensor(s) net.extra"),
    (lambda p: edit_tensors(p, _map("net.layers.0.bias", lambda v: v.double())),
     "is torch.float64"),
    (lambda p: edit_tensors(p, _map("net.layers.0.bias", lambda v: v * np.nan)),
     "net.layers.0.bias holds NaN or infinite values"),
    (lambda p: edit_tensors(p, lambda t: {k: v for k, v in t.items() if k != "scaler.scale"}),
     "missing tensor(s) scaler.scale"),
    (lambda p: edit_tensors(p, lambda t: {**t, "scaler.mean": t["scaler.mean"][:-1]}),
     "tensor scaler.mean is torch.float32 (15,); expected float (16,)"),
    (lambda p: edit_tensors(p, lambda t: {**t, "scaler.scale": t["scaler.scale"] * 0}),
     "scaler.scale holds values <= 0"),
], ids=["truncated", "zero-byte", "missing", "wrong-shape", "extra-class-row", "missing-tensor",
        "extra-tensor", "wrong-dtype", "nan", "missing-scaler", "short-scaler", "zero-scale"])
def test_damaged_safetensors(saved, tmp_path, damage, reason):
    model = copy(saved, "torch", tmp_path)
    damage(model / "weights.safetensors")
    refused(model, model / "weights.safetensors", reason)


# -- manifest.json ----------------------------------------------------------------------------
@pytest.mark.parametrize("edit, reason", [
    (lambda m: "{not json", "not valid JSON"),
    (lambda m: [m], "expected a JSON object"),
    (lambda m: {k: v for k, v in m.items() if k != "kind"}, "missing key(s) kind"),
    (lambda m: {**m, "surprise": 1}, "unknown manifest key(s) ['surprise']"),
    (lambda m: {**m, "kind": "magic"}, "unknown model kind 'magic'"),
    (lambda m: {**m, "kind": "torch"}, "unknown TorchModel id 'logreg'"),
    (lambda m: {**m, "format": "other"}, "unsupported format 'other'"),
    (lambda m: {**m, "format_version": 99}, "unsupported format"),
    (lambda m: {**m, "model_id": "gpt"}, "unknown ClassicalModel id 'gpt'"),
    (lambda m: {**m, "model_id": "mlp"}, "unknown ClassicalModel id 'mlp'"),
    (lambda m: {**m, "params": {**m["params"], "nonsense": 3}}, "TypeError"),
    (lambda m: {**m, "params": [1]}, "'params' must be an object"),
    (lambda m: {**m, "classes": m["classes"][:1]}, "at least two distinct class labels"),
    (lambda m: {**m, "classes": [0, 0, 1]}, "at least two distinct class labels"),
    (lambda m: {**m, "classes": [[0], [1], [2]]}, "at least two distinct class labels"),
    (lambda m: {**m, "classes": m["classes"][::-1]}, "does not match its fingerprint"),
    (lambda m: {**m, "classes": m["classes"][:2]}, "does not match its fingerprint"),
    (lambda m: {**m, "classes_dtype": "nonsense"}, "'classes_dtype' 'nonsense' does not fit"),
    (lambda m: {**m, "state": {}}, "KeyError"),
    (lambda m: {**m, "state": {**m["state"], "n_features_in": "16"}},
     "state 'n_features_in' must be a positive integer"),
    (lambda m: {**m, "state": {**m["state"], "n_features_in": 99}},
     "expects 16 features but the manifest says 99"),
], ids=["not-json", "not-object", "missing-key", "unknown-key", "unknown-kind", "wrong-kind",
        "format", "version", "unknown-id", "id-of-other-family", "rejected-params",
        "params-not-object", "one-class", "duplicate-class", "nested-class", "reordered",
        "shortened", "dtype", "empty-state", "feature-count-type", "feature-count"])
def test_edited_classical_manifest(saved, tmp_path, edit, reason):
    model = copy(saved, "classical", tmp_path)
    file = model / ("pipeline.skops" if "features but" in reason else "manifest.json")
    edit_json(model / "manifest.json", edit)
    refused(model, file, reason)


def test_binary_garbage_manifest(saved, tmp_path):
    model = copy(saved, "classical", tmp_path)
    (model / "manifest.json").write_bytes(b"\xff\xfe\x00garbage")
    refused(model, model / "manifest.json", "cannot read")


@pytest.mark.parametrize("name, classes, file, reason", [
    ("classical", [2, 1, 0], "pipeline.skops", "predicts classes [0, 1, 2] but the manifest"),
    ("classical", [0, 1], "pipeline.skops", "predicts classes [0, 1, 2] but the manifest"),
    ("torch", [0, 1], "weights.safetensors",
     "the network's output layer gives 3 classes but the manifest lists 2"),
    ("torch", [0, 1, 2, 3], "weights.safetensors",
     "the network's output layer gives 3 classes but the manifest lists 4"),
    ("late", [0, 1], "members/0", "predicts classes [0, 1, 2] but the manifest"),
    ("early", [1, 0, 2], "classifier", "predicts classes [0, 1, 2] but the manifest"),
], ids=["classical-reordered", "classical-short", "torch-short", "torch-long", "late-short",
        "early-reordered"])
def test_a_refingerprinted_class_list_must_still_fit_the_model(saved, tmp_path, name, classes,
                                                               file, reason):
    """Even with a matching fingerprint, the class list must fit the model's output size."""
    model = copy(saved, name, tmp_path)
    edit_json(model / "manifest.json", with_classes(classes))
    refused(model, model / file, reason)


@pytest.mark.parametrize("edit, reason", [
    (lambda m: {**m, "params": {**m["params"], "hidden_sizes": [9]}},
     "tensor net.layers.0.weight is torch.float32 (8, 16) but the network expects"),
    (lambda m: {**m, "params": {**m["params"], "hidden_sizes": "x"}}, "TypeError"),
    (lambda m: {**m, "model_id": "logreg"}, "unknown TorchModel id 'logreg'"),
])
def test_edited_torch_manifest(saved, tmp_path, edit, reason):
    model = copy(saved, "torch", tmp_path)
    edit_json(model / "manifest.json", edit)
    file = "weights.safetensors" if "tensor" in reason else "manifest.json"
    refused(model, model / file, reason)


def test_a_manifest_without_fingerprint_still_loads_with_a_warning(saved, data, tmp_path, caplog):
    """Models saved before the fingerprint existed stay loadable (users have them)."""
    model = copy(saved, "torch", tmp_path)
    edit_json(model / "manifest.json",
              lambda m: {k: v for k, v in m.items() if k != "classes_sha256"})
    with caplog.at_level(logging.WARNING, logger="scenefusion.models.persistence"):
        loaded = load_model(model)
    assert "no class-list fingerprint" in caplog.text
    assert str(model / "manifest.json") in caplog.text
    expected = load_model(saved["torch"]).predict_proba(data[0]["image"])
    np.testing.assert_array_equal(loaded.predict_proba(data[0]["image"]), expected)


# -- missing folders and files ----------------------------------------------------------------
def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        load_model(tmp_path / "nowhere")
    assert str(err.value) == f"refusing to load {tmp_path / 'nowhere'}: folder not found"
    assert isinstance(err.value, FileNotFoundError)


def test_a_folder_without_manifest_is_named(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not a saved scenefusion model") as err:
        load_model(tmp_path)
    assert str(err.value).startswith(f"refusing to load {tmp_path / 'manifest.json'}: file not")


def test_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "model").write_text("x")
    with pytest.raises(ModelLoadError, match="not a folder"):
        load_model(tmp_path / "model")


# -- fusion models ----------------------------------------------------------------------------
def test_a_damaged_fusion_member_is_named(saved, tmp_path):
    model = copy(saved, "late", tmp_path)
    member = model / "members" / "1" / "pipeline.skops"
    member.write_bytes(b"")
    refused(model, member, "BadZipFile")


def test_a_missing_fusion_member_is_a_load_error_naming_it(saved, tmp_path):
    model = copy(saved, "late", tmp_path)
    shutil.rmtree(model / "members" / "1")
    refused(model, model / "members" / "1", "folder not found")


def test_a_member_folder_looping_back_is_refused(saved, tmp_path):
    model = copy(saved, "late", tmp_path)
    shutil.rmtree(model / "members" / "0")
    (model / "members" / "0").symlink_to(model, target_is_directory=True)
    refused(model, model / "members" / "0", "links back")


@pytest.mark.parametrize("edit, file, reason", [
    (lambda m: {**m, "state": {**m["state"], "member_names": ["image"],
                               "guard": {**m["state"]["guard"], "temperatures": {"image": 1.0}}}},
     "meta.skops", "expects 6 inputs but 1 members x 3 classes give 3"),
    (lambda m: {**m, "state": {**m["state"], "member_names": ["image"]}}, "manifest.json",
     "'guard.temperatures' must give a positive number for members of ['image']"),
    (lambda m: {**m, "state": {**m["state"], "guard": {
        **m["state"]["guard"], "temperatures": {"image": -1.0, "audio": 1.0}}}},
     "manifest.json", "'guard.temperatures' must give a positive number"),
    (lambda m: {**m, "state": {**m["state"], "member_names": ["image", "image"]}},
     "manifest.json", "'member_names' must list distinct member names"),
    (lambda m: {**m, "params": {**m["params"], "combiner": {"id": "weighted", "settings": {}}}},
     "manifest.json", "state 'weights' must give a non-negative number for each member"),
    (lambda m: {**m, "params": {**m["params"], "method": "weighted"}}, "manifest.json",
     "params 'method' 'weighted' and 'combiner' 'stacking' disagree"),
    (lambda m: {**m, "kind": "hybrid"}, "manifest.json", "needs a 'early' member"),
])
def test_edited_late_fusion_manifest(saved, tmp_path, edit, file, reason):
    model = copy(saved, "late", tmp_path)
    edit_json(model / "manifest.json", edit)
    refused(model, model / file, reason)


def test_a_stacking_model_without_its_meta_learner(saved, tmp_path):
    model = copy(saved, "late", tmp_path)
    (model / "meta.skops").unlink()
    refused(model, model / "meta.skops", "file not found")


@pytest.mark.parametrize("damage, file, reason", [
    (lambda d: (d / "transformers.skops").write_bytes(b"PK\x03\x04"), "transformers.skops",
     "BadZipFile"),
    (lambda d: sio.dump({"image": StandardScaler()}, d / "transformers.skops"),
     "transformers.skops", "expected a fitted transformer for each of ['image', 'audio']"),
    (lambda d: shutil.rmtree(d / "audio_encoder"), "audio_encoder", "folder not found"),
    (lambda d: (d / "audio_encoder" / "weights.safetensors").write_bytes(b""),
     "audio_encoder/weights.safetensors", "SafetensorError"),
    (lambda d: edit_json(d / "manifest.json",
                         lambda m: {**m, "state": {**m["state"], "n_features_in": 5}}),
     "manifest.json", "n_features_in is 5 but its classifier expects"),
], ids=["truncated-transformers", "missing-transformer", "missing-encoder", "damaged-encoder",
        "feature-count"])
def test_damaged_early_fusion(saved, tmp_path, damage, file, reason):
    model = copy(saved, "early", tmp_path)
    damage(model)
    refused(model, model / file, reason)


# -- what must keep working -------------------------------------------------------------------
def test_interrupts_are_never_turned_into_load_errors(saved, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sio, "get_untrusted_types", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_model(copy(saved, "classical", tmp_path))


def test_intact_copies_load_and_predict_the_same(saved, data, tmp_path):
    X, _ = data
    inputs = {"classical": X["image"], "torch": X["image"], "late": X, "early": X}
    for name, directory in saved.items():
        loaded = load_model(copy(saved, name, tmp_path))
        assert loaded.classes_.tolist() == [0, 1, 2]
        np.testing.assert_array_equal(loaded.predict_proba(inputs[name]),
                                      load_model(directory).predict_proba(inputs[name]))
