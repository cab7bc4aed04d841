"""Run one experiment end to end: data -> split -> features -> models -> fusion -> reports.

The only module that knows every stage: it loads and checks the data, extracts features, runs
the comparison grid (grid.py), picks and calibrates the saved models on validation, and writes
the run folder. Test accuracy is only reported, never used to choose.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .config import ExperimentConfig
from .cpu import limit_threads, thread_budget
from .data import DataError, Dataset, Split, load_dataset, loading_stage, make_split
from .data.download import cached_reference_root
from .data.synthetic import DEMO_NOTE, demo_data_path, is_synthetic
from .evaluation import (
    EvaluationResult,
    comparison_table,
    evaluate,
    load_results,
    write_reports,
)
from .evaluation.background import BackgroundPlots
from .evaluation.calibration import Calibration, expected_calibration_error
from .evaluation.metrics import confusion_counts
from .evaluation.saliency import explain_worst_errors
from .features.audio.auto import audio_recipe
from .features.extract import DatasetFeatures, extract_dataset
from .features.image import ImageExtractor
from .features.store import FeatureStore
from .files import FileProblem, ensure_writable_dir, read_json_object
from .grid import Candidate, ComparisonGrid, Progress, pick
from .grid.calibrate import below_best_member, calibrate, calibration_note, columns
from .models.bundle_files import save_bundle
from .plan import RunPlan, resolve_plan, video_options
from .runners import make_runner

log = logging.getLogger(__name__)

#: A file in a run folder that is still being written or whose run stopped early.
INCOMPLETE_MARKER = "INCOMPLETE"

@dataclass
class RunOutput:
    run_dir: Path
    results: list[EvaluationResult]
    table: pd.DataFrame
    best: str
    timings: dict[str, float]
    notes: list[str] = field(default_factory=list)
    skipped: list = field(default_factory=list)
    extraction: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class _Run:
    """One run in progress: where it writes, what it does (the resolved plan), what its saved
    models say they were trained on, its clock and progress, and the notes its report will
    list (gathered here, in the order the stages added them)."""

    dir: Path
    plan: RunPlan
    provenance: dict
    timer: _Timer
    progress: Progress | None
    notes: list[str]


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str):
        timer = self

        class _Span:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[stage] = timer.seconds.get(stage, 0.0) + time.perf_counter() - self.t

        return _Span()


def resolve_data(config: ExperimentConfig) -> tuple[Path, str | None]:
    """The data a run uses and a note saying where it came from when the config named none:
    the reference set downloaded into the cache, else the synthetic demo set."""
    if config.data.path is not None:
        return Path(config.data.path), None
    cached = cached_reference_root()
    if cached is not None:
        return cached, f"Data: the reference data set found in the cache at {cached}"
    return demo_data_path(FeatureStore(config.features.cache_dir).root), DEMO_NOTE


def load_data(config: ExperimentConfig, path: Path, progress: Progress | None = None
              ) -> Dataset:
    """The data set at ``path`` read as the config says (layout, classes, checks, how videos
    are cut): what ``run`` and ``extract`` both train or extract from."""
    stage = loading_stage(path, config.data.layout)
    cb = (lambda d, t: progress(stage, d, t)) if progress else None
    return load_dataset(path, layout=config.data.layout, classes=config.data.classes,
                        check_files=config.data.check_files,
                        allow_outside=config.data.allow_outside_paths, progress=cb,
                        options=video_options(config))


def _load(config: ExperimentConfig, notes: list[str], progress: Progress | None
          ) -> tuple[Dataset, str | None]:
    """The data set and the note saying where it came from (None when the config named it)."""
    path, note = resolve_data(config)
    if note:
        notes.append(note)
    return load_data(config, path, progress), note


def run_experiment(config: ExperimentConfig, progress: Progress | None = None) -> RunOutput:
    """Run the comparison grid of `config` and write the run folder; returns what it measured.

    Every library's threads are capped at ``config.threads`` (default: the cores this process
    may use) for the whole run, see :mod:`scenefusion.cpu`."""
    with limit_threads(config.threads):
        return _run_experiment(config, progress)


def _run_experiment(config: ExperimentConfig, progress: Progress | None) -> RunOutput:
    timer = _Timer()
    notes: list[str] = []
    store = FeatureStore(config.features.cache_dir)
    # Output folders and data are checked before minutes of work; the run folder then exists
    # from the first expensive step, marked incomplete until its last file is written.
    store.check_writable()
    ensure_writable_dir(config.output.runs_dir, "runs folder")
    with timer("data"):
        dataset, data_note = _load(config, notes, progress)
        require_trainable(dataset)
        # every id resolved once; the run (and its saved config) names what auto chose
        plan = resolve_plan(config, dataset)
        notes += plan.notes
        config = plan.config
        # the split the run will make, tried now: a class with one source video fails here,
        # not after extraction (bad files found later can only shrink a side further)
        make_split(dataset, config.split.strategy, config.split.test_fraction,
                   config.split.val_fraction, config.split.seed)
    run_dir = _run_dir(config)
    marker = run_dir / INCOMPLETE_MARKER
    marker.write_text("this run has not finished: its results are missing or partial\n")
    try:
        out = _run_into(_Run(run_dir, plan, _provenance(config, dataset, data_note), timer,
                             progress, notes), dataset, store)
    except BaseException as exc:
        marker.write_text(f"this run stopped before finishing: {type(exc).__name__}: {exc}\n")
        log.warning("the run stopped; its folder %s is marked incomplete (%s)", run_dir,
                    INCOMPLETE_MARKER)
        raise
    marker.unlink()
    return out


def _run_into(run: _Run, dataset: Dataset, store: FeatureStore) -> RunOutput:
    config, timer, notes = run.plan.config, run.timer, run.notes
    with timer("features"):
        features = extract_dataset(dataset, store, run.plan.features, run.progress)
    notes += features.notes
    skipped = list(dataset.skipped) + features.skipped
    with timer("split"):
        split = make_split(features.dataset, config.split.strategy, config.split.test_fraction,
                           config.split.val_fraction, config.split.seed)
    notes += split.notes
    # confusion matrices are drawn on a spare core while the grid trains (one thread per
    # small fit leaves one idle); with a single core there is nothing to gain
    with BackgroundPlots(enabled=thread_budget() > 1) as plots:
        return _train_and_report(run, features, split, skipped, plots)


def _train_and_report(run: _Run, features: DatasetFeatures, split: Split, skipped: list,
                      plots: BackgroundPlots) -> RunOutput:
    """Train the grid, evaluate every run, write the run folder (after the features)."""
    run_dir, plan, timer, notes, progress = run.dir, run.plan, run.timer, run.notes, run.progress
    config, provenance = plan.config, run.provenance
    classes, y_test = features.dataset.classes, features.dataset.labels[split.test]

    def draw(c: Candidate) -> None:
        plots.submit(c.name, confusion_counts(y_test, c.test_proba, len(classes)), classes)

    with timer("training"):
        runner = make_runner(config.runner.kind, config.runner.address, config.runner.num_cpus,
                             config.runner.workers)
        grid = ComparisonGrid(plan.grid, features, split, progress, runner, on_candidate=draw)
        candidates = grid.run()
    notes += grid.notes
    with timer("evaluation"):
        dataset, groups, y_te = features.dataset, features.dataset.groups, grid.y[split.test]
        results = []
        for c in candidates:
            r = evaluate(c.name, y_te, c.test_proba, dataset.classes, groups=groups[split.test],
                         n_bootstrap=config.evaluation.n_bootstrap, seed=config.seed)
            r.extra.update(val_accuracy=c.val_accuracy, val_log_loss=c.val_log_loss,
                           fit_seconds=round(c.fit_seconds, 3), **c.spec.fields(),
                           test_ece=round(expected_calibration_error(
                               c.test_proba, columns(c.model, y_te)), 4))
            if c.cv_accuracy is not None:
                r.extra.update(cv_accuracy=round(c.cv_accuracy, 4),
                               cv_log_loss=round(c.cv_log_loss, 4))
            if c.spec.members:  # a late or hybrid row: a combiner over fitted members
                if c.model.combiner_source_:  # where weights/stacking learned
                    r.extra["combiner_source"] = c.model.combiner_source_
                r.extra["member_weights"] = weights = c.model.member_weights()
                guard = c.model.guard_note_  # why one member answers alone
                notes.append(f"member weights of {c.name}: " + ", ".join(
                    f"{m} {w:.2f}" for m, w in weights.items()) + (f" ({guard})" if guard else ""))
                below = below_best_member(c, candidates, grid.selection)
                if below:
                    r.extra["below_best_member"] = True
                    notes.append(below)
            results.append(r)
        plots.submit_comparison(results)  # drawn while the models are calibrated and saved
        chooses = grid.has_val or grid.selection == "cv"
        best = max(candidates, key=lambda c: c.val_rank) if chooses else candidates[0]
        by = ("grouped cross-validation accuracy" if grid.selection == "cv"
              else "validation accuracy")
        notes.append(f"best by {by}: {best.name} (saved as best/)")
        # predict falls back to these for pairs with only one (readable) modality; a
        # one-modality data set has only one kind of row, and best/ is already its best
        single = ({m: pick(candidates, m) for m in ("image", "audio")}
                  if grid.fuses else {})
        notes += [f"best {m}-only by {by}: {c.name} (saved as best-{m}/)"
                  for m, c in single.items()]
        explained = _explain_errors(run_dir, plan, features, split, single.get("image") or (
            best if best.spec.family == "image" else None), y_te)
        bundles = {"best": best} | {f"best-{m}": c for m, c in single.items()}
        by_name = {r.name: r for r in results}
        infos = {}
        for folder, c in bundles.items():
            calibration = calibrate(c, grid.data, y_te)
            if calibration is not None:
                by_name[c.name].extra["calibration"] = calibration.to_dict()
                notes.append(calibration_note(folder, calibration))
            infos[folder] = _bundle_info(c, dataset, plan, provenance, by_name[c.name],
                                         calibration)
        _write_run(run_dir, config, dataset, split, bundles, infos, results,
                   notes + _data_notes(dataset, skipped), plots.finished(), plots.comparison(),
                   explained)
    (run_dir / "timings.json").write_text(json.dumps(
        {"stages": timer.seconds, "extraction": features.extraction}, indent=2))
    return RunOutput(run_dir, results, comparison_table(results), best.name, timer.seconds,
                     notes, skipped, features.extraction)


def _write_run(run_dir: Path, config: ExperimentConfig, dataset: Dataset, split: Split,
               bundles: dict[str, Candidate], infos: dict[str, dict],
               results: list[EvaluationResult], notes: list[str],
               drawn: dict[str, tuple[np.ndarray, Path]] | None = None,
               drawn_comparison: Path | None = None,
               explained: list[dict[str, str]] | None = None) -> None:
    """The run folder: model bundles (best/, best-image/, best-audio/), split.json,
    config.yaml, metrics, reports and plots."""
    for folder, candidate in bundles.items():
        save_bundle(candidate.model, infos[folder], run_dir / folder)
    test_groups = sorted(set(dataset.groups[split.test].tolist()))
    record = split.to_dict() | {"test_groups": test_groups,
                                "dataset_fingerprint": dataset.fingerprint()}
    (run_dir / "split.json").write_text(json.dumps(record, indent=2))
    (run_dir / "config.yaml").write_text(config.to_yaml())
    write_reports(results, run_dir, dataset.classes, title=f"scenefusion run {run_dir.name}",
                  config_text=config.to_yaml(), notes=notes, drawn=drawn,
                  drawn_comparison=drawn_comparison, explained=explained or ())


def _explain_errors(run_dir: Path, plan: RunPlan, features: DatasetFeatures,
                    split: Split, image: Candidate | None, y_test: np.ndarray
                    ) -> list[dict[str, str]]:
    """Saliency pictures of the best image-only model's most confident test errors, for the
    report (none when switched off or without an image model)."""
    config = plan.config
    if not config.evaluation.explain_errors or image is None:
        return []
    backbone = image.spec.backbone
    extractor = ImageExtractor(backbone, plan.features.weights_of(backbone),
                               cache_dir=config.features.cache_dir, device=plan.features.device)
    return explain_worst_errors(image.model, extractor, [features.dataset.items[i].image
                                                         for i in split.test], y_test,
                                image.test_proba, features.dataset.classes, run_dir / "plots",
                                config.evaluation.explain_errors)


def rerender_reports(run_dir: Path) -> list[EvaluationResult]:
    """Rebuild a run's reports and plots from its metrics.json, without retraining anything."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.json"
    if (run_dir / INCOMPLETE_MARKER).is_file():
        reason = (run_dir / INCOMPLETE_MARKER).read_text().strip()
        raise FileProblem(run_dir, f"incomplete run folder: {reason}")
    if not metrics.is_file():
        raise FileProblem(run_dir, "not a run folder (no metrics.json)")
    saved = read_json_object(metrics, required=("class_names",))
    results = load_results(run_dir)
    write_reports(results, run_dir, saved["class_names"], title=saved.get("title", run_dir.name),
                  config_text=saved.get("config_text"), notes=saved.get("notes"),
                  explained=saved.get("explained_errors") or ())
    return results


