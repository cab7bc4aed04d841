"""The image half on real photos of the nine reference classes, image only, held out by photo.

    python benchmarks/real_photos.py --scenes ../shared/realcorpus/scenes \
        [--backbones effnet_lite0 effnet_lite2] [--models logreg svm mlp] [--folds 5] \
        [--seeds 2] [--flip] [--sizes 128/128 224/224] [--cache CACHE] [--out FILE.json]

SCENES is the real-content corpus's `scenes/` folder (`<CLASS>/images/*.jpg`: MiniPlaces
128 x 128 photos and GroceryStoreDataset close-ups; never committed here). Every photo is its
own group, so k-fold by photo is the grouped protocol. For each backbone, and for the
concatenation of all of them (``+``-joined id), each model is scored by stratified k-fold over
photos, repeated with ``--seeds`` shuffles: accuracy of each fold (mean, min, max over folds and
seeds), per-class recall and the most confused class pairs of the pooled out-of-fold
predictions. ``--flip`` also scores test-time augmentation: each photo's embedding averaged
with that of its mirror image (computed here, not cached), the flip being the augmentation
ImageNet backbones were trained with. ``--sizes CROP/RESIZE ...`` scores other input sizes for
the first backbone (shorter side resized to RESIZE, centre crop CROP; the backbones pool
globally, so any size runs): e.g. ``128/128`` feeds 128 px photos at their own resolution,
``224/224`` upsamples without cropping, against the spec's own (effnet_lite0: 224/256).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from sklearn.model_selection import StratifiedKFold

from scenefusion.data import load_dataset
from scenefusion.features.audio import audio_feature
from scenefusion.features.extract import extract_dataset
from scenefusion.features.image import ImageExtractor, preprocess
from scenefusion.features.recipe import FeatureRecipe
from scenefusion.features.store import FeatureStore
from scenefusion.models import make_model

RESULTS = Path(__file__).parent / "results" / "real_photos.json"


def write_manifest(scenes: Path, out: Path) -> Path:
    """image,label,group with every photo its own group."""
    rows = [{"image": str(p.resolve()), "label": c.name, "group": f"{c.name}/{p.stem}"}
            for c in sorted(scenes.iterdir()) if (c / "images").is_dir()
            for p in sorted((c / "images").glob("*.jp*g"))]
    path = out / "manifest.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "label", "group"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def embeddings(paths: list[Path], backbone: str, mirror: bool = False,
               size: tuple[int, int] | None = None, batch: int = 32) -> np.ndarray:
    """(N, D) embeddings computed here (not cached): of each photo's mirror image, or at
    another (crop, resize) input size (eager torch, which takes any size)."""
    extractor = ImageExtractor(backbone, runtime="torch" if size else "auto")
    spec = extractor.spec
    if size is not None:
        spec = replace(spec, preprocessing=replace(spec.preprocessing, input_size=size[0],
                                                   resize_size=size[1]))
    out = []
    for i in range(0, len(paths), batch):
        images = [Image.open(p).convert("RGB") for p in paths[i:i + batch]]
        tensors = [preprocess(ImageOps.mirror(im) if mirror else im, spec) for im in images]
        out.append(extractor.embed(torch.stack(tensors)))
    return np.concatenate(out)


def scored(model_id: str, X: np.ndarray, y: np.ndarray, folds: int, seeds: int
           ) -> tuple[list[float], np.ndarray]:
    """Per-fold accuracies over all seeds, and the last seed's pooled out-of-fold predictions."""
    accuracies, pred = [], np.empty_like(y)
    for seed in range(seeds):
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
            model = make_model(model_id, random_state=seed)
            pred[test] = model.fit(X[train], y[train]).predict(X[test])
            accuracies.append(float(np.mean(pred[test] == y[test])))
    return accuracies, pred


def confusions(y: np.ndarray, pred: np.ndarray, classes: list[str], top: int = 5) -> list[str]:
    """The most frequent 'true -> predicted' errors."""
    pairs: dict[tuple[int, int], int] = {}
    for t, p in zip(y, pred, strict=True):
        if t != p:
            pairs[(int(t), int(p))] = pairs.get((int(t), int(p)), 0) + 1
    ranked = sorted(pairs.items(), key=lambda kv: -kv[1])[:top]
    return [f"{classes[t]} -> {classes[p]} {n}" for (t, p), n in ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=Path, required=True)
    parser.add_argument("--backbones", nargs="+", default=["effnet_lite0", "effnet_lite2"])
    parser.add_argument("--models", nargs="+", default=["logreg", "svm", "mlp"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--sizes", nargs="*", default=[], metavar="CROP/RESIZE")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        dataset = load_dataset(write_manifest(args.scenes, Path(tmp)), allow_outside=True)
        start = time.perf_counter()
        features = extract_dataset(dataset, FeatureStore(args.cache), FeatureRecipe(
            tuple(args.backbones), audio_feature("mfcc")))
        extraction = round(time.perf_counter() - start, 1)
    dataset = features.dataset
    y, classes = dataset.labels, list(dataset.classes)
    print(f"{len(y)} photos, {len(classes)} classes; {len(dataset.skipped)} skipped; "
          f"features {extraction} s")
    inputs = {b: features.images[b] for b in args.backbones}
    if len(args.backbones) > 1:
        inputs["+".join(args.backbones)] = np.concatenate(list(inputs.values()), axis=1)
    if args.flip:
        paths = [item.image for item in dataset.items]
        for b in args.backbones:
            t = time.perf_counter()
            inputs[f"{b} flip-avg"] = (features.images[b] + embeddings(paths, b, mirror=True)) / 2
            print(f"mirrored {b}: {time.perf_counter() - t:.0f} s", flush=True)
    for size in args.sizes:
        crop, resize = (int(v) for v in size.split("/"))
        t = time.perf_counter()
        inputs[f"{args.backbones[0]} {crop}/{resize}"] = embeddings(
            [item.image for item in dataset.items], args.backbones[0], size=(crop, resize))
        print(f"{args.backbones[0]} at {crop}/{resize}: {time.perf_counter() - t:.0f} s",
              flush=True)
    records = []
    for name, X in inputs.items():
        for model_id in args.models:
            t = time.perf_counter()
            acc, pred = scored(model_id, X, y, args.folds, args.seeds)
            recall = {c: round(float(np.mean(pred[y == k] == k)), 3)
                      for k, c in enumerate(classes)}
            records.append({"input": name, "model": model_id, "accuracy": round(np.mean(acc), 4),
                            "fold_min": round(min(acc), 4), "fold_max": round(max(acc), 4),
                            "folds": args.folds, "seeds": args.seeds, "recall": recall,
                            "lowest_recall": min(recall.items(), key=lambda kv: kv[1]),
                            "confusions": confusions(y, pred, classes),
                            "seconds": round(time.perf_counter() - t, 1)})
            r = records[-1]
            print(f"{name:>28} {model_id:>7}  {r['accuracy']:.3f} [{r['fold_min']:.3f}, "
                  f"{r['fold_max']:.3f}]  lowest recall {r['lowest_recall'][0]} "
                  f"{r['lowest_recall'][1]:.2f}  ({r['seconds']} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "scenes": str(args.scenes), "photos": len(y), "classes": classes,
        "class_counts": dataset.class_counts(), "skipped": len(dataset.skipped),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "features_seconds": extraction, "records": records}, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
