"""save_model/load_model round trips for every model and fusion kind, and the trust checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skops.io as sio
from arrays import make_modalities
from sklearn.frozen import FrozenEstimator

from scenefusion.models import (
    EarlyFusion,
    HybridFusion,
    LateFusion,
    load_model,
    make_model,
    save_model,
)
from scenefusion.models.persistence import SKOPS_ALLOWED_TYPES, UntrustedModelError

K = 3
FAST = {
    "mlp": {"hidden_sizes": (16, 8), "max_epochs": 10},
    "lstm": {"hidden_size": 8, "bidirectional": True, "max_epochs": 8},
    "audio_cnn": {"channels": (8, 16), "max_epochs": 4},
    "hgb": {"max_iter": 20},
    "rf": {"n_estimators": 20},
}


def make_data(n: int, seed: int):
    image, audio, y = make_modalities(n, seed, K, dim=32, center_scale=0.5)
    return {"image": image, "audio": audio}, y


@pytest.fixture(scope="module")
def data():
    return {"train": make_data(90, 0), "val": make_data(45, 1), "test": make_data(30, 2)}


def fast(model_id: str):
    return make_model(model_id, **FAST.get(model_id, {}))


def roundtrip(model, X, tmp_path):
    before = model.predict_proba(X)
    save_model(model, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict_proba(X), before)
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    return loaded, json.loads((tmp_path / "model" / "manifest.json").read_text())


@pytest.mark.parametrize("model_id", ["svm", "logreg", "rf", "knn", "hgb", "mlp", "lstm"])
def test_model_roundtrip(model_id, data, tmp_path):
    (Xtr, ytr), (Xte, _) = data["train"], data["test"]
    key = "audio" if model_id == "lstm" else "image"
    model = fast(model_id).fit(Xtr[key], ytr)
    loaded, manifest = roundtrip(model, Xte[key], tmp_path)
    assert manifest["model_id"] == model_id
    assert manifest["classes"] == [0, 1, 2]
    assert {"numpy", "scikit-learn", "torch", "skops", "safetensors"} <= set(manifest["versions"])
    assert loaded.get_params().keys() == model.get_params().keys()
    if model_id == "lstm":
        np.testing.assert_array_equal(loaded.embed(Xte[key]), model.embed(Xte[key]))
    assert not list((tmp_path / "model").glob("*.pkl"))


@pytest.mark.parametrize(
    "factory",
    [
        lambda: EarlyFusion(fast("mlp"), pca_image=8),
        lambda: LateFusion({"image": fast("svm"), "audio": fast("lstm")}, "weighted"),
        lambda: LateFusion({"image": "logreg", "audio": fast("hgb")}, "stacking"),
        lambda: LateFusion({"image": "knn", "audio": "rf"}, "product"),
        lambda: HybridFusion("logreg", method="stacking", pca_image=8),
        lambda: HybridFusion(EarlyFusion(fast("mlp")), {"audio": fast("lstm")}, "mean"),
    ],
    ids=["early-mlp", "late-weighted", "late-stacking", "late-product", "hybrid-stack", "hybrid"],
)
def test_fusion_roundtrip(factory, data, tmp_path):
    (Xtr, ytr), (Xva, yva), (Xte, _) = data["train"], data["val"], data["test"]
    model = factory().fit(Xtr, ytr, Xva, yva)
    loaded, manifest = roundtrip(model, Xte, tmp_path)
    assert manifest["model_id"] == model.fusion_id
    if isinstance(model, EarlyFusion):
        return
    assert loaded.member_names_ == model.member_names_
    assert loaded.weights_ == model.weights_
    # the fallback still works after loading
    partial = {k: v for k, v in Xte.items() if k == "audio"}
    np.testing.assert_array_equal(loaded.predict_proba(partial), model.predict_proba(partial))


class Evil:
    """Stands in for any non-allowlisted object smuggled into a .skops file."""

    def __init__(self):
        self.payload = "anything"


def test_untrusted_types_are_refused(data, tmp_path):
    (Xtr, ytr) = data["train"]
    save_model(make_model("logreg").fit(Xtr["image"], ytr), tmp_path / "m")
    sio.dump({"pipeline": Evil()}, tmp_path / "m" / "pipeline.skops")
    with pytest.raises(UntrustedModelError, match="Evil"):
        load_model(tmp_path / "m")


def test_allowlist_is_explicit_and_sklearn_only():
    assert all(t.startswith(("sklearn.", "numpy.")) for t in SKOPS_ALLOWED_TYPES)


def test_bad_directories(tmp_path, data):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        load_model(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="unsupported format"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="not fitted"):
        save_model(make_model("logreg"), tmp_path / "x")


@pytest.fixture(scope="module")
def encoder(data):
    (Xtr, ytr) = data["train"]
    return make_model("lstm", hidden_size=8, max_epochs=5).fit(Xtr["audio"], ytr)


@pytest.mark.parametrize(
    "factory",
    [
        lambda enc: EarlyFusion("logreg", pca_image=8, audio_encoder=FrozenEstimator(enc)),
        lambda enc: HybridFusion(
            EarlyFusion("logreg", audio_encoder=FrozenEstimator(enc)), {"image": "logreg"},
            "stacking", cv=3,
        ),
    ],
    ids=["early", "hybrid-stacking"],
)
def test_fusion_with_audio_encoder_roundtrip(factory, encoder, data, tmp_path):
    (Xtr, ytr), (Xte, _) = data["train"], data["test"]
    model = factory(encoder).fit(Xtr, ytr)
    loaded, manifest = roundtrip(model, Xte, tmp_path)
    early, early_dir = model, tmp_path / "model"
    if isinstance(model, HybridFusion):
        assert loaded.member_names_ == ["early", "image"]
        early, loaded = model.members_["early"], loaded.members_["early"]
        early_dir = early_dir / "members" / "0"
        partial = {"image": Xte["image"]}  # fallback without the encoded modality still works
        np.testing.assert_array_equal(
            load_model(tmp_path / "model").predict_proba(partial), model.predict_proba(partial)
        )
    assert json.loads((early_dir / "manifest.json").read_text())["state"]["audio_encoder"]
    assert (
        json.loads((early_dir / "audio_encoder" / "manifest.json").read_text())["kind"] == "torch"
    )
    assert isinstance(loaded.audio_encoder, FrozenEstimator)  # clones of the loaded model keep it
    assert type(loaded.audio_encoder.estimator) is type(encoder)
    np.testing.assert_array_equal(
        loaded.audio_encoder.embed(Xte["audio"]), encoder.embed(Xte["audio"])
    )
    np.testing.assert_array_equal(loaded.transform(Xte), early.transform(Xte))
    assert not list((tmp_path / "model").rglob("*.pkl"))


def test_early_fusion_without_encoder_loads_with_none(data, tmp_path):
    (Xtr, ytr), (Xte, _) = data["train"], data["test"]
    loaded, manifest = roundtrip(EarlyFusion("logreg").fit(Xtr, ytr), Xte, tmp_path)
    assert loaded.audio_encoder is None and manifest["state"]["audio_encoder"] is False
    assert "audio_encoder" not in manifest["params"]
