"""Calibrated confidence: ECE, temperature scaling (kept only where it helps on held-out
groups), near-tie warnings."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from scenefusion.evaluation.calibration import (
    Calibration,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    near_tie,
)


def sampled(temperature: float, n: int = 4000, k: int = 5, seed: int = 0):
    """Labels drawn from softmax(z / T) while the model claims softmax(z): a model that is
    overconfident by exactly T."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=(n, k))
    truth = softmax(z / temperature, axis=1)
    y = np.array([rng.choice(k, p=p) for p in truth])
    return softmax(z, axis=1), y


def test_ece_is_near_zero_for_a_calibrated_model_and_large_for_an_overconfident_one():
    proba, y = sampled(1.0)
    assert expected_calibration_error(proba, y) < 0.03
    proba, y = sampled(3.0)
    assert expected_calibration_error(proba, y) > 0.15


def test_temperature_recovers_the_overconfidence_and_keeps_every_prediction():
    proba, y = sampled(2.5, seed=1)
    t = fit_temperature(proba, y)
    assert t == pytest.approx(2.5, abs=0.35)
    fixed = apply_temperature(proba, t)
    assert np.allclose(fixed.sum(axis=1), 1.0)
    assert (fixed.argmax(axis=1) == proba.argmax(axis=1)).all()
    assert expected_calibration_error(fixed, y) < expected_calibration_error(proba, y) / 3


def test_a_validation_set_without_errors_never_sharpens():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    assert fit_temperature(proba, np.array([0, 1, 2])) >= 1.0


def test_calibration_record_fits_on_validation_and_reports_test_ece():
    val, y_val = sampled(2.0, n=1500, seed=2)
    test, y_test = sampled(2.0, n=1500, seed=3)
    record = Calibration.fit(val, y_val, test, y_test)
    assert record.temperature > 1.5 and record.n_items == 1500
    assert record.ece_after < record.ece_before
    assert record.to_dict()["method"] == "temperature"


def test_near_ties_are_named_and_clear_winners_are_not():
    classes = ["BEACH", "CITY", "FOREST", "RIVER"]
    warning = near_tie(np.array([0.286, 0.286, 0.286, 0.142]), classes)
    assert "BEACH 0.286" in warning and "FOREST 0.286" in warning and "RIVER" not in warning
    assert near_tie(np.array([0.7, 0.1, 0.1, 0.1]), classes) == ""


def test_a_temperature_is_kept_only_where_it_lowers_ece_on_held_out_groups():
    groups = np.repeat(np.arange(40), 100)  # 40 recordings of 100 rows
    over, y = sampled(2.5)
    kept = Calibration.fit_checked(over, y, groups, over, y, "validation split")
    assert kept.applied and kept.temperature > 1.5
    assert kept.held_out_ece_after < kept.held_out_ece_before
    assert kept.ece_after < kept.ece_before
    calibrated, y = sampled(1.0, seed=1)
    # a well-calibrated model: a fitted T only adds noise, so T = 1 is kept unless the
    # held-out groups say otherwise -- and it is the held-out figure that decides
    record = Calibration.fit_checked(calibrated, y, groups, calibrated, y, "validation split")
    assert record.applied == (record.held_out_ece_after < record.held_out_ece_before)
    if not record.applied:
        assert record.temperature == 1.0 and record.ece_after == record.ece_before


def test_one_group_cannot_check_a_temperature_so_none_is_applied():
    over, y = sampled(2.5, n=300)
    record = Calibration.fit_checked(over, y, np.zeros(300), over, y, "validation split")
    assert not record.applied and record.temperature == 1.0
    assert record.held_out_ece_before is None


def test_held_out_confidence_and_accuracy_are_recorded_with_the_kept_temperature():
    groups = np.repeat(np.arange(40), 100)
    over, y = sampled(4.0)
    kept = Calibration.fit_checked(over, y, groups, over, y, "out-of-fold predictions")
    raw_confidence, accuracy = over.max(axis=1).mean(), np.mean(over.argmax(axis=1) == y)
    assert raw_confidence - accuracy > 0.15  # the model as it came was far too sure
    assert kept.applied and kept.held_out_accuracy == pytest.approx(accuracy, abs=1e-4)
    assert abs(kept.held_out_confidence - kept.held_out_accuracy) < 0.05  # T fixed most of it
    alone = Calibration.fit_checked(over, y, np.zeros(len(y)), over, y, "validation split")
    assert not alone.applied  # nothing to check a temperature on: the raw figures stand
    assert alone.held_out_confidence == pytest.approx(raw_confidence, abs=1e-4)
    assert set(kept.to_dict()) >= {"held_out_confidence", "held_out_accuracy"}


@pytest.mark.parametrize(("confidence", "accuracy", "warned"),
                         [(0.93, 0.42, True), (0.80, 0.70, False), (None, None, False)])
def test_predict_says_when_held_out_confidence_ran_far_above_accuracy(confidence, accuracy,
                                                                      warned, tmp_path):
    from scenefusion.predict import Bundle

    info = {"name": "best-audio", "kind": "audio", "classes": ["a", "b"],
            "calibration": {"temperature": 1.0, "held_out_confidence": confidence,
                            "held_out_accuracy": accuracy}}
    warning = Bundle(tmp_path, info, model=None).provenance_warning()
    assert ("93% sure on average but right 42% of the time" in warning) == warned
    assert bool(warning) == warned
