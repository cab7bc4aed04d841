"""Unimodal models: registry, probability contract, learnability, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
from arrays import make_modalities
from sklearn.base import clone

from scenefusion.models import (
    MODELS,
    LSTMModel,
    accepts_sequences,
    available_models,
    capabilities,
    make_model,
)
from scenefusion.models.sequences import pool_sequence

K = 3
FAST = {  # keep every fit well under a second on 2 CPU cores
    "mlp": {"hidden_sizes": (32,), "max_epochs": 30, "patience": 5},
    "lstm": {"hidden_size": 16, "max_epochs": 30, "patience": 5},
    "audio_cnn": {"channels": (8, 16), "max_epochs": 15, "patience": 5},
    "hgb": {"max_iter": 30},
    "rf": {"n_estimators": 50},
}


def make_data(n: int, seed: int, labels: np.ndarray | None = None):
    """Class-dependent Gaussian blobs (image, (N, 64)) and noisy sinusoids (audio, (N, 8, 13))."""
    image, audio, y = make_modalities(n, seed, K, dim=64, noise=1.5)
    return image, audio, y if labels is None else labels[y]


@pytest.fixture(scope="module")
def data():
    return {"train": make_data(120, 0), "val": make_data(60, 1), "test": make_data(90, 2)}


def fast_model(model_id: str, **extra):
    return make_model(model_id, **{**FAST.get(model_id, {}), **extra})


def check_proba(P: np.ndarray, n: int, k: int = K) -> None:
    assert P.shape == (n, k)
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)


def test_registry_lists_all_ids():
    assert set(available_models()) == {"svm", "logreg", "rf", "knn", "hgb", "mlp", "lstm",
                                       "audio_cnn"}
    sequence_models = {"lstm", "audio_cnn"}
    assert all(accepts_sequences(make_model(m)) for m in sequence_models)
    assert not any(accepts_sequences(make_model(m)) for m in set(available_models())
                   - sequence_models)
    for entry in MODELS.entries():
        assert entry.obj.model_id == entry.id
        assert entry.description  # `scenefusion list` shows one per model


def test_models_declare_capabilities_instead_of_being_sniffed():
    caps = {m: capabilities(make_model(m)) for m in available_models()}
    assert caps["lstm"].sequence_input and caps["lstm"].embedding
    assert caps["lstm"].modalities == ("audio",)
    assert all(c.uses_validation for c in caps.values())
    assert {m for m, c in caps.items() if c.reports_progress} == {"mlp", "lstm", "audio_cnn"}
    assert {m for m, c in caps.items() if c.embedding} == {"lstm", "audio_cnn"}
    assert {m for m, c in caps.items() if c.tunable} == {"svm", "logreg", "rf", "knn", "hgb"}


def test_classical_hyper_parameters_are_init_keywords():
    """scikit-learn convention: every hyper-parameter is a get_params key, settable and cloned."""
    model = make_model("svm", C=10.0)
    assert model.get_params()["C"] == 10.0
    assert clone(model.set_params(gamma=0.01)).get_params()["gamma"] == 0.01
    assert make_model("rf").get_params()["n_estimators"] == 200


def test_unknown_id_lists_valid_ids():
    with pytest.raises(ValueError, match="unknown model 'nope'") as err:
        make_model("nope")
    for model_id in ("svm", "logreg", "rf", "knn", "hgb", "mlp", "lstm"):
        assert model_id in str(err.value)


def test_bad_hyperparameter_fails_at_construction():
    with pytest.raises(ValueError, match="invalid hyper-parameter"):
        make_model("svm", not_a_param=1)


def test_pool_sequence():
    X = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    P = pool_sequence(X)
    assert P.shape == (2, 12) and P.dtype == np.float32
    np.testing.assert_allclose(P[:, :3], X.mean(axis=1))
    np.testing.assert_allclose(P[:, 3:6], X.std(axis=1))
    np.testing.assert_allclose(P[:, 6:9], X.min(axis=1))
    np.testing.assert_allclose(P[:, 9:], X.max(axis=1))
    with pytest.raises(ValueError):
        pool_sequence(X[:, 0])


@pytest.mark.parametrize("model_id", ["svm", "logreg", "rf", "knn", "hgb", "mlp", "lstm"])
def test_model_learns_and_is_reproducible(model_id, data):
    idx = 1 if model_id == "lstm" else 0  # lstm reads audio sequences, the rest image rows
    Xtr, ytr = data["train"][idx], data["train"][2]
    Xte, yte = data["test"][idx], data["test"][2]
    m1 = fast_model(model_id).fit(Xtr, ytr)
    P1 = m1.predict_proba(Xte)
    check_proba(P1, len(Xte))
    np.testing.assert_array_equal(m1.classes_, np.arange(K))
    assert (m1.predict(Xte) == yte).mean() > 0.6  # chance is 1/3
    P2 = fast_model(model_id).fit(Xtr, ytr).predict_proba(Xte)
    np.testing.assert_array_equal(P1, P2)  # same seed -> bit-identical


@pytest.mark.parametrize("model_id", ["logreg", "mlp"])
def test_labels_are_not_assumed_contiguous(model_id, data):
    labels = np.array([2, 5, 9])
    Xtr, _, ytr = make_data(120, 0, labels)
    Xte, _, yte = make_data(60, 2, labels)
    m = fast_model(model_id).fit(Xtr, ytr)
    np.testing.assert_array_equal(m.classes_, labels)
    assert set(np.unique(m.predict(Xte))) <= set(labels)
    assert (m.predict(Xte) == yte).mean() > 0.6


def test_classical_models_pool_audio_sequences(data):
    _, Atr, ytr = data["train"]
    _, Ate, yte = data["test"]
    m = make_model("logreg").fit(Atr, ytr)
    assert m.n_features_in_ == 4 * 13
    assert (m.predict(Ate) == yte).mean() > 0.5


def test_tuning_uses_validation_set_and_refits_on_train(data):
    Xtr, _, ytr = data["train"]
    Xva, _, yva = data["val"]
    m = make_model("logreg", tune=True, param_grid={"C": [1e-4, 1.0]}).fit(Xtr, ytr, Xva, yva)
    assert m.best_params_["C"] in (1e-4, 1.0)
    assert len(m.cv_results_["params"]) == 2
    # refit on the train rows only: identical to a plain fit with the chosen C
    ref = make_model("logreg", C=m.best_params_["C"]).fit(Xtr, ytr)
    np.testing.assert_array_equal(m.predict_proba(Xva), ref.predict_proba(Xva))


def test_mlp_early_stopping_restores_best_and_reports_progress(data):
    Xtr, _, ytr = data["train"]
    Xva, _, yva = data["val"]
    seen = []
    m = fast_model("mlp", max_epochs=40, patience=3)
    m.fit(Xtr, ytr, Xva, yva, progress=lambda e, tl, vl: seen.append((e, tl, vl)))
    assert [e for e, _, _ in seen] == list(range(1, len(m.history_) + 1))
    val_losses = [h["val_loss"] for h in m.history_]
    assert m.best_epoch_ == int(np.argmin(val_losses)) + 1


def test_torch_models_clone_and_params():
    m = make_model("mlp", hidden_sizes=(16, 8), dropout=0.5)
    c = clone(m)
    assert c.get_params() == m.get_params()
    assert c.hidden_sizes == (16, 8)


def test_lstm_embedding_and_variable_lengths(data):
    _, Atr, ytr = data["train"]
    _, Ate, _ = data["test"]
    m = LSTMModel(hidden_size=8, bidirectional=True, max_epochs=5).fit(Atr, ytr)
    E = m.embed(Ate)
    assert E.shape == (len(Ate), 16) and E.dtype == np.float32
    np.testing.assert_array_equal(m.transform(Ate), E)
    # packed sequences: whatever follows a row's length is ignored
    lengths = np.full(len(Ate), 5)
    padded = Ate.copy()
    padded[:, 5:] = 1e3
    np.testing.assert_allclose(
        m.embed(padded, lengths=lengths), m.embed(Ate[:, :5]), rtol=1e-5, atol=1e-6
    )
    check_proba(m.predict_proba(padded, lengths=lengths), len(Ate))
    # training with variable lengths works too
    lens = np.random.default_rng(0).integers(3, 9, size=len(Atr))
    m2 = LSTMModel(hidden_size=8, max_epochs=3).fit(Atr, ytr, lengths=lens)
    check_proba(m2.predict_proba(Ate), len(Ate))


def test_spec_augment_masks_shifts_and_is_seeded():
    import torch

    from scenefusion.models.augment import NewPlace

    x = torch.ones(4, 20, 16)
    place = NewPlace(time_mask=4, freq_mask=3, shift=True)
    a = place.apply(x, torch.Generator().manual_seed(0))
    b = place.apply(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)  # same seed, same augmentation
    assert set(a.unique().tolist()) <= {0.0, 1.0} and (a == 0).any()  # masks, nothing else
    ramp = torch.arange(20.0)[None, :, None].expand(2, 20, 3)
    shifted = NewPlace(shift=True).apply(ramp, torch.Generator().manual_seed(1))
    assert torch.equal(shifted.sort(dim=1).values, ramp)  # circular: a permutation in time


def test_random_eq_is_one_smooth_curve_per_row_held_over_time():
    import torch

    from scenefusion.models.augment import random_eq

    x = torch.zeros(3, 10, 64)
    curve = random_eq(x, torch.Generator().manual_seed(0), 1.0)
    assert torch.equal(curve, curve[:, :1, :].expand_as(curve))  # the same at every step
    assert curve.abs().max() <= 1.0 and curve.std() > 0.1  # it colours, within the amount
    # smooth: neighbouring bands differ far less than the curve's range
    assert (curve.diff(dim=2).abs().max() < 0.2 * (curve.amax() - curve.amin()))
    assert not torch.equal(curve[0], curve[1])  # each row its own room


def test_background_mixing_blends_only_valid_steps_and_keeps_padding_zero():
    import torch

    from scenefusion.models.augment import NewPlace, mix_background

    x = torch.stack([torch.full((6, 2), float(k + 1)) for k in range(4)])
    lengths = torch.tensor([6, 3, 6, 2])
    mixed = mix_background(x, torch.Generator().manual_seed(0), 0.5, lengths)
    assert not torch.equal(mixed, x)  # something was blended in
    assert mixed.min() >= 1.0 and mixed.max() <= 4.0  # convex blends of batch rows
    for row, n in enumerate(lengths.tolist()):
        assert torch.equal(mixed[row, n:], x[row, n:])  # never past a row's own end
    padded = x.clone()
    padded[1, 3:] = 0
    out = NewPlace(gain=0.5, eq=0.5, background=0.5).apply(
        padded, torch.Generator().manual_seed(1), lengths)
    assert (out[1, 3:] == 0).all() and (out[3, 2:] == 0).all()


def test_lstm_with_augmentation_trains_and_is_seeded(data):
    (_, aud, y), (_, aud_te, y_te) = data["train"], data["test"]
    a = fast_model("lstm", augment=True).fit(aud, y)
    b = fast_model("lstm", augment=True).fit(aud, y)
    plain = fast_model("lstm").fit(aud, y)
    check_proba(a.predict_proba(aud_te), len(y_te))
    assert np.array_equal(a.predict_proba(aud_te), b.predict_proba(aud_te))
    assert not np.allclose(a.predict_proba(aud_te), plain.predict_proba(aud_te))


def test_audio_cnn_embedding_feeds_early_fusion(data):
    from sklearn.frozen import FrozenEstimator

    from scenefusion.models import EarlyFusion

    (img, aud, y), (img_te, aud_te, y_te) = data["train"], data["test"]
    cnn = fast_model("audio_cnn").fit(aud, y)
    assert cnn.embed(aud_te).shape == (len(y_te), cnn.embedding_dim)
    fused = EarlyFusion("logreg", audio_encoder=FrozenEstimator(cnn)).fit(
        {"image": img, "audio": aud}, y)
    assert fused.n_features_in_ == img.shape[1] + cnn.embedding_dim
    assert (fused.predict({"image": img_te, "audio": aud_te}) == y_te).mean() > 0.6
