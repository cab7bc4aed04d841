"""Audio representations x models on real recordings, split by recording and at random.

    python benchmarks/real_content.py --data PATH [--audio mfcc logmel] [--models logreg lstm]
    python benchmarks/real_content.py --data PATH --fusion [--audio aisfx] [--repeats 6]

PATH is any data set scenefusion loads (pairs folder, manifest); its groups must be source
recordings. Every (audio feature, model) pair is scored by k-fold cross-validation twice: with
folds that keep each recording on one side (StratifiedGroupKFold: what a new place looks like)
and with folds drawn at random by clip (StratifiedKFold: the leaky protocol, shown only for
comparison). Classes with fewer recordings than folds are left out and named, since a
recording-grouped fold could not hold them out. Prints a table, writes JSON to
benchmarks/results/real_content.json.

``--fusion`` asks the other question: does fusing a weak audio side with images help or
hurt on recordings never heard? It draws ``--repeats`` grouped train/validation/test splits
(the run's default split, one seed each: with a handful of recordings per class a single split
is one anecdote), fits each image/audio member pair on train, and scores on test the image and
audio members alone and their late fusions (mean, weighted, product, stacking, shrunk;
combiners learned out of fold over the training recordings, as the grid does when validation
is thin). Writes
benchmarks/results/real_content_fusion.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from scenefusion.cpu import limit_threads
from scenefusion.data import load_dataset, make_split
from scenefusion.features.audio import audio_feature
from scenefusion.features.extract import extract_audio, extract_dataset
from scenefusion.features.recipe import FeatureRecipe
from scenefusion.features.store import FeatureStore
from scenefusion.models import LateFusion, fit_model, make_model

RESULTS = Path(__file__).parent / "results" / "real_content.json"
FUSION_RESULTS = Path(__file__).parent / "results" / "real_content_fusion.json"
LATE_METHODS = ("mean", "weighted", "product", "stacking", "shrunk")


def model_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``logreg`` or ``logreg:C=0.1,max_iter=500`` -> (model id, keyword arguments)."""
    model_id, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return model_id, params


def cross_validated(spec: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                    split: str, folds: int, seed: int) -> tuple[float, np.ndarray]:
    """Mean-over-items accuracy and per-class recall of out-of-fold predictions."""
    if split == "group":
        splits = StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(X, y, groups)
    else:
        splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y)
    model_id, params = model_spec(spec)
    pred = np.empty_like(y)
    for train, test in splits:
        model = make_model(model_id, **{"random_state": seed, **params})
        pred[test] = model.fit(X[train], y[train]).predict(X[test])
    recall = np.array([np.mean(pred[y == k] == k) for k in range(int(y.max()) + 1)])
    return float(np.mean(pred == y)), recall


def fitted_member(model_id: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray, split: Any,
                  seed: int) -> Any:
    """A member fitted on train, with validation for early stopping, as the grid fits it."""
    model = make_model(model_id, random_state=seed)
    return fit_model(model, X[split.train], y[split.train], X[split.val], y[split.val],
                     groups=groups[split.train])


