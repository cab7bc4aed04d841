"""Early / late / hybrid fusion: contract, leakage-free stacking, missing-modality fallback."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
import torch
from arrays import make_modalities
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from scenefusion.data.folds import training_folds
from scenefusion.models import (
    FUSION,
    EarlyFusion,
    HybridFusion,
    LateFusion,
    make_fusion,
    make_model,
)
from scenefusion.models.temperature import apply_temperature

K = 3


def make_data(n: int, seed: int):
    """Image blobs (N, 64) and audio sinusoids (N, 8, 13); each modality alone is imperfect."""
    image, audio, y = make_modalities(n, seed, K, dim=64, center_scale=0.25)
    return {"image": image, "audio": audio}, y


@pytest.fixture(scope="module")
def data():
    return {"train": make_data(120, 0), "val": make_data(60, 1), "test": make_data(150, 2)}


def check_proba(P: np.ndarray, n: int) -> None:
    assert P.shape == (n, K)
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)


def fit_eval(model, data, with_val=True):
    (Xtr, ytr), (Xva, yva), (Xte, yte) = data["train"], data["val"], data["test"]
    if with_val:
        model.fit(Xtr, ytr, Xva, yva)
    else:
        model.fit(Xtr, ytr)
    P = model.predict_proba(Xte)
    check_proba(P, len(yte))
    np.testing.assert_array_equal(model.classes_, np.arange(K))
    return P, (model.predict(Xte) == yte).mean()


def test_fusion_ids():
    assert tuple(FUSION.list()) == (
        "early",
        "late:mean",
        "late:weighted",
        "late:product",
        "late:stacking",
        "late:shrunk",
        "hybrid:mean",
        "hybrid:weighted",
        "hybrid:product",
        "hybrid:stacking",
        "hybrid:shrunk",
    )
    for fid in FUSION.list():
        assert make_fusion(fid).fusion_id == fid
        assert FUSION.describe()[fid]  # one line each for `scenefusion list`
    with pytest.raises(ValueError, match="unknown fusion method 'late:max'.*late:mean"):
        make_fusion("late:max")


@pytest.mark.parametrize("pca_image", [None, 8])
def test_early_fusion(pca_image, data):
    model = EarlyFusion("logreg", pca_image=pca_image)
    P, acc = fit_eval(model, data)
    assert acc > 0.65
    assert model.n_features_in_ == (pca_image or 64) + 4 * 13
    P2, _ = fit_eval(EarlyFusion("logreg", pca_image=pca_image), data)
    np.testing.assert_array_equal(P, P2)


def test_early_fusion_with_torch_classifier_and_lstm_embedding(data):
    (Xtr, ytr), (Xte, yte) = data["train"], data["test"]
    lstm = make_model("lstm", hidden_size=8, max_epochs=15).fit(Xtr["audio"], ytr)
    emb_tr = {"image": Xtr["image"], "audio": lstm.embed(Xtr["audio"])}
    emb_te = {"image": Xte["image"], "audio": lstm.embed(Xte["audio"])}
    model = EarlyFusion(make_model("mlp", hidden_sizes=(16,), max_epochs=20), pca_image=8)
    model.fit(emb_tr, ytr)
    assert model.n_features_in_ == 8 + 8
    check_proba(model.predict_proba(emb_te), len(yte))
    assert (model.predict(emb_te) == yte).mean() > 0.6


def test_early_fusion_missing_modality_is_a_clear_error(data):
    (Xtr, ytr), (Xte, _) = data["train"], data["test"]
    model = EarlyFusion("logreg").fit(Xtr, ytr)
    with pytest.raises(ValueError, match="missing: audio"):
        model.predict_proba({"image": Xte["image"]})
    with pytest.raises(ValueError, match="missing: image"):
        model.predict_proba({"image": None, "audio": Xte["audio"]})


@pytest.mark.parametrize("method", ["mean", "weighted", "product", "stacking", "shrunk"])
def test_late_fusion(method, data):
    model = LateFusion({"image": "logreg", "audio": "logreg"}, method)
    P, acc = fit_eval(model, data)
    assert acc > 0.65
    assert model.fusion_id == f"late:{method}"
    P2, _ = fit_eval(LateFusion({"image": "logreg", "audio": "logreg"}, method), data)
    np.testing.assert_array_equal(P, P2)
    if method == "weighted":
        assert model.combiner_source_ == "val"
        assert sum(model.weights_.values()) == pytest.approx(1.0)
    if method == "stacking":
        assert model.combiner_source_ == "oof"


def test_fusion_beats_each_modality_alone(data):
    (Xtr, ytr), (Xte, yte) = data["train"], data["test"]
    single = [
        (make_model("logreg").fit(Xtr[m], ytr).predict(Xte[m]) == yte).mean()
        for m in ("image", "audio")
    ]
    for fusion in (LateFusion({"image": "logreg", "audio": "logreg"}, "mean"), EarlyFusion()):
        _, acc_fused = fit_eval(fusion, data)
        assert acc_fused > max(single)


def test_late_fusion_with_lstm_and_mlp_members(data):
    models = {
        "image": make_model("mlp", hidden_sizes=(16,), max_epochs=20),
        "audio": make_model("lstm", hidden_size=8, max_epochs=15),
    }
    _, acc = fit_eval(LateFusion(models, "product"), data)
    assert acc > 0.6


def test_stacking_with_sequence_member_uses_out_of_fold_lstm_predictions(data):
    models = {"image": "logreg", "audio": make_model("lstm", hidden_size=8, max_epochs=5)}
    model = LateFusion(models, "stacking", cv=3)
    _, acc = fit_eval(model, data)
    assert model.combiner_source_ == "oof" and acc > 0.6
    assert model.meta_.n_features_in_ == 2 * K


def test_weighted_without_validation_uses_out_of_fold_predictions(data):
    model = LateFusion({"image": "logreg", "audio": "knn"}, "weighted")
    _, acc = fit_eval(model, data, with_val=False)
    assert model.combiner_source_ == "oof" and acc > 0.6


@pytest.mark.parametrize("method", ["mean", "weighted", "product", "stacking", "shrunk"])
def test_hybrid_fusion(method, data):
    model = HybridFusion("logreg", method=method, pca_image=16)
    P, acc = fit_eval(model, data)
    assert acc > 0.65
    assert model.member_names_ == ["early", "image", "audio"]
    assert model.fusion_id == f"hybrid:{method}"
    P2, _ = fit_eval(HybridFusion("logreg", method=method, pca_image=16), data)
    np.testing.assert_array_equal(P, P2)


# -- leakage: the stacking combiner never sees test rows, and only out-of-fold train rows ------
EVENTS: list[tuple[str, int, np.ndarray]] = []
_TOKENS = itertools.count()


class RecordingLogReg(ClassifierMixin, BaseEstimator):
    """Logistic regression that records every matrix it is fitted on or asked to predict."""

    def __init__(self, C: float = 1.0):
        self.C = C

    def fit(self, X, y):
        self.token_ = next(_TOKENS)  # unique per fit; id() is reused after clones are freed
        EVENTS.append(("fit", self.token_, np.array(X, copy=True)))
        self.model_ = LogisticRegression(C=self.C, max_iter=1000).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        EVENTS.append(("predict", self.token_, np.array(X, copy=True)))
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _rows(X: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.asarray(X)}


@pytest.mark.parametrize("use_groups", [False, True])
def test_stacking_never_sees_test_rows_and_uses_out_of_fold_predictions(use_groups, data):
    (Xtr, ytr), (Xva, yva), (Xte, _) = data["train"], data["val"], data["test"]
    groups = np.arange(len(ytr)) // 4 if use_groups else None  # e.g. 4 clips per recording
    model = LateFusion({"image": RecordingLogReg(), "audio": RecordingLogReg()}, "stacking")
    EVENTS.clear()
    model.fit(Xtr, ytr, Xva, yva, groups=groups)
    fit_events = list(EVENTS)
    EVENTS.clear()

    test_rows = _rows(Xte["image"]) | _rows(Xte["audio"].reshape(len(Xte["audio"]), -1))
    train_image = _rows(Xtr["image"])
    finals = {member.token_ for member in model.members_.values()}
    # the final members predict only the validation rows (the guard's check), nothing else
    for kind, i, X in fit_events:
        if kind == "predict" and i in finals:
            assert len(X) == len(yva)
            if X.shape[1] == 64:  # image rows (audio arrives pooled)
                assert _rows(X) == _rows(Xva["image"])
    predicted = [(i, X) for kind, i, X in fit_events if kind == "predict" and i not in finals]
    assert predicted, "stacking must have produced out-of-fold predictions"
    for _, X in predicted:
        assert not (_rows(X) & test_rows)
    # each fold's clone predicts only rows it was not fitted on (and, with groups, whole
    # recordings stay on one side), and every training row is predicted exactly once.
    fitted = {i: X for kind, i, X in fit_events if kind == "fit"}
    image_pred_rows: list[bytes] = []
    row_group = {
        row.tobytes(): g for row, g in zip(Xtr["image"], groups if use_groups else [], strict=False)
    }
    for i, X in predicted:
        assert not (_rows(X) & _rows(fitted[i]))
        if X.shape[1] == 64:
            image_pred_rows += [r.tobytes() for r in X]
            if use_groups:
                pred_groups = {row_group[r.tobytes()] for r in X}
                fit_groups = {row_group[r.tobytes()] for r in fitted[i]}
                assert not (pred_groups & fit_groups)
    assert sorted(image_pred_rows) == sorted(train_image)
    # the final members are fitted on all train rows
    for member in model.members_.values():
        assert len(fitted[member.token_]) == len(ytr)
    check_proba(model.predict_proba(Xte), len(Xte["image"]))


def test_stacking_on_validation_predictions(data):
    (Xtr, ytr), (Xva, yva) = data["train"], data["val"]
    model = LateFusion({"image": RecordingLogReg(), "audio": RecordingLogReg()}, "stacking")
    EVENTS.clear()
    model.set_params(stack_on="val").fit(Xtr, ytr, Xva, yva)
    predicted = [X for kind, _, X in EVENTS if kind == "predict"]
    assert model.combiner_source_ == "val"
    assert all(len(X) == len(yva) for X in predicted)
    with pytest.raises(ValueError, match="stack_on='val' needs"):
        model.fit(Xtr, ytr)


def test_frozen_members_are_not_refitted(data):
    (Xtr, ytr), (Xva, yva) = data["train"], data["val"]
    fitted = {m: RecordingLogReg().fit(Xtr[m].reshape(len(ytr), -1), ytr) for m in Xtr}
    fitted["audio"] = make_model("logreg").fit(Xtr["audio"], ytr)
    members = {m: FrozenEstimator(est) for m, est in fitted.items()}
    EVENTS.clear()
    model = LateFusion(members, "weighted").fit(Xtr, ytr, Xva, yva)
    assert not [e for e in EVENTS if e[0] == "fit"]
    assert model.members_["image"].estimator is fitted["image"]
    assert model.members_["audio"].estimator is fitted["audio"]
    with pytest.raises(NotFittedError):
        LateFusion({"image": FrozenEstimator(make_model("logreg"))}).fit(Xtr, ytr)


def test_out_of_fold_refits_frozen_members_from_scratch(data):
    """OOF predictions must come from fold models, never from the frozen full-train member."""
    (Xtr, ytr), _ = data["train"], data["val"]
    frozen = FrozenEstimator(RecordingLogReg().fit(Xtr["image"].reshape(len(ytr), -1), ytr))
    model = LateFusion({"image": frozen, "audio": "logreg"}, "stacking", cv=3)
    EVENTS.clear()
    model.fit(Xtr, ytr)
    assert model.combiner_source_ == "oof"
    assert len([e for e in EVENTS if e[0] == "fit"]) == 3  # one fresh image model per fold
    assert model.members_["image"] is frozen


# -- missing modality ------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["mean", "weighted", "product", "stacking", "shrunk"])
def test_late_fusion_missing_modality_falls_back(method, data, caplog):
    (Xtr, ytr), (Xva, yva), (Xte, yte) = data["train"], data["val"], data["test"]
    model = LateFusion({"image": "logreg", "audio": "logreg"}, method).fit(Xtr, ytr, Xva, yva)
    model.predict_proba(Xte)
    assert model.last_used_modalities_ == ("audio", "image")
    assert model.last_missing_modalities_ == ()
    expected = model.members_["image"].predict_proba(Xte["image"])
    # guarded combiners answer with their calibrated members (a temperature per member)
    temperature = getattr(model.combiner_, "temperatures", {}).get("image")
    if temperature is not None:
        expected = apply_temperature(expected, temperature)
    for partial in ({"image": Xte["image"]}, {"image": Xte["image"], "audio": None}):
        with caplog.at_level(logging.WARNING, logger="scenefusion.models.fusion"):
            caplog.clear()
            P = model.predict_proba(partial)
        np.testing.assert_allclose(P, expected, rtol=1e-6, atol=1e-7)  # product clips at 1e-7
        assert model.last_used_modalities_ == ("image",)
        assert model.last_missing_modalities_ == ("audio",)
        assert "audio" in caplog.text and "falling back" in caplog.text
    assert (model.predict({"image": Xte["image"]}) == yte).mean() > 0.6
    with pytest.raises(ValueError, match="no member can predict"):
        model.predict_proba({"image": None})


def test_hybrid_missing_modality_drops_early_member(data, caplog):
    (Xtr, ytr), (Xva, yva), (Xte, _) = data["train"], data["val"], data["test"]
    model = HybridFusion("logreg", method="weighted").fit(Xtr, ytr, Xva, yva)
    with caplog.at_level(logging.WARNING, logger="scenefusion.models.fusion"):
        P = model.predict_proba({"audio": Xte["audio"]})
    check_proba(P, len(Xte["audio"]))
    assert model.last_used_members_ == ("audio",)
    assert model.last_used_modalities_ == ("audio",)
    assert model.last_missing_modalities_ == ("image",)
    np.testing.assert_allclose(P, model.members_["audio"].predict_proba(Xte["audio"]), atol=1e-12)
    assert "falling back" in caplog.text


# -- early fusion with a learned audio encoder (a fitted LSTM's embed) ------------------------
def make_ordered(n: int, seed: int):
    """Audio whose class lives only in the temporal order (pooled statistics are at chance).

    Every class plays the same eight values per coefficient, rising, falling or interleaved,
    so [mean | std | min | max] over time cannot tell them apart but an LSTM can. The image
    side is weak on purpose.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    rng.shuffle(y)
    ramp = np.linspace(-1.5, 1.5, 8)
    orders = np.stack([ramp, ramp[::-1], ramp[[0, 7, 1, 6, 2, 5, 3, 4]]])
    weights = np.random.default_rng(7).normal(size=13)
    audio = orders[y][:, :, None] * weights + 0.5 * rng.normal(size=(n, 8, 13))
    centers = 0.15 * np.random.default_rng(123).normal(size=(K, 16))
    image = centers[y] + rng.normal(size=(n, 16))
    return {"image": image.astype(np.float32), "audio": audio.astype(np.float32)}, y