def _data_notes(dataset: Dataset, skipped: list) -> list[str]:
    counts = ", ".join(f"{k} {v}" for k, v in dataset.class_counts().items())
    lines = [f"{len(dataset)} items ({counts}); {len(set(dataset.groups))} source groups "
             f"({dataset.group_source})"]
    if skipped:
        lines.append(f"{len(skipped)} input(s) skipped: " + "; ".join(
            f"{s.path}: {s.reason}" for s in skipped[:20]) + (" ..." if len(skipped) > 20 else ""))
    return lines


def _run_dir(config: ExperimentConfig) -> Path:
    runs = Path(config.output.runs_dir)
    name = config.output.name or datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = runs / name
    n = 1
    while True:
        try:
            run_dir.mkdir()  # atomic: two runs started at once never share a folder
            break
        except FileExistsError:
            n += 1
            run_dir = runs / f"{name}-{n}"
    if n > 1:
        log.warning("run folder %s exists: writing to %s", runs / name, run_dir)
    return run_dir


class NoUsableData(DataError):
    """Nothing in the data can be used: the CLI's "no usable input" exit code (2)."""

    exit_code = 2


def require_trainable(dataset: Dataset) -> None:
    """Stop before feature extraction when the data cannot give a model of every class: no
    usable item at all, or a configured class without items (its column would be missing
    from every model's output)."""
    if len(dataset) == 0:
        raise NoUsableData(dataset.root, "no usable items (see `scenefusion data inspect` for "
                        "what was skipped and why)")
    counts = dataset.class_counts()
    empty = [name for name in dataset.classes if counts.get(name, 0) == 0]
    if empty:
        raise DataError(dataset.root, f"class(es) {', '.join(map(repr, empty))} of the class "
                        f"list have no usable items; found {counts}")
    if len(dataset.classes) < 2:
        raise DataError(dataset.root, f"only one class ({', '.join(map(repr, dataset.classes))})"
                        " has usable items; telling scenes apart needs at least 2 classes")