def few_training_groups(split: Any, y: np.ndarray, groups: np.ndarray, per_class: int,
                        seed: int) -> Any:
    """The split with its training rows cut to ``per_class`` source groups of each class
    (drawn by ``seed``): the condition where a modality is trained on a handful of
    recordings and meets unheard ones on test. Validation and test are unchanged."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(y[split.train]):
        rows = split.train[y[split.train] == label]
        names = np.unique(groups[rows])
        chosen = rng.choice(names, size=min(per_class, len(names)), replace=False)
        keep.append(rows[np.isin(groups[rows], chosen)])
    return dataclasses.replace(split, train=np.sort(np.concatenate(keep)))


def fusion_over_splits(features: Any, pairs: list[tuple[str, str]], backbone: str,
                       repeats: int, test_fraction: float, val_fraction: float,
                       folds: int, train_groups: int | None = None) -> list[dict]:
    """Test accuracy of each member alone and of its late fusions, per grouped split
    (training cut to ``train_groups`` groups per class when given)."""
    dataset = features.dataset
    y, groups = dataset.labels, dataset.groups
    X = {"image": features.images[backbone], "audio": features.audio}
    records = []
    for seed in range(repeats):
        split = make_split(dataset, "group", test_fraction, val_fraction, seed)
        if train_groups:
            split = few_training_groups(split, y, groups, train_groups, seed)
        test = split.test
        for image_id, audio_id in pairs:
            start = time.perf_counter()
            members = {"image": fitted_member(image_id, X["image"], y, groups, split, seed),
                       "audio": fitted_member(audio_id, X["audio"], y, groups, split, seed)}
            row = {"seed": seed, "image_model": image_id, "audio_model": audio_id,
                   "test_recordings": len(set(groups[test].tolist()))}
            for name, member in members.items():
                row[name] = round(float(np.mean(member.predict(X[name][test]) == y[test])), 4)
            train_X = {k: v[split.train] for k, v in X.items()}
            val_X = {k: v[split.val] for k, v in X.items()}
            for method in LATE_METHODS:
                fused = LateFusion({k: FrozenEstimator(m) for k, m in members.items()},
                                   method=method, stack_on="oof", cv=folds, random_state=seed)
                # as the grid does: combiners learn out of fold, the validation split checks
                fused.fit(train_X, y[split.train], val_X, y[split.val],
                          groups=groups[split.train])
                pred = fused.predict({k: v[test] for k, v in X.items()})
                row[f"late:{method}"] = round(float(np.mean(pred == y[test])), 4)
                row[f"late:{method} image weight"] = fused.member_weights()["image"]
            row["seconds"] = round(time.perf_counter() - start, 1)
            records.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return records


def per_clip_seconds(feature_id: str, items: list[Any], clips: int) -> float:
    """Seconds one clip takes through ``feature_id`` without the cache (after one warm-up clip
    that loads the network), averaged over ``clips`` clips spread over the data set."""
    feature = audio_feature(feature_id)
    chosen = items[:: max(1, len(items) // (clips + 1))][: clips + 1]
    feature(chosen[0].audio)
    start = time.perf_counter()
    for item in chosen[1:]:
        feature(item.audio)
    return (time.perf_counter() - start) / max(1, len(chosen) - 1)


def summarise_fusion(records: list[dict]) -> list[dict]:
    """Per row kind: mean / min / max test accuracy over splits and member pairs, and how often
    it fell more than 1 point below the better member of its own split."""
    best_single = np.array([max(r["image"], r["audio"]) for r in records])
    summary = []
    for kind in ("image", "audio", *(f"late:{m}" for m in LATE_METHODS)):
        acc = np.array([r[kind] for r in records])
        summary.append({"run": kind, "mean": round(float(acc.mean()), 3),
                        "min": round(float(acc.min()), 3), "max": round(float(acc.max()), 3),
                        "below_best_single_by_1pt": int(np.sum(acc < best_single - 0.01)),
                        "of": len(acc)})
    return summary


def feature_model_table(args: Any, dataset: Any, store: FeatureStore, y: np.ndarray,
                        groups: np.ndarray) -> list[dict]:
    """One record per (audio feature, model, split kind): k-fold accuracy over the seeds, with
    each feature's extraction time per clip when ``--time-clips`` asks for it."""
    records = []
    for audio_id in args.audio:
        timed = (round(per_clip_seconds(audio_id, dataset.items, args.time_clips), 3)
                 if args.time_clips else None)
        if timed is not None:
            print(f"{audio_id}: {timed:.3f} s per clip (uncached, {args.time_clips} clips)",
                  flush=True)
        X = extract_audio(dataset.items, store, audio_feature(audio_id)).features
        for model_id in args.models:
            for split in args.splits:
                start = time.perf_counter()
                runs = [cross_validated(model_id, X, y, groups, split, args.folds, seed)
                        for seed in range(args.seed, args.seed + args.seeds)]
                acc = np.array([a for a, _ in runs])
                recall = np.mean([r for _, r in runs], axis=0)
                records.append({"audio": audio_id, "model": model_id, "split": split,
                                "accuracy": round(float(acc.mean()), 4),
                                "accuracy_std": round(float(acc.std()), 4),
                                "accuracy_min": round(float(acc.min()), 4),
                                "accuracy_max": round(float(acc.max()), 4),
                                "folds": args.folds, "seeds": args.seeds,
                                "recall": {dataset.classes[k]: round(float(v), 3)
                                           for k, v in enumerate(recall)},
                                "seconds": round(time.perf_counter() - start, 1),
                                "extract_seconds_per_clip": timed})
                print(f"{audio_id:>18} {model_id:>16} {split:>6}  {acc.mean():.3f} "
                      f"+- {acc.std():.3f} [{acc.min():.3f}, {acc.max():.3f}]  "
                      f"({records[-1]['seconds']} s)", flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--audio", nargs="+", default=["mfcc", "logmel"])
    parser.add_argument("--models", nargs="+", default=["logreg", "hgb", "lstm", "audio_cnn"])
    parser.add_argument("--splits", nargs="+", default=["group", "random"])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1,
                        help="repeat the k-fold with this many seeds (mean and spread)")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--fusion", action="store_true",
                        help="late fusion with images over --repeats grouped splits instead")
    parser.add_argument("--backbone", default="effnet_lite0")
    parser.add_argument("--pairs", nargs="+", default=["logreg:logreg", "rf:rf", "mlp:lstm"],
                        metavar="IMAGE:AUDIO", help="member model pairs (--fusion)")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--train-groups", type=int, default=None, metavar="N",
                        help="--fusion: train on only N source groups (recordings) per class")
    parser.add_argument("--threads", type=int, default=None,
                        help="cap extraction and model threads (default: every usable core)")
    parser.add_argument("--time-clips", type=int, default=0, metavar="N",
                        help="also time N clips of each audio feature without the cache")
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="manifest paths may leave its folder (us8k_scene_pairs.py)")
    args = parser.parse_args()
    out = args.out or (FUSION_RESULTS if args.fusion else RESULTS)

    dataset = load_dataset(args.data, allow_outside=args.allow_outside_paths)
    per_class = dataset.groups_per_class()
    dropped = sorted(c for c, n in per_class.items() if n < args.folds)
    names = np.asarray(dataset.classes)[dataset.labels]  # labels are class indices
    dataset = dataset.subset(np.flatnonzero(~np.isin(names, dropped)))
    y, groups = dataset.labels, dataset.groups
    clips = dataset.class_counts()
    described = ", ".join(f"{c} {n} rec / {clips[c]} clips"
                          for c, n in dataset.groups_per_class().items() if clips.get(c))
    print(f"{args.data}: {len(dataset)} clips; {described}"
          + (f"; left out (< {args.folds} recordings): {', '.join(dropped)}" if dropped else ""))
    store = FeatureStore(args.cache)
    machine = f"{platform.processor() or platform.machine()}, {platform.python_version()}"
    if args.fusion:
        pairs = [tuple(p.split(":", 1)) for p in args.pairs]
        features = extract_dataset(dataset, store, FeatureRecipe(
            (args.backbone,), audio_feature(args.audio[0])))
        records = fusion_over_splits(features, pairs, args.backbone, args.repeats, 0.25, 0.15,
                                     args.folds, args.train_groups)
        summary = summarise_fusion(records)
        for row in summary:
            print(f"{row['run']:>15}  mean {row['mean']:.3f}  min {row['min']:.3f}  max "
                  f"{row['max']:.3f}  >1 pt below the better member: "
                  f"{row['below_best_single_by_1pt']}/{row['of']}")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "data": str(args.data), "classes": described, "left_out": dropped,
            "audio": args.audio[0], "backbone": args.backbone, "machine": machine,
            "train_groups_per_class": args.train_groups,
            "summary": summary, "records": records}, indent=2))
        print(f"-> {out}")
        return
    with limit_threads(args.threads):
        records = feature_model_table(args, dataset, store, y, groups)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "data": str(args.data), "classes": described, "left_out": dropped,
        "machine": machine, "records": records}, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
