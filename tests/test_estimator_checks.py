"""scikit-learn's own estimator checks on every 2-D model (sequence models take (N, T, C) input,
which the checks do not generate): clone, get/set_params, input validation,
NotFittedError, n_features_in_, error messages."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from scenefusion.models import MODELS, capabilities, make_model

FAST = {"rf": {"n_estimators": 10}, "hgb": {"max_iter": 10}, "mlp": {"max_epochs": 5}}

#: Checks a model fails for a stated reason (scikit-learn's expected_failed_checks mechanism).
EXPECTED_FAILURES = {
    "svm": {
        "check_fit2d_1feature": "Platt calibration runs 5-fold CV, which needs more rows than "
        "the check's 10 and says so in its own words",
    },
}

TWO_D_MODELS = [
    make_model(m, **FAST.get(m, {})) for m in MODELS.list()
    if not capabilities(MODELS.get(m)).sequence_input
]


def test_every_two_d_model_is_checked():
    assert {m.model_id for m in TWO_D_MODELS} == {"svm", "logreg", "rf", "knn", "hgb", "mlp"}


@parametrize_with_checks(
    TWO_D_MODELS, expected_failed_checks=lambda est: EXPECTED_FAILURES.get(est.model_id, {})
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
