"""Run one experiment end to end: data -> split -> features -> models -> fusion -> reports.

The only module that knows every stage (hence just over 400 lines: grid, run folder and
report re-rendering belong together). Model selection (which unimodal model feeds late
fusion, which run is saved as `best`) uses validation accuracy, never test accuracy, so the
test split stays an honest estimate for every row of the comparison table.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss

from .config import ExperimentConfig
from .cpu import limit_threads
from .data import DataError, Dataset, Split, load_dataset, make_split
from .data.download import cached_reference_root
from .data.synthetic import DEMO_NOTE, demo_data_path, is_synthetic
from .evaluation import (
    EvaluationResult,
    comparison_table,
    evaluate,
    load_results,
    write_reports,
)
from .evaluation.calibration import Calibration, expected_calibration_error
from .features.extract import DatasetFeatures, extract_dataset
from .features.store import FeatureStore
from .files import FileProblem, ensure_writable_dir, read_json_object
from .models import EarlyFusion, HybridFusion, LateFusion, capabilities, fit_model, make_model
from .predict import save_bundle
from .runners import make_runner

log = logging.getLogger(__name__)

#: (stage description, done, total) -> None; the CLI turns it into progress bars.
Progress = Callable[[str, int, int], None]

#: A file in a run folder that is still being written or whose run stopped early.
INCOMPLETE_MARKER = "INCOMPLETE"

@dataclass(frozen=True)
class RunSpec:
    """What one row of the comparison grid is, as fields; its display name is rendered from
    them and never parsed back.

    ``family``: image | audio | early | late | hybrid. ``model``: the classifier id (unimodal
    and early rows). ``method``: the late/hybrid combiner. ``early_audio``: the audio side of
    early fusion (``pooled`` statistics or ``lstm``, the audio model's learned embedding).
    ``members``: the rows a late/hybrid run combines (image, audio[, early]).
    """

    family: str
    backbone: str | None = None
    audio_feature: str | None = None
    model: str | None = None
    method: str | None = None
    early_audio: str | None = None
    members: tuple[RunSpec, ...] = ()

    @property
    def name(self) -> str:
        if self.family == "audio":
            return f"audio:{self.audio_feature}+{self.model}"
        if self.family == "image":
            return f"image:{self.backbone}+{self.model}"
        if self.family == "early":
            return f"early:{self.backbone}+{self._early_tag('+')}"
        members = {m.family: m for m in self.members}
        pair = f"{members['image'].model}&{members['audio'].model}"
        if self.family == "late":
            return f"late:{self.method}:{self.backbone}[{pair}]"
        return (f"hybrid:{self.method}:{self.backbone}"
                f"[{members['early']._early_tag('-')}+{pair}]")

    def _early_tag(self, sep: str) -> str:
        return f"lstm-emb{sep}{self.model}" if self.early_audio == "lstm" else str(self.model)

    def fields(self) -> dict[str, Any]:
        """The structured description stored with each result in metrics.json."""
        return {"family": self.family, "backbone": self.backbone,
                "audio_feature": self.audio_feature, "model": self.model,
                "method": self.method, "early_audio": self.early_audio,
                "members": [m.name for m in self.members]}


@dataclass
class Candidate:
    """One fitted model of the comparison grid, with its validation and test probabilities."""

    spec: RunSpec
    model: Any
    val_accuracy: float | None
    val_log_loss: float | None
    test_proba: np.ndarray
    fit_seconds: float = 0.0
    val_proba: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def val_rank(self) -> tuple[float, float]:
        """Selection key: validation accuracy, ties broken by lower validation log-loss."""
        if self.val_accuracy is None:
            return (-1.0, 0.0)
        return (self.val_accuracy, -(self.val_log_loss or 0.0))


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


def _model(model_id: str, config: ExperimentConfig) -> Any:
    """A fresh model with the config's hyper-parameters and the experiment's seed."""
    params = dict(config.models.params.get(model_id, {}))
    model = make_model(model_id, **params)
    if config.models.tune and capabilities(model).tunable:
        model.set_params(tune=True)
    if "random_state" in model.get_params() and "random_state" not in params:
        model.set_params(random_state=config.seed)
    return model


def _val_scores(proba: np.ndarray, classes: np.ndarray, y_val: np.ndarray) -> tuple[float, float]:
    pred = classes[np.argmax(proba, axis=1)]
    ll = log_loss(y_val, proba, labels=classes)
    return float(np.mean(pred == y_val)), float(ll)


def _pick(candidates: list[Candidate], family: str, backbone: str | None = None) -> Candidate:
    pool = [c for c in candidates
            if c.spec.family == family and (backbone is None or c.spec.backbone == backbone)]
    return max(pool, key=lambda c: c.val_rank)


def resolve_data(config: ExperimentConfig) -> tuple[Path, str | None]:
    """The data a run uses and a note saying where it came from when the config named none:
    the reference set downloaded into the cache, else the synthetic demo set."""
    if config.data.path is not None:
        return Path(config.data.path), None
    cached = cached_reference_root()
    if cached is not None:
        return cached, f"Data: the reference data set found in the cache at {cached}"
    return demo_data_path(FeatureStore(config.features.cache_dir).root), DEMO_NOTE


def _load(config: ExperimentConfig, notes: list[str], progress: Progress | None
          ) -> tuple[Dataset, str | None]:
    """The data set and the note saying where it came from (None when the config named it)."""
    path, note = resolve_data(config)
    if note:
        notes.append(note)
    cb = (lambda d, t: progress("checking files", d, t)) if progress else None
    return load_dataset(path, layout=config.data.layout, classes=config.data.classes,
                        check_files=config.data.check_files,
                        allow_outside=config.data.allow_outside_paths, progress=cb), note


def extract_features(config: ExperimentConfig, dataset: Dataset, store: FeatureStore,
                     progress: Progress | None = None) -> DatasetFeatures:
    """Every configured extractor through the cache (see features.extract.extract_dataset)."""
    f = config.features
    return extract_dataset(dataset, store, f.image_backbones, f.audio,
                           image_weights=f.image_weights, runtime=f.runtime,
                           threads=f.threads or config.threads,
                           batch_size=f.batch_size, progress=progress)


@dataclass(frozen=True)
class FitJob:
    """One fit of the grid: a fresh model, its row spec and which inputs it takes
    (``audio``, ``image:<backbone>`` or ``both:<backbone>``)."""

    spec: RunSpec
    model: Any
    inputs: str


@dataclass(frozen=True)
class GridData:
    """Everything a fit reads, in one object that a distributed runner ships once."""

    audio: np.ndarray
    images: dict[str, np.ndarray]
    y: np.ndarray
    groups: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def inputs(self, name: str) -> Any:
        kind, _, backbone = name.partition(":")
        if kind == "audio":
            return self.audio
        if kind == "image":
            return self.images[backbone]
        return {"image": self.images[backbone], "audio": self.audio}


def fit_and_score(job: FitJob, data: GridData, epoch_progress: Callable | None = None
                  ) -> Candidate:
    """Fit one model on train; score it on validation (for selection) and test. A pure
    function of its arguments, so any runner (serial, Ray) gives the same candidate."""
    X = data.inputs(job.inputs)

    def rows(idx: np.ndarray) -> Any:
        return {k: v[idx] for k, v in X.items()} if isinstance(X, dict) else X[idx]

    has_val = len(data.val) > 0
    y_va = data.y[data.val] if has_val else None
    X_va = rows(data.val) if has_val else None
    model = job.model
    start = time.perf_counter()
    fit_model(model, rows(data.train), data.y[data.train], X_va, y_va, progress=epoch_progress,
              groups=data.groups[data.train])
    seconds = time.perf_counter() - start
    val_proba = model.predict_proba(X_va) if has_val else None
    val_acc, val_ll = (_val_scores(val_proba, model.classes_, y_va) if has_val
                       else (None, None))
    return Candidate(job.spec, model, val_acc, val_ll, model.predict_proba(rows(data.test)),
                     seconds, val_proba)


class ComparisonGrid:
    """Fits every model of the grid on train, scores it on val (for selection) and keeps its
    test probabilities. Late and hybrid fusion reuse the best fitted unimodal members.

    Fits that do not depend on each other go to the runner as one batch (unimodal models;
    then per backbone early fusion, late fusion, hybrid fusion); without a runner they run
    here one after the other, with per-epoch progress."""

    def __init__(self, config: ExperimentConfig, features: DatasetFeatures, split: Split,
                 progress: Progress | None = None, runner: Any = None) -> None:
        self.config = config
        self.features = features
        self.data = GridData(features.audio, features.images, features.dataset.labels,
                             features.dataset.groups, split.train, split.val, split.test)
        self.y = self.data.y
        self.has_val = len(split.val) > 0
        # Stacking learns its combiner on validation predictions of the fitted members: held
        # out from their training and cheap. Out-of-fold refits are the fallback without a val
        # set; with whole videos held out per fold they also starve classes that have a single
        # training video (the reference set's FOREST and JUNGLE) of examples.
        self.stack_on = "val" if self.has_val else "oof"
        self.candidates: list[Candidate] = []
        self.notes: list[str] = []
        if not self.has_val:
            self.notes.append("no validation set: selection falls back to the first model listed")
        self.progress = progress
        self.runner = runner
        self.n_done = 0
        fusion = config.fusion
        per_backbone = (len(config.models.image) + len(fusion.early) * len(fusion.early_audio)
                        + len(fusion.late) + len(fusion.hybrid))
        self.total = len(config.features.image_backbones) * per_backbone + len(config.models.audio)

    def fit_batch(self, jobs: list[FitJob]) -> list[Candidate]:
        """Fit independent jobs (in the runner when there is one); candidates in job order."""
        if self.runner is not None and len(jobs) > 1:
            fitted = self.runner.map(fit_and_score, jobs, self.data,
                                     on_done=lambda job: self._report(job.spec))
        else:
            fitted = [self._fit_here(job) for job in jobs]
        self.candidates += fitted
        return fitted

    def _fit_here(self, job: FitJob) -> Candidate:
        epoch_progress = None
        if self.progress:
            done = self.n_done

            def epoch_progress(epoch: int, train_loss: float, val_loss: float | None) -> None:
                self.progress(f"training: {job.spec.name} (epoch {epoch})", done, self.total)

        candidate = fit_and_score(job, self.data, epoch_progress)
        self._report(job.spec)
        return candidate

    def _report(self, spec: RunSpec) -> None:
        self.n_done += 1
        if self.progress:
            self.progress(f"training: {spec.name}", self.n_done, self.total)

    def run(self) -> list[Candidate]:
        config = self.config
        audio_id = config.features.audio
        unimodal = [FitJob(RunSpec("audio", audio_feature=audio_id, model=m), _model(m, config),
                           "audio") for m in config.models.audio]
        unimodal += [FitJob(RunSpec("image", backbone=b, model=m), _model(m, config), f"image:{b}")
                     for b in config.features.image_backbones for m in config.models.image]
        self.fit_batch(unimodal)
        for b in config.features.image_backbones:
            self._fusion(b)
        return self.candidates

    def _audio_encoder(self) -> Candidate | None:
        """The audio model whose learned embedding early fusion uses: the best on validation
        among the audio models that declare the embedding capability."""
        pool = [c for c in self.candidates
                if c.spec.family == "audio" and capabilities(c.model).embedding]
        return max(pool, key=lambda c: c.val_rank) if pool else None

    def _fusion(self, b: str) -> None:
        config = self.config
        audio_id = config.features.audio
        both = f"both:{b}"
        best_img, best_aud = _pick(self.candidates, "image", b), _pick(self.candidates, "audio")
        members = {"image": FrozenEstimator(best_img.model),
                   "audio": FrozenEstimator(best_aud.model)}
        encoder = self._audio_encoder()
        early_jobs: list[FitJob] = []
        for audio_side in config.fusion.early_audio:
            if audio_side == "lstm" and encoder is None:
                self.notes.append("early fusion on a learned audio embedding skipped: no audio "
                                  "model with an embedding (e.g. 'lstm') in models.audio")
                continue
            frozen = FrozenEstimator(encoder.model) if audio_side == "lstm" else None
            for m in config.fusion.early:
                model = EarlyFusion(_model(m, config), pca_image=config.fusion.early_pca_image,
                                    random_state=config.seed, audio_encoder=frozen)
                spec = RunSpec("early", backbone=b, audio_feature=audio_id, model=m,
                               early_audio=audio_side)
                early_jobs.append(FitJob(spec, model, both))
        early_fitted = self.fit_batch(early_jobs)
        pair = (best_img.spec, best_aud.spec)
        self.fit_batch([
            FitJob(RunSpec("late", backbone=b, audio_feature=audio_id, method=method,
                           members=pair),
                   LateFusion(members, method=method, stack_on=self.stack_on,
                              random_state=config.seed), both)
            for method in config.fusion.late])
        if config.fusion.hybrid and early_fitted:
            best_early = max(early_fitted, key=lambda c: c.val_rank)
            self.fit_batch([
                FitJob(RunSpec("hybrid", backbone=b, audio_feature=audio_id, method=method,
                               members=(*pair, best_early.spec)),
                       HybridFusion(early=FrozenEstimator(best_early.model), models=members,
                                    method=method, stack_on=self.stack_on,
                                    random_state=config.seed), both)
                for method in config.fusion.hybrid])


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
    ensure_writable_dir(store.root, "feature cache")
    ensure_writable_dir(config.output.runs_dir, "runs folder")
    with timer("data"):
        dataset, data_note = _load(config, notes, progress)
        require_trainable(dataset)
    run_dir = _run_dir(config)
    marker = run_dir / INCOMPLETE_MARKER
    marker.write_text("this run has not finished: its results are missing or partial\n")
    try:
        out = _run_into(run_dir, config, dataset, _provenance(config, dataset, data_note), store,
                        timer, notes, progress)
    except BaseException as exc:
        marker.write_text(f"this run stopped before finishing: {type(exc).__name__}: {exc}\n")
        log.warning("the run stopped; its folder %s is marked incomplete (%s)", run_dir,
                    INCOMPLETE_MARKER)
        raise
    marker.unlink()
    return out


def _run_into(run_dir: Path, config: ExperimentConfig, dataset: Dataset, provenance: dict,
              store: FeatureStore, timer: _Timer, notes: list[str], progress: Progress | None
              ) -> RunOutput:
    with timer("features"):
        features = extract_features(config, dataset, store, progress)
    notes += features.notes
    skipped = list(dataset.skipped) + features.skipped
    with timer("split"):
        split = make_split(features.dataset, config.split.strategy, config.split.test_fraction,
                           config.split.val_fraction, config.split.seed)
    notes += split.notes
    with timer("training"):
        runner = make_runner(config.runner.kind, config.runner.address, config.runner.num_cpus)
        grid = ComparisonGrid(config, features, split, progress, runner)
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
                               c.test_proba, _columns(c.model, y_te)), 4))
            if hasattr(c.model, "member_weights"):
                r.extra["member_weights"] = weights = c.model.member_weights()
                notes.append(f"member weights of {c.name}: " + ", ".join(
                    f"{m} {w:.2f}" for m, w in weights.items()))
            results.append(r)
        best = max(candidates, key=lambda c: c.val_rank) if grid.has_val else candidates[0]
        notes.append(f"best by validation accuracy: {best.name} (saved as best/)")
        # predict falls back to these for pairs with only one (readable) modality
        single = {m: _pick(candidates, m) for m in ("image", "audio")}
        notes += [f"best {m}-only by validation accuracy: {c.name} (saved as best-{m}/)"
                  for m, c in single.items()]
        bundles = {"best": best} | {f"best-{m}": c for m, c in single.items()}
        by_name = {r.name: r for r in results}
        infos = {}
        for folder, c in bundles.items():
            calibration = _calibrate(c, grid.y[split.val], y_te)
            if calibration is not None:
                by_name[c.name].extra["calibration"] = calibration.to_dict()
                notes.append(
                    f"{folder}/ calibrated on validation: temperature "
                    f"{calibration.temperature:.2f}, test ECE {calibration.ece_before:.3f} -> "
                    f"{calibration.ece_after:.3f}")
            infos[folder] = _bundle_info(c, dataset, config, provenance, by_name[c.name],
                                         calibration)
        _write_run(run_dir, config, dataset, split, bundles, infos, results,
                   notes + _data_notes(dataset, skipped))
    (run_dir / "timings.json").write_text(json.dumps(
        {"stages": timer.seconds, "extraction": features.extraction}, indent=2))
    return RunOutput(run_dir, results, comparison_table(results), best.name, timer.seconds,
                     notes, skipped, features.extraction)


def _write_run(run_dir: Path, config: ExperimentConfig, dataset: Dataset, split: Split,
               bundles: dict[str, Candidate], infos: dict[str, dict],
               results: list[EvaluationResult], notes: list[str]) -> None:
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
                  config_text=config.to_yaml(), notes=notes)


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
                  config_text=saved.get("config_text"), notes=saved.get("notes"))
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


def _columns(model: Any, y: np.ndarray) -> np.ndarray:
    """Class indices `y` as column indices of `model.predict_proba`."""
    return np.searchsorted(np.asarray(model.classes_), y)


def _calibrate(candidate: Candidate, y_val: np.ndarray, y_test: np.ndarray
               ) -> Calibration | None:
    """A temperature for a saved model, fitted on validation (None without a validation set)."""
    if candidate.val_proba is None or len(y_val) == 0:
        return None
    model = candidate.model
    return Calibration.fit(candidate.val_proba, _columns(model, y_val), candidate.test_proba,
                           _columns(model, y_test))


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


def _bundle_info(candidate: Candidate, dataset: Dataset, config: ExperimentConfig,
                 provenance: dict, result: EvaluationResult,
                 calibration: Calibration | None) -> dict:
    """What `predict` needs to feed the model (class names, backbone, audio features) and
    what it should tell about the answers (training data, test accuracy, calibration)."""
    backbone = candidate.spec.backbone
    weights = config.features.image_weights.get(backbone) if backbone else None
    return {
        "name": candidate.name,
        "kind": candidate.spec.family,
        "classes": dataset.classes,
        "image_backbone": backbone,
        "image_weights": str(weights) if weights else None,
        "audio_features": config.features.audio,
        "audio_source": "reference-csv-mfcc" if dataset.layout == "reference" else "raw-audio",
        "val_accuracy": candidate.val_accuracy,
        "test_accuracy": round(result.accuracy, 4),
        "test_accuracy_ci": (None if result.ci_low is None
                             else [round(result.ci_low, 4), round(result.ci_high, 4)]),
        "n_test": result.n_test,
        "trained_on": provenance,
        "calibration": None if calibration is None else calibration.to_dict(),
    }