@pytest.fixture(scope="module")
def ordered():
    (Xtr, ytr), (Xte, yte) = make_ordered(120, 0), make_ordered(150, 2)
    lstm = make_model("lstm", hidden_size=8, lr=1e-2, max_epochs=12).fit(Xtr["audio"], ytr)
    return Xtr, ytr, Xte, yte, lstm


def test_early_fusion_with_fitted_lstm_encoder(ordered):
    Xtr, ytr, Xte, yte, lstm = ordered
    state = {k: v.clone() for k, v in lstm.network_.state_dict().items()}
    pooled = EarlyFusion("logreg").fit(Xtr, ytr)
    model = EarlyFusion("logreg", audio_encoder=lstm).fit(Xtr, ytr)
    assert model.n_features_in_ == 16 + lstm.embedding_dim
    P = model.predict_proba(Xte)
    check_proba(P, len(yte))
    acc = (model.predict(Xte) == yte).mean()
    acc_pooled = (pooled.predict(Xte) == yte).mean()
    assert acc > 0.8 and acc > acc_pooled + 0.2  # the order-aware embedding is what helps
    # reproducible, and the encoder is used as given: same object, weights untouched
    P2 = EarlyFusion("logreg", audio_encoder=lstm).fit(Xtr, ytr).predict_proba(Xte)
    np.testing.assert_array_equal(P, P2)
    assert model.audio_encoder is lstm
    for k, v in lstm.network_.state_dict().items():
        assert torch.equal(v, state[k])


