"""The console as a practitioner reads it, in a terminal or in a log file: whole run names,
a line per stage where no bar can be seen, no rate for a stage that took no time, and the
folder the demo data was written to."""

from __future__ import annotations

import importlib
import io
from types import SimpleNamespace

import numpy as np
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

import scenefusion.cli.tables as tables
from scenefusion.cli import app
from scenefusion.evaluation import comparison_table, evaluate

cli_app = importlib.import_module("scenefusion.cli.app")  # the module, not the Typer app
NAMES = ["early:effnet_lite0+lstm-emb+logreg", "hybrid:stacking:effnet_lite0[logreg+rf&svm]",
         "image:effnet_lite0+knn"]


def _results():
    y = np.repeat(np.arange(2), 24)
    out = []
    for i, name in enumerate(NAMES):
        r = evaluate(name, y, np.eye(2)[y] * 0.8 + 0.1, ["BEACH", "CITY"],
                     groups=np.arange(48) // 6, n_bootstrap=100)
        r.extra.update(cv_accuracy=0.9 - i / 10, cv_log_loss=0.3)
        out.append(r)
    return out


def test_a_log_file_gets_whole_names_and_figures_the_ci_supports(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(tables, "console", Console(file=buf, width=80))  # not a terminal
    tables.print_results(_results(), "test split")
    lines = buf.getvalue().splitlines()
    for name in NAMES:
        assert any(name in line for line in lines), buf.getvalue()
    assert "0.900" not in buf.getvalue() and "0.90" in buf.getvalue()
    assert "Ranked by grouped cross-validation accuracy" in buf.getvalue()
    order = [next(i for i, line in enumerate(lines) if n in line) for n in NAMES]
    assert order == sorted(order)  # the cross-validation order, best/ first


def _progress() -> tuple[Progress, io.StringIO]:
    buf = io.StringIO()
    return Progress(console=Console(file=buf, width=120)), buf


def test_a_stage_that_took_no_time_shows_no_rate(monkeypatch):
    clock = iter([100.0, 100.00001, 200.0, 202.0])
    monkeypatch.setattr(cli_app, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    bar, _ = _progress()
    update = cli_app.stage_progress(bar, lines=False)
    update("image: effnet_lite0", 0, 96)       # started
    update("image: effnet_lite0", 96, 96)      # all cached: done 10 us later
    assert bar.tasks[0].fields["rate"] == ""
    update("audio: mfcc", 0, 96)
    update("audio: mfcc", 96, 96)              # 2 s of real work
    assert bar.tasks[1].fields["rate"] == "48.0 items/s"


def test_without_a_terminal_each_stage_prints_its_start_and_end(monkeypatch):
    bar, buf = _progress()
    update = cli_app.stage_progress(bar)  # a StringIO console is not a terminal
    update("loading", 0, 3)
    update("loading", 3, 3)
    update("training: image:effnet_lite0+svm", 1, 4)
    update("training: late:product", 4, 4)
    out = buf.getvalue()
    assert "loading: started, 3 to do" in out and "loading: done, 3 in" in out
    assert "training: started, 4 to do" in out and "training: done, 4 in" in out
    assert out.count("training:") == 2  # one line per stage, not per fit


def test_run_on_the_demo_says_where_its_data_lies(monkeypatch, tmp_path):
    import scenefusion.experiment as experiment

    results = _results()
    seen = {}

    def fake_run(cfg, progress=None):
        seen["path"] = experiment.resolve_data(cfg)[0]
        return experiment.RunOutput(tmp_path / "run", results, comparison_table(results),
                                    results[0].name, {"data": 0.1})

    monkeypatch.setattr(experiment, "run_experiment", fake_run)
    monkeypatch.setattr(experiment, "cached_reference_root", lambda: None)
    out = CliRunner().invoke(app, ["run", "--cache", str(tmp_path / "cache")])
    assert out.exit_code == 0, out.output
    text = out.output.replace("\n", "")
    assert f"data folder: {seen['path']}" in text
    assert (seen["path"] / "SYNTHETIC.txt").is_file()
