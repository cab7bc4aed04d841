"""Audio representations x models on real recordings, split by recording and at random.

    python benchmarks/real_content.py --data PATH [--audio mfcc logmel] [--models logreg lstm]

PATH is any data set scenefusion loads (pairs folder, manifest); its groups must be source
recordings. Every (audio feature, model) pair is scored by k-fold cross-validation twice: with
folds that keep each recording on one side (StratifiedGroupKFold: what a new place looks like)
and with folds drawn at random by clip (StratifiedKFold: the leaky protocol, shown only for
comparison). Classes with fewer recordings than folds are left out and named, since a
recording-grouped fold could not hold them out. Prints a table, writes JSON to
benchmarks/results/real_content.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from scenefusion.data import load_dataset
from scenefusion.features.extract import extract_audio
from scenefusion.features.store import FeatureStore
from scenefusion.models import make_model

RESULTS = Path(__file__).parent / "results" / "real_content.json"


def cross_validated_accuracy(model_id: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                             split: str, folds: int, seed: int) -> float:
    """Mean-over-items accuracy of out-of-fold predictions."""
    if split == "group":
        splits = StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(X, y, groups)
    else:
        splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y)
    correct = 0
    for train, test in splits:
        model = make_model(model_id, random_state=seed).fit(X[train], y[train])
        correct += int((model.predict(X[test]) == y[test]).sum())
    return correct / len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--audio", nargs="+", default=["mfcc", "logmel"])
    parser.add_argument("--models", nargs="+", default=["logreg", "hgb", "lstm", "audio_cnn"])
    parser.add_argument("--splits", nargs="+", default=["group", "random"])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    dataset = load_dataset(args.data)
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
    records = []
    for audio_id in args.audio:
        X = extract_audio(dataset.items, store, audio_id).features
        for model_id in args.models:
            for split in args.splits:
                start = time.perf_counter()
                acc = cross_validated_accuracy(model_id, X, y, groups, split, args.folds,
                                               args.seed)
                records.append({"audio": audio_id, "model": model_id, "split": split,
                                "accuracy": round(acc, 4), "folds": args.folds,
                                "seconds": round(time.perf_counter() - start, 1)})
                print(f"{audio_id:>12} {model_id:>10} {split:>6}  {acc:.3f}  "
                      f"({records[-1]['seconds']} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "data": str(args.data), "classes": described, "left_out": dropped,
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "records": records}, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