def test_audio_encoder_validation(ordered):
    Xtr, ytr, _, _, lstm = ordered
    no_embed = LogisticRegression().fit(Xtr["image"], ytr)
    with pytest.raises(ValueError, match="must expose embed.*LogisticRegression"):
        EarlyFusion(audio_encoder=no_embed).fit(Xtr, ytr)
    with pytest.raises(ValueError, match="LSTMModel is not fitted.*FrozenEstimator"):
        EarlyFusion(audio_encoder=make_model("lstm")).fit(Xtr, ytr)
    with pytest.raises(ValueError, match="lack 'audio'"):
        EarlyFusion(modalities=("image",), audio_encoder=lstm).fit(Xtr, ytr)
    pooled_audio = {"image": Xtr["image"], "audio": Xtr["audio"].mean(axis=1)}
    with pytest.raises(ValueError, match=r"needs \(N, T, C\) audio sequences"):
        EarlyFusion(audio_encoder=lstm).fit(pooled_audio, ytr)


def test_clone_keeps_the_frozen_encoder(ordered):
    Xtr, ytr, Xte, _, lstm = ordered
    frozen = FrozenEstimator(lstm)
    model = EarlyFusion("logreg", pca_image=4, audio_encoder=frozen)
    copy = clone(model)
    assert copy is not model and copy.audio_encoder is frozen
    assert copy.get_params(deep=False).keys() == model.get_params(deep=False).keys()
    fitted = clone(model.fit(Xtr, ytr))  # cloning a fitted fusion also keeps the encoder
    assert fitted.audio_encoder is frozen and not hasattr(fitted, "classifier_")
    np.testing.assert_array_equal(fitted.fit(Xtr, ytr).predict_proba(Xte), model.predict_proba(Xte))
    assert clone(EarlyFusion()).audio_encoder is None


