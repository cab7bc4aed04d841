"""Tests for scenefusion.evaluation: exact metric values, bootstrap CIs, plots and reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from scenefusion.evaluation import (
    COMPARISON_COLUMNS,
    EvaluationResult,
    bootstrap_accuracy,
    comparison_table,
    evaluate,
    load_results,
    plot_comparison,
    plot_confusion_matrix,
    row_normalize,
    safe_name,
    write_reports,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _one_hot_proba(y_pred: list[int], k: int, conf: float = 0.9) -> np.ndarray:
    """Probabilities whose argmax is y_pred (the rest of the mass spread evenly)."""
    p = np.full((len(y_pred), k), (1.0 - conf) / (k - 1))
    p[np.arange(len(y_pred)), y_pred] = conf
    return p


# --- exact values on hand-computable examples -------------------------------------------


def test_accuracy_075_case_exact_values() -> None:
    y_true = np.array([0, 0, 1, 1])
    proba = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.9, 0.1]])  # preds 0,0,1,0
    r = evaluate("image:vgg19+svm", y_true, proba, ["beach", "city"], n_bootstrap=0)

    assert r.accuracy == pytest.approx(0.75)
    # class 0: tp=2 fp=1 fn=0 -> P=2/3 R=1 F1=0.8; class 1: tp=1 fp=0 fn=1 -> P=1 R=.5 F1=2/3
    assert r.precision_per_class == pytest.approx([2 / 3, 1.0])
    assert r.recall_per_class == pytest.approx([1.0, 0.5])
    assert r.f1_per_class == pytest.approx([0.8, 2 / 3])
    assert r.support_per_class == [2, 2]
    assert r.macro_precision == pytest.approx(5 / 6)
    assert r.macro_recall == pytest.approx(0.75)
    assert r.macro_f1 == pytest.approx(11 / 15)
    assert r.weighted_f1 == pytest.approx(11 / 15)
    assert r.balanced_accuracy == pytest.approx(0.75)
    expected_ll = -(math.log(0.8) + math.log(0.6) + math.log(0.7) + math.log(0.1)) / 4
    assert r.log_loss == pytest.approx(expected_ll)
    np.testing.assert_array_equal(r.confusion_matrix, [[2, 0], [1, 1]])
    assert r.n_test == 4
    assert "beach" in r.classification_report and "city" in r.classification_report
    assert r.ci_low is None and r.ci_high is None


def test_perfect_predictions() -> None:
    y_true = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[y_true]
    r = evaluate("late:stacking", y_true, proba, ["a", "b", "c"], n_bootstrap=200)
    for v in (r.accuracy, r.balanced_accuracy, r.macro_precision, r.macro_recall, r.macro_f1):
        assert v == 1.0
    assert r.weighted_f1 == 1.0
    assert r.log_loss == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(r.confusion_matrix, np.diag([2, 2, 2]))
    assert (r.ci_low, r.ci_high) == (1.0, 1.0)


def test_class_absent_from_y_true_does_not_crash() -> None:
    # K=3 but class 2 never occurs in y_true; one row is wrongly predicted as class 2.
    y_true = np.array([0, 0, 1, 1])
    proba = _one_hot_proba([0, 2, 1, 1], k=3)
    r = evaluate("audio:vggish+lr", y_true, proba, ["forest", "street", "rain"], n_bootstrap=50)
    assert r.accuracy == pytest.approx(0.75)
    assert r.precision_per_class == pytest.approx([1.0, 1.0, 0.0])
    assert r.recall_per_class == pytest.approx([0.5, 1.0, 0.0])
    assert r.f1_per_class == pytest.approx([2 / 3, 1.0, 0.0])
    assert r.support_per_class == [2, 2, 0]
    # Macro over all K labels (as in the report); balanced accuracy over present classes.
    assert r.macro_precision == pytest.approx(2 / 3)
    assert r.macro_recall == pytest.approx(0.5)
    assert r.macro_f1 == pytest.approx(5 / 9)
    assert r.balanced_accuracy == pytest.approx(0.75)
    assert r.confusion_matrix.shape == (3, 3)
    np.testing.assert_array_equal(r.confusion_matrix, [[1, 0, 1], [0, 2, 0], [0, 0, 0]])
    assert math.isfinite(r.log_loss)
    assert "rain" in r.classification_report


def test_float32_softmax_drift_is_accepted_and_float_labels_cast() -> None:
    proba = np.array([[0.7, 0.3000001], [0.2, 0.8]], dtype=np.float32)
    r = evaluate("x", np.array([0.0, 1.0]), proba, ["a", "b"], n_bootstrap=0)
    assert r.accuracy == 1.0


@pytest.mark.parametrize(
    ("y_true", "proba", "names", "match"),
    [
        ([0, 1], [[0.5, 0.5]], ["a", "b"], "rows"),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], ["a"], "class_names"),
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"], "lie in"),
        ([0, 1], [[2.0, 1.0], [0.1, 3.0]], ["a", "b"], "sum to 1"),
        ([0, 1], [[1.5, -0.5], [0.5, 0.5]], ["a", "b"], "negative"),
        ([0, 1], [[np.nan, 0.5], [0.5, 0.5]], ["a", "b"], "NaN"),
        ([0.5, 1], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"], "integer"),
    ],
)
def test_invalid_inputs_raise(y_true, proba, names, match) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate("bad", np.array(y_true), np.array(proba), names, n_bootstrap=0)


# --- bootstrap ----------------------------------------------------------------------------


def _clustered_data(n_groups: int = 10, per_group: int = 100):
    """Half the videos entirely right, half entirely wrong: accuracy 0.5, strong clustering."""
    groups = np.repeat(np.arange(n_groups), per_group)
    y_true = np.zeros(len(groups), dtype=int)
    pred = np.where(groups < n_groups // 2, 0, 1)
    return y_true, _one_hot_proba(pred.tolist(), k=2), groups


def test_grouped_ci_contains_point_estimate_and_is_deterministic() -> None:
    y, p, g = _clustered_data()
    r1 = evaluate("m", y, p, ["a", "b"], groups=g, n_bootstrap=500, seed=3)
    r2 = evaluate("m", y, p, ["a", "b"], groups=g, n_bootstrap=500, seed=3)
    r3 = evaluate("m", y, p, ["a", "b"], groups=g, n_bootstrap=500, seed=4)
    assert r1.accuracy == pytest.approx(0.5)
    assert r1.ci_low <= r1.accuracy <= r1.ci_high
    assert (r1.ci_low, r1.ci_high) == (r2.ci_low, r2.ci_high)
    # With 10 groups the CI ends snap to multiples of 0.1, so compare the replicates.
    correct = (p.argmax(axis=1) == y).astype(float)
    s3 = bootstrap_accuracy(correct, g, n_bootstrap=500, seed=3)
    np.testing.assert_array_equal(s3, bootstrap_accuracy(correct, g, n_bootstrap=500, seed=3))
    assert not np.array_equal(s3, bootstrap_accuracy(correct, g, n_bootstrap=500, seed=4))
    assert r3.ci_low <= r3.accuracy <= r3.ci_high
    assert r1.bootstrap_unit == "group" and r1.n_groups == 10


def test_grouped_ci_wider_than_frame_level() -> None:
    y, p, g = _clustered_data()
    grouped = evaluate("m", y, p, ["a", "b"], groups=g, n_bootstrap=1000, seed=0)
    frames = evaluate("m", y, p, ["a", "b"], groups=None, n_bootstrap=1000, seed=0)
    assert frames.bootstrap_unit == "frame" and frames.n_groups is None
    assert frames.ci_low <= frames.accuracy <= frames.ci_high
    width_grouped = grouped.ci_high - grouped.ci_low
    width_frames = frames.ci_high - frames.ci_low
    # Frame-level: ~ +-1.96*sqrt(.25/1000) ~ 0.06 wide; grouped: ~ +-1.96*sqrt(.25/10) ~ 0.6.
    assert width_grouped > 3 * width_frames


def test_grouped_bootstrap_weights_groups_by_size() -> None:
    # Each replicate pools frames, so with identical groups every replicate equals the mean.
    correct = np.tile([1.0, 0.0, 1.0, 1.0], 5)
    groups = np.repeat(np.arange(5), 4)
    stats = bootstrap_accuracy(correct, groups, n_bootstrap=100, seed=0)
    np.testing.assert_allclose(stats, 0.75)


def test_string_groups_supported() -> None:
    y, p, g = _clustered_data(n_groups=6, per_group=5)
    r_int = evaluate("m", y, p, ["a", "b"], groups=g, n_bootstrap=300, seed=1)
    r_str = evaluate(
        "m", y, p, ["a", "b"], groups=np.array([f"vid{i}" for i in g]), seed=1, n_bootstrap=300
    )
    assert (r_int.ci_low, r_int.ci_high) == (r_str.ci_low, r_str.ci_high)


# --- serialisation and table -----------------------------------------------------------


def _three_results() -> list[EvaluationResult]:
    names = ["beach", "city", "forest"]
    y = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    g = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    preds = {
        "image:vgg19+svm": [0, 0, 1, 0, 2, 2, 0, 1],  # 7/8
        "audio:vggish+lr": [0, 1, 1, 0, 2, 0, 0, 1],  # 5/8
        "late:stacking": [0, 0, 1, 1, 2, 2, 0, 1],  # 8/8
    }
    return [
        evaluate(n, y, _one_hot_proba(pr, 3), names, groups=g, n_bootstrap=200)
        for n, pr in preds.items()
    ]


def test_to_dict_is_json_and_round_trips() -> None:
    r = _three_results()[0]
    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = EvaluationResult.from_dict(json.loads(text))
    assert back == r
    assert isinstance(back.confusion_matrix, np.ndarray)
    np.testing.assert_array_equal(back.confusion_matrix, r.confusion_matrix)
    assert back.per_class_table()["support"].tolist() == r.support_per_class


def test_comparison_table_sorted_with_expected_columns() -> None:
    df = comparison_table(_three_results())
    assert list(df.columns) == COMPARISON_COLUMNS
    assert df["name"].tolist() == ["late:stacking", "image:vgg19+svm", "audio:vggish+lr"]
    assert df["accuracy"].is_monotonic_decreasing
    assert df["accuracy"].tolist() == pytest.approx([1.0, 0.875, 0.625])
    assert (df["ci_low"] <= df["accuracy"]).all() and (df["accuracy"] <= df["ci_high"]).all()
    assert comparison_table([]).empty


# --- plots -------------------------------------------------------------------------------


def _assert_png(path: Path) -> None:
    assert path.exists()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50


def test_row_normalize_handles_empty_rows() -> None:
    out = row_normalize(np.array([[2, 2], [0, 0]]))
    np.testing.assert_array_equal(out, [[0.5, 0.5], [0.0, 0.0]])


def test_confusion_cells_show_counts_beside_shares() -> None:
    from scenefusion.evaluation.plots import cell_text

    assert cell_text(0.5, 6, normalize=True) == "0.50\n(6)"
    assert cell_text(6.0, 6, normalize=False) == "6"


def test_plot_confusion_matrix_png(tmp_path: Path) -> None:
    r = _three_results()[0]
    p1 = plot_confusion_matrix(r, r.class_names, tmp_path / "a" / "cm.png")
    p2 = plot_confusion_matrix(
        r.confusion_matrix,
        r.class_names,
        tmp_path / "cm_counts.png",
        normalize=False,
        title="counts",
    )
    _assert_png(p1)
    _assert_png(p2)
    with pytest.raises(ValueError):
        plot_confusion_matrix(r.confusion_matrix, ["only", "two"], tmp_path / "bad.png")


def test_plot_comparison_many_runs(tmp_path: Path) -> None:
    base = _three_results()
    many = []
    for i in range(30):
        d = base[i % 3].to_dict()
        d["name"] = f"{d['name']}#{i}"
        d["accuracy"] = 0.3 + 0.02 * i
        d["ci_low"], d["ci_high"] = d["accuracy"] - 0.05, min(1.0, d["accuracy"] + 0.05)
        many.append(EvaluationResult.from_dict(d))
    _assert_png(plot_comparison(many, tmp_path / "cmp.png"))
    _assert_png(plot_comparison(many, tmp_path / "ll.png", metric="log_loss"))
    with pytest.raises(ValueError):
        plot_comparison(many, tmp_path / "x.png", metric="nope")


# --- reports -----------------------------------------------------------------------------


def test_safe_name() -> None:
    assert safe_name("image:vgg19+svm") == "image_vgg19+svm"
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("///") == "run"


def test_write_reports_and_reload(tmp_path: Path) -> None:
    results = _three_results()
    config = "model: <vgg19> & 'svm'\nfusion: late"
    paths = write_reports(
        results,
        tmp_path,
        results[0].class_names,
        title="test run",
        config_text=config,
        notes=["split by video"],
    )
    for key in ("metrics_json", "report_md", "report_html", "comparison_plot"):
        assert paths[key].exists(), key
    _assert_png(paths["comparison_plot"])
    for r in results:
        txt = paths[f"report:{r.name}"]
        assert txt.parent == tmp_path / "reports"
        assert ":" not in txt.name
        assert "precision" in txt.read_text()
        _assert_png(paths[f"confusion:{r.name}"])

    md = paths["report_md"].read_text()
    page = paths["report_html"].read_text()
    for r in results:
        assert r.name in md
        assert r.name in page
    assert "plots/confusion_image_vgg19+svm.png" in md
    assert page.count("data:image/png;base64,") == len(results) + 1
    assert "plots/" not in page  # self-contained: no links to files on disk
    assert "&lt;vgg19&gt; &amp; &#x27;svm&#x27;" in page
    assert "<vgg19>" not in page
    assert "split by video" in md and "split by video" in page

    data = json.loads(paths["metrics_json"].read_text())
    assert [row["name"] for row in data["comparison"]] == [
        "late:stacking",
        "image:vgg19+svm",
        "audio:vggish+lr",
    ]
    loaded = load_results(tmp_path)
    assert loaded == results
    assert load_results(paths["metrics_json"]) == results

    # Re-render from the saved run alone into a fresh folder.
    again = write_reports(loaded, tmp_path / "rerender", loaded[0].class_names)
    assert again["report_html"].exists()
    assert load_results(tmp_path / "rerender") == results


def test_write_reports_escapes_names_and_dedupes_files(tmp_path: Path) -> None:
    base = _three_results()[0].to_dict()
    a = EvaluationResult.from_dict({**base, "name": "<script>x</script>"})
    b = EvaluationResult.from_dict({**base, "name": "a:b"})
    c = EvaluationResult.from_dict({**base, "name": "a/b"})
    paths = write_reports([a, b, c], tmp_path, a.class_names)
    page = paths["report_html"].read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert paths["report:a:b"] != paths["report:a/b"]
    assert len(list((tmp_path / "reports").iterdir())) == 3


def test_write_reports_rejects_bad_input(tmp_path: Path) -> None:
    r = _three_results()[0]
    with pytest.raises(ValueError, match="duplicate"):
        write_reports([r, r], tmp_path, r.class_names)
    with pytest.raises(ValueError, match="classes"):
        write_reports([r], tmp_path, ["x", "y", "z"])
    with pytest.raises(ValueError):
        write_reports([], tmp_path, r.class_names)


def test_confusion_matrices_drawn_in_the_background_are_the_reports_own(tmp_path: Path) -> None:
    """A helper process draws matrices while the grid trains; the report uses a drawing only
    when its counts are the result's, and draws the others itself."""
    from scenefusion.evaluation.background import BackgroundPlots
    from scenefusion.evaluation.metrics import confusion_counts

    results = _three_results()
    good, stale = results[0], results[1]
    wrong = np.asarray(stale.confusion_matrix).copy()
    wrong[0, 0] += 1  # as if drawn from other predictions
    with BackgroundPlots() as plots:
        plots.submit(good.name, good.confusion_matrix, good.class_names)
        plots.submit(stale.name, wrong, stale.class_names)
        drawn = plots.finished()
        scratch = plots._scratch
    assert set(drawn) == {good.name, stale.name} and not scratch.exists()  # moved or removed

    with BackgroundPlots() as plots:
        plots.submit(good.name, good.confusion_matrix, good.class_names)
        plots.submit(stale.name, wrong, stale.class_names)
        plots.submit_comparison(results)
        drawn = plots.finished()
        from_helper = drawn[good.name][1].read_bytes()
        chart = plots.comparison()
        paths = write_reports(results, tmp_path, results[0].class_names, drawn=drawn,
                              drawn_comparison=chart)
    assert paths[f"confusion:{good.name}"].read_bytes() == from_helper
    plot_comparison(results, tmp_path / "expected_comparison.png")
    assert paths["comparison_plot"].read_bytes() == (
        tmp_path / "expected_comparison.png").read_bytes()
    redrawn = paths[f"confusion:{stale.name}"]  # drawn again in-process from the true counts
    plot_confusion_matrix(stale, stale.class_names, tmp_path / "expected.png")
    assert redrawn.read_bytes() == (tmp_path / "expected.png").read_bytes()
    _assert_png(paths[f"confusion:{results[2].name}"])  # never submitted: drawn in-process

    y, proba = np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    np.testing.assert_array_equal(confusion_counts(y, proba, 2), [[1, 0], [1, 1]])


def test_background_plotting_switched_off_draws_everything_in_process(tmp_path: Path) -> None:
    from scenefusion.evaluation.background import BackgroundPlots

    results = _three_results()
    with BackgroundPlots(enabled=False) as plots:
        plots.submit(results[0].name, results[0].confusion_matrix, results[0].class_names)
        plots.submit_comparison(results)
        assert plots.finished() == {} and plots.comparison() is None
        paths = write_reports(results, tmp_path, results[0].class_names, drawn=plots.finished())
    _assert_png(paths["comparison_plot"])
    for r in results:
        _assert_png(paths[f"confusion:{r.name}"])


def test_importing_the_evaluation_package_leaves_matplotlib_for_when_a_plot_is_drawn():
    """A run whose plots a helper process draws never pays for matplotlib in the main one."""
    import subprocess
    import sys

    code = ("import sys, scenefusion.evaluation as e, scenefusion.experiment; "
            "assert 'matplotlib' not in sys.modules; e.plot_comparison; "
            "assert 'matplotlib' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
