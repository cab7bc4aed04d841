"""A run's report as a practitioner reads it: figures no more precise than their CIs, rows
ranked by what chose the saved model (never by test accuracy), identical results shown once,
long run names whole in the confusion-matrix titles, and notes naming only what the run used."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from scenefusion.cli import app
from scenefusion.data.synthetic import DEMO_RECIPE, make_pairs_folder
from scenefusion.evaluation import comparison_table, evaluate, safe_name, write_reports
from scenefusion.evaluation import plots as plots_module
from scenefusion.evaluation.rounding import supported_decimals

CLASSES = ["BEACH", "CITY", "FOREST", "RIVER"]
LONG = "hybrid:stacking:effnet_lite0[logreg+rf&svm]"


def _result(name: str, wrong: int, val: float | None = None, cv: float | None = None,
            seed: int = 0):
    """A run scored on 48 test items from 8 groups, ``wrong`` of them misclassified."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), 12)
    pred = y.copy()
    pred[rng.choice(48, wrong, replace=False)] = (y[:wrong] + 1) % 4 if wrong else []
    proba = np.full((48, 4), 0.02) + 0.94 * np.eye(4)[pred]
    r = evaluate(name, y, proba / proba.sum(1, keepdims=True), CLASSES,
                 groups=np.arange(48) // 6, n_bootstrap=300, seed=0)
    r.extra.update({"val_accuracy": val} if val is not None else {})
    r.extra.update({"cv_accuracy": cv, "cv_log_loss": 0.3} if cv is not None else {})
    return r


def test_figures_have_the_decimals_the_ci_supports(tmp_path):
    results = [_result("image:effnet_lite0+knn", 9, cv=0.7),
               _result("image:effnet_lite0+rf", 11, cv=0.8, seed=1)]
    table = comparison_table(results)
    width = float(np.median(table["ci_high"] - table["ci_low"]))
    assert 0.1 < width < 1  # 48 items: the CI is tenths wide, so two decimals at most
    assert supported_decimals(table) == 2
    write_reports(results, tmp_path, CLASSES)
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    for text in (md, html, (tmp_path / "reports/image_effnet_lite0+knn.txt").read_text()):
        assert not re.search(r"\d\.\d{3}", text.split("## Configuration")[0]), text
    assert f"{results[0].accuracy:.2f}" in md
    # a large test set with a narrow CI keeps more digits; the JSON keeps them all
    narrow = pd.DataFrame({"ci_low": [0.801], "ci_high": [0.809], "n_test": [20000]})
    assert supported_decimals(narrow) == 3
    none = pd.DataFrame({"ci_low": [np.nan], "ci_high": [np.nan], "n_test": [5000]})
    assert supported_decimals(none) == 4
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["comparison"][0]["accuracy"] in {r.accuracy for r in results}


def test_the_comparison_is_ranked_by_the_selection_figure_not_test_accuracy(tmp_path):
    # the run picked rf by cross-validation although knn scored better on the test split
    knn = _result("image:effnet_lite0+knn", 3, cv=0.70)
    rf = _result("image:effnet_lite0+rf", 12, cv=0.85, seed=1)
    assert knn.accuracy > rf.accuracy
    table = comparison_table([knn, rf])
    assert table["name"].tolist() == [rf.name, knn.name]
    write_reports([knn, rf], tmp_path, CLASSES)
    md = (tmp_path / "report.md").read_text()
    assert "Ranked by grouped cross-validation accuracy" in md
    assert "CV acc. (ranks)" in md
    assert md.index(f"| 1 | {rf.name} |") < md.index(f"| 2 | {knn.name} |")
    # validation accuracy ranks where it chose; test accuracy only where nothing else exists
    by_val = comparison_table([_result("a", 3, val=0.5), _result("b", 12, val=0.9, seed=1)])
    assert by_val["name"].tolist() == ["b", "a"]
    bare = comparison_table([_result("a", 12, seed=1), _result("b", 3)])
    assert bare["name"].tolist() == ["b", "a"]


def test_identical_results_are_one_section_naming_every_run(tmp_path):
    names = [f"late:{m}:effnet_lite0[rf&svm]" for m in ("product", "stacking", "shrunk")]
    same = [_result(n, 0, cv=1.0) for n in names]
    other = _result("image:effnet_lite0+knn", 9, cv=0.7)
    write_reports([*same, other], tmp_path, CLASSES)
    md = (tmp_path / "report.md").read_text()
    sections = md.split("## Per-model results")[1]
    assert sections.count("### ") == 2
    assert "### 3 runs with identical test results" in sections
    assert all(n in sections for n in names)
    html = (tmp_path / "report.html").read_text()
    for name in names:  # every table link still lands on its section
        assert f'href="#model-{safe_name(name)}"' in html
        assert f'id="model-{safe_name(name)}"' in html
    assert html.count('<section class="model"') == 2
    assert len(list((tmp_path / "plots").glob("confusion_*.png"))) == 4


def test_long_names_wrap_inside_the_confusion_matrix_figure(tmp_path, monkeypatch):
    seen = []
    save = plots_module._save

    def checked(fig, path, fit_outside=False):
        renderer = fig.canvas.get_renderer()
        title = fig.axes[0].title
        box = title.get_window_extent(renderer)
        seen.append(title.get_text())
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width, (box, fig.bbox)
        return save(fig, path, fit_outside)

    monkeypatch.setattr(plots_module, "_save", checked)
    name = LONG + "+early:effnet_lite0+lstm-emb+logreg (LSTM audio embedding)"
    plots_module.plot_confusion_matrix(_result(name, 3), CLASSES, tmp_path / "cm.png")
    assert seen and re.sub(r"\s", "", seen[0]).startswith(re.sub(r"\s", "", name))
    assert "counts in brackets" in seen[0]


def test_an_image_only_run_names_no_audio_feature(tmp_path):
    data = tmp_path / "photos"
    make_pairs_folder(data, classes=("BEACH", "CITY", "FOREST"), groups_per_class=5,
                      frames_per_group=3, sounds=DEMO_RECIPE["sounds"][:3])
    for wav in data.glob("*/*.wav"):
        wav.unlink()
    rows = [{"image": str(p.relative_to(data)), "label": p.parent.name,
             "group": p.stem.rsplit("_", 1)[0]} for p in sorted(data.glob("*/*.png"))]
    pd.DataFrame(rows).to_csv(data / "manifest.csv", index=False)
    cfg = tmp_path / "experiment.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"path": str(data / "manifest.csv")},
        "models": {"image": ["logreg"]},
        "evaluation": {"n_bootstrap": 0, "explain_errors": 0},
        "output": {"runs_dir": str(tmp_path / "runs"), "name": "r"},
    }))
    result = CliRunner().invoke(app, ["run", str(cfg)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "r"
    notes = " ".join(json.loads((run / "metrics.json").read_text())["notes"])
    assert "image" in notes
    for text in (notes, result.output):
        assert not re.search(r"mfcc|aisfx|features\.audio", text, re.I), text
    bundle = json.loads((run / "best/bundle.json").read_text())
    assert bundle["kind"] == "image"
    assert "audio_features" not in bundle and "audio_source" not in bundle


@pytest.mark.parametrize("width", [80, 200])
def test_wrap_keeps_every_character(width):
    from scenefusion.evaluation.plots import wrap_name

    wrapped = wrap_name(LONG + " " + "x" * 120, width // 4)
    assert all(len(line) <= width // 4 for line in wrapped.splitlines())
    assert wrapped.replace("\n", "").replace(" ", "") == (LONG + "x" * 120)