@pytest.mark.parametrize("method", ["stacking", "weighted"])
def test_hybrid_out_of_fold_clones_keep_the_encoder(method, ordered):
    """Stacking/weighting without validation clone the early member once per fold."""
    Xtr, ytr, Xte, yte, lstm = ordered
    early = EarlyFusion("logreg", audio_encoder=FrozenEstimator(lstm))
    model = HybridFusion(early, {"image": "logreg", "audio": "logreg"}, method, cv=3)
    model.fit(Xtr, ytr)
    assert model.combiner_source_ == "oof"
    assert model.members_["early"].audio_encoder.estimator is lstm
    check_proba(model.predict_proba(Xte), len(yte))
    assert (model.predict(Xte) == yte).mean() > 0.8
    P_oof = model._oof_proba(model._member_specs(), Xtr, ytr,
                            list(training_folds(ytr, None, model.cv, model.random_state)))["early"]
    assert (P_oof.argmax(axis=1) == ytr).mean() > 0.8  # folds fitted with a working encoder
    # without the audio modality the early member (and its encoder) is skipped
    P = model.predict_proba({"image": Xte["image"]})
    check_proba(P, len(yte))
    assert model.last_used_members_ == ("image",)


@pytest.mark.parametrize("method", ["mean", "weighted", "product", "stacking", "shrunk"])
def test_member_weights_sum_to_one_and_follow_the_combiner(method, data):
    (Xtr, ytr), (Xva, yva) = data["train"], data["val"]
    model = LateFusion({"image": "logreg", "audio": "logreg"}, method, stack_on="oof")
    weights = model.fit(Xtr, ytr, Xva, yva).member_weights()
    assert set(weights) == {"image", "audio"}
    assert abs(sum(weights.values()) - 1) < 1e-3 and min(weights.values()) >= 0
    if model.guard_note_ is not None:  # a guarded rule that fell back to one member
        assert sorted(weights.values()) == [0.0, 1.0]
    elif method in ("weighted", "product"):  # product learns log-linear weights
        assert weights == {n: round(w, 4) for n, w in model.weights_.items()}
    if method == "mean":
        assert weights == {"image": 0.5, "audio": 0.5}


