"""Where the comparison grid's training time goes: per-row final-fit and fold-fit seconds, a
cProfile of the whole grid, and how many model fits repeat an earlier one exactly.

    python benchmarks/profile_grid.py [--data PATH] [--cache DIR] [--threads N]
                                      [--out benchmarks/results/profile_grid.json]
                                      [--no-profile] [--top 25]

It loads the data, extracts features through the cache, makes the split and runs the default
(or ``--config``) ComparisonGrid exactly as ``scenefusion.experiment`` does, then evaluates every
row as the run would. The instrumentation lives here only: it wraps the grid's ``fit_model``
and ``out_of_fold_proba`` (and fusion's) and every registered model's ``fit`` for the length
of the run, so the library's code is timed unchanged. Run it against another checkout with
``PYTHONPATH=/path/to/checkout/src`` (a checkout with ``scenefusion.plan``; the fits run in
this process, one after another, so that the instrumentation sees them). Without --data it
uses what ``scenefusion run`` would (the cached reference set, else the synthetic demo).

Fits are counted per (model id, training rows). A fit is an exact duplicate when an earlier fit
had the same class, the same unfitted parameters and the same training rows and labels (rows
fingerprinted by their first 16 values each and the labels): the work a shared per-(member,
fold) cache would not redo. Fits inside another fit (an early-fusion model's classifier, a
late/hybrid model's member refits) are counted too, marked ``nested``; the SVM's internal
Platt folds and a tuning search are inside one fit and not counted apart.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import cProfile
import hashlib
import io
import json
import os
import platform
import pstats
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

import scenefusion.grid.comparison as comparison
import scenefusion.grid.jobs as jobs
import scenefusion.models.fusion as fusion
from scenefusion.config import load_config, with_overrides
from scenefusion.cpu import cpu_model, limit_threads, usable_cores
from scenefusion.data import make_split
from scenefusion.evaluation import evaluate
from scenefusion.experiment import load_data, require_trainable, resolve_data
from scenefusion.features.extract import extract_dataset
from scenefusion.features.store import FeatureStore
from scenefusion.models.base import MODELS, prepare_input
from scenefusion.models.early import EarlyFusion
from scenefusion.plan import resolve_plan
from scenefusion.runners import make_runner

_ROW: contextvars.ContextVar[str] = contextvars.ContextVar("row", default="(outside a row)")
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("fit_depth", default=0)
_REGISTERED = {MODELS.get(i) for i in MODELS.list()}
_FITTING: contextvars.ContextVar[int | None] = contextvars.ContextVar("fitting", default=None)


class Recorder:
    """Seconds per row and phase, and one record per model fit."""

    def __init__(self) -> None:
        self.row_seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.fits: list[dict[str, Any]] = []
        self.seen: dict[str, int] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.row_seconds[_ROW.get()][phase] += seconds

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - start)


def _fingerprint(est: Any, X: Any, y: Any) -> tuple[int, str]:
    """(rows, digest) of a fit's training data as the model sees it (sequences pooled for a
    2-D model, so an audio member fed pooled rows matches its unimodal fit): every row's
    first 16 values and the labels."""
    if not isinstance(X, dict) and type(est) in _REGISTERED:
        X = prepare_input(est, X)
    h = hashlib.blake2b(digest_size=12)
    arrays = [X[k] for k in sorted(X)] if isinstance(X, dict) else [X]
    n = 0
    for a in arrays:
        a = np.asarray(a)
        n = len(a)
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a.reshape(len(a), -1)[:, :16]).tobytes())
    h.update(np.ascontiguousarray(np.asarray(y)).tobytes())
    return n, h.hexdigest()


def _params(est: Any) -> str:
    return repr(sorted((k, repr(v)) for k, v in est.get_params(deep=False).items()))


def _model_id(est: Any) -> str:
    if isinstance(est, EarlyFusion):
        return f"early({getattr(est.model, 'model_id', type(est.model).__name__)})"
    return getattr(est, "fusion_id", None) or getattr(est, "model_id", "") or type(est).__name__


def _counting_fit(rec: Recorder, fit: Callable) -> Callable:
    def wrapped(self: Any, X: Any, y: Any, *args: Any, **kwargs: Any) -> Any:
        if _FITTING.get() == id(self):  # a subclass's fit calling its base's: one fit
            return fit(self, X, y, *args, **kwargs)
        n, digest = _fingerprint(self, X, y)
        key = f"{type(self).__qualname__}|{_params(self)}|{digest}"
        depth = _DEPTH.get()
        token, fitting = _DEPTH.set(depth + 1), _FITTING.set(id(self))
        start = time.perf_counter()
        try:
            return fit(self, X, y, *args, **kwargs)
        finally:
            _DEPTH.reset(token)
            _FITTING.reset(fitting)
            rec.fits.append({"model": _model_id(self), "rows": n, "row": _ROW.get(),
                             "nested": depth > 0, "duplicate_of": rec.seen.get(key),
                             "seconds": time.perf_counter() - start})
            rec.seen.setdefault(key, len(rec.fits) - 1)
    return wrapped


@contextlib.contextmanager
def instrumented(rec: Recorder) -> Iterator[None]:
    """The grid's fit, fold and fused-scoring functions and every model's fit, wrapped for
    the block and restored after."""
    patches: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, new: Any) -> None:
        patches.append((owner, name, owner.__dict__[name] if isinstance(owner, type)
                        else getattr(owner, name)))
        setattr(owner, name, new)

    original_score = comparison.fit_and_score
    original_fit_model = jobs.fit_model
    original_oof = {m: m.out_of_fold_proba for m in (jobs, fusion)}
    original_fused = comparison.ComparisonGrid._score_fused

    def fit_and_score(job: Any, data: Any, *a: Any, **k: Any) -> Any:
        token = _ROW.set(job.spec.name)
        try:
            with rec.timed("row_total"):
                return original_score(job, data, *a, **k)
        finally:
            _ROW.reset(token)

    def fit_model(*a: Any, **k: Any) -> Any:
        with rec.timed("final_fit"):
            return original_fit_model(*a, **k)

    def oof(module: Any) -> Callable:
        phase = "fold_fit" if module is jobs else "fold_fit_in_final"

        def wrapped(*a: Any, **k: Any) -> Any:
            with rec.timed(phase):
                return original_oof[module](*a, **k)
        return wrapped

    def score_fused(self: Any, fused: Any, members: Any) -> Any:
        token = _ROW.set(fused.spec.name)
        try:
            with rec.timed("fused_cv"):
                return original_fused(self, fused, members)
        finally:
            _ROW.reset(token)

    patch(comparison, "fit_and_score", fit_and_score)
    patch(jobs, "fit_model", fit_model)
    for module in (jobs, fusion):
        patch(module, "out_of_fold_proba", oof(module))
    patch(comparison.ComparisonGrid, "_score_fused", score_fused)
    estimators = [MODELS.get(i) for i in MODELS.list()] + [EarlyFusion, fusion._ProbabilityFusion]
    # the class in each one's MRO that defines fit (ClassicalModel for the scikit-learn ids)
    owners = {next(c for c in cls.__mro__ if "fit" in c.__dict__) for cls in estimators}
    for cls in owners:
        patch(cls, "fit", _counting_fit(rec, cls.__dict__["fit"]))
    try:
        yield
    finally:
        for owner, name, old in reversed(patches):
            setattr(owner, name, old)


def _stats(profile: cProfile.Profile, key: str, top: int) -> list[str]:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats(key).print_stats(top)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return [line for line in lines[start:] if line.strip()]


def _rows_table(rec: Recorder) -> list[dict[str, Any]]:
    rows = []
    for name, s in rec.row_seconds.items():
        inner = s.get("fold_fit_in_final", 0.0)
        rows.append({"row": name, "total": round(s.get("row_total", 0.0), 3),
                     "final_fit": round(s.get("final_fit", 0.0) - inner, 3),
                     "fold_fit": round(s.get("fold_fit", 0.0) + inner, 3),
                     "fused_cv": round(s.get("fused_cv", 0.0), 3)})
    return rows


def _fit_counts(rec: Recorder) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int], Counter] = defaultdict(Counter)
    seconds: dict[tuple[str, int], float] = defaultdict(float)
    for f in rec.fits:
        key = (f["model"], f["rows"])
        c = groups[key]
        c["fits"] += 1
        c["nested"] += f["nested"]
        if f["duplicate_of"] is not None:
            c["duplicates"] += 1
            seconds[key] += f["seconds"]
    return [{"model": m, "rows": n, "fits": c["fits"], "nested": c["nested"],
             "duplicates": c["duplicates"], "duplicate_seconds": round(seconds[(m, n)], 2)}
            for (m, n), c in sorted(groups.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for every stage (default: every usable core)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile_grid.json"))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true",
                        help="time the grid without cProfile (its overhead off)")
    args = parser.parse_args()
    config = with_overrides(load_config(args.config), **{
        "data.path": args.data, "features.cache_dir": args.cache, "threads": args.threads})
    stages: dict[str, float] = {}
    rec = Recorder()
    profile = None if args.no_profile else cProfile.Profile()
    with limit_threads(config.threads) as threads:
        start = time.perf_counter()
        path, note = resolve_data(config)
        dataset = load_data(config, path)
        require_trainable(dataset)
        plan = resolve_plan(config, dataset)
        config = plan.config
        stages["data"] = time.perf_counter() - start
        start = time.perf_counter()
        store = FeatureStore(config.features.cache_dir)
        features = extract_dataset(dataset, store, plan.features)
        stages["features"] = time.perf_counter() - start
        start = time.perf_counter()
        split = make_split(features.dataset, config.split.strategy, config.split.test_fraction,
                           config.split.val_fraction, config.split.seed)
        stages["split"] = time.perf_counter() - start
        start = time.perf_counter()
        with instrumented(rec):
            # one process: the instrumentation sees only the fits made here
            runner = make_runner(config.runner.kind, config.runner.address,
                                 config.runner.num_cpus, workers=1)
            grid = comparison.ComparisonGrid(plan.grid, features, split, None, runner)
            if profile is not None:
                profile.enable()
            try:
                candidates = grid.run()
            finally:
                if profile is not None:
                    profile.disable()
        stages["training"] = time.perf_counter() - start
        start = time.perf_counter()
        y_te, groups = grid.y[split.test], features.dataset.groups[split.test]
        accuracy = {c.name: round(evaluate(c.name, y_te, c.test_proba, features.dataset.classes,
                                           groups=groups, n_bootstrap=config.evaluation.n_bootstrap,
                                           seed=config.seed).accuracy, 4)
                    for c in candidates}
        stages["evaluation"] = time.perf_counter() - start
    rows = _rows_table(rec)
    stages["final_fits"] = sum(r["final_fit"] for r in rows)
    stages["fold_fits"] = sum(r["fold_fit"] + r["fused_cv"] for r in rows)
    counts = _fit_counts(rec)
    report = {
        "data": str(path), "data_note": note, "items": len(features.dataset),
        "classes": len(features.dataset.classes), "groups": len(set(features.dataset.groups)),
        "split": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "selection": grid.selection, "combiners_on": grid.stack_on,
        "cpu": cpu_model(), "cores": usable_cores(), "threads": threads,
        "load_average_after": os.getloadavg(), "python": platform.python_version(),
        "profiled": profile is not None,
        "stages_seconds": {k: round(v, 2) for k, v in stages.items()},
        "rows": sorted(rows, key=lambda r: -r["total"]),
        "test_accuracy": accuracy,
        "fits": {"total": len(rec.fits), "duplicates": sum(c["duplicates"] for c in counts),
                 "duplicate_seconds": round(sum(c["duplicate_seconds"] for c in counts), 2),
                 "by_model_and_rows": counts},
        "grid_notes": grid.notes,
    }
    if profile is not None:
        report["profile_cumulative"] = _stats(profile, "cumulative", args.top)
        report["profile_tottime"] = _stats(profile, "tottime", args.top)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if profile is not None:
        profile.dump_stats(args.out.with_suffix(".prof"))
    _print(report)
    print(f"written: {args.out}")


def _print(report: dict[str, Any]) -> None:
    print(f"{report['items']} items, {report['classes']} classes, {report['groups']} groups; "
          f"split {report['split']}; selection {report['selection']}, combiners on "
          f"{report['combiners_on']}; CPU {report['cpu']}, {report['threads']} threads; "
          f"load after {tuple(round(x, 2) for x in report['load_average_after'])}")
    print("stages (s): " + ", ".join(f"{k} {v}" for k, v in report["stages_seconds"].items()))
    print(f"{'row':58s} {'total':>8s} {'final':>8s} {'fold':>8s} {'fusedcv':>8s} {'test acc':>8s}")
    for r in report["rows"]:
        print(f"{r['row'][:58]:58s} {r['total']:8.2f} {r['final_fit']:8.2f} {r['fold_fit']:8.2f} "
              f"{r['fused_cv']:8.2f} {report['test_accuracy'].get(r['row'], float('nan')):8.4f}")
    f = report["fits"]
    print(f"fits: {f['total']} in all, {f['duplicates']} exact duplicates of an earlier fit "
          f"({f['duplicate_seconds']} s)")
    print(f"{'model':24s} {'rows':>6s} {'fits':>5s} {'nested':>6s} {'dup':>4s} {'dup s':>7s}")
    for c in f["by_model_and_rows"]:
        print(f"{c['model'][:24]:24s} {c['rows']:6d} {c['fits']:5d} {c['nested']:6d} "
              f"{c['duplicates']:4d} {c['duplicate_seconds']:7.2f}")
    for key in ("profile_cumulative", "profile_tottime"):
        if key in report:
            print(f"-- cProfile, sorted by {key.split('_')[1]}")
            print("\n".join(report[key]))


if __name__ == "__main__":
    main()