def _provenance(config: ExperimentConfig, dataset: Dataset, note: str | None) -> dict:
    """What a saved model was trained on, for `predict` and the web API to tell their users."""
    return {
        "data_path": str(Path(dataset.root).resolve()),
        "layout": dataset.layout,
        "dataset_fingerprint": dataset.fingerprint(),
        "synthetic": note == DEMO_NOTE or is_synthetic(Path(dataset.root)),
        "n_items": len(dataset),
        "n_groups": len(set(dataset.groups)),
        "split": config.split.strategy,
    }


def _bundle_info(candidate: Candidate, dataset: Dataset, plan: RunPlan,
                 provenance: dict, result: EvaluationResult,
                 calibration: Calibration | None) -> dict:
    """What `predict` needs to feed the model (class names, backbone, audio features) and
    what it should tell about the answers (training data, test accuracy, calibration)."""
    backbone = candidate.spec.backbone
    weights = plan.features.weights_of(backbone) if backbone else None
    return {
        "name": candidate.name,
        "kind": candidate.spec.family,
        "classes": dataset.classes,
        "image_backbone": backbone,
        "image_weights": str(weights) if weights else None,
        "image_precision": plan.features.precision,
        **(audio_recipe(plan.features.audio, dataset.layout)
           if plan.features.audio is not None else {}),  # a recipe names only what it reads
        "val_accuracy": candidate.val_accuracy,
        "test_accuracy": round(result.accuracy, 4),
        "test_accuracy_ci": (None if result.ci_low is None
                             else [round(result.ci_low, 4), round(result.ci_high, 4)]),
        "n_test": result.n_test,
        "trained_on": provenance,
        "calibration": None if calibration is None else calibration.to_dict(),
    }