def test_fusions_in_one_block_share_out_of_fold_members_and_give_the_same_result(data):
    """late:weighted, late:stacking and hybrid in one grid refit the same members on the same
    folds; inside share_out_of_fold that work is done once, with identical predictions."""
    from scenefusion.models.out_of_fold import share_out_of_fold

    (Xtr, ytr), (Xte, _) = data["train"], data["test"]

    def members():
        return {"image": RecordingLogReg(), "audio": RecordingLogReg()}

    EVENTS.clear()
    alone = [LateFusion(members(), m, cv=3).fit(Xtr, ytr) for m in ("stacking", "weighted")]
    fits_alone = len([e for e in EVENTS if e[0] == "fit"])
    EVENTS.clear()
    with share_out_of_fold():
        shared = [LateFusion(members(), m, cv=3).fit(Xtr, ytr) for m in ("stacking", "weighted")]
        other_folds = LateFusion(members(), "stacking", cv=2).fit(Xtr, ytr)
    fits_shared = len([e for e in EVENTS if e[0] == "fit"])
    # alone: per model 2 members x 3 folds + 2 final fits = 8; shared: the second model's
    # 6 fold fits are reused; the cv=2 model shares nothing (other folds): 2 x 2 + 2 = 6
    assert fits_alone == 16 and fits_shared == 8 + 2 + 6
    for a, b in zip(alone, shared, strict=True):
        np.testing.assert_array_equal(a.predict_proba(Xte), b.predict_proba(Xte))
    assert other_folds.combiner_source_ == "oof"
    with share_out_of_fold():
        probe = LateFusion(members(), "stacking", cv=3)
        probe.classes_ = np.unique(ytr)
        P = probe._oof_proba({"image": RecordingLogReg()}, Xtr, ytr,
                             list(training_folds(ytr, None, 3, 0)))["image"]
        with pytest.raises(ValueError, match="read-only"):  # no fit can alter another's inputs
            P[0, 0] = 1.0
