"""Decode path: where do an image's milliseconds go, and which arrangement
of decoding and the model on this machine's cores embeds a folder fastest?

    python benchmarks/decode_path.py [--backbone effnet_lite0 --backbone vgg19] \
        [--images 96] [--out benchmarks/results/decode_path.json]

For each backbone it measures (1) decode + preprocess alone (PIL open, checks, resize, tensor:
what a DataLoader worker does), per image, for JPEG and PNG photos; (2) the model alone per
image at the extraction batch size; (3) end-to-end extraction of the same files through
``extract_images`` with an empty feature cache, for each arrangement: decoding in the main
process (0 workers) or in 1 or 2 DataLoader worker processes, with the model on every core or
on one. Photos are the real ones under ``--photos`` scaled to 1280x720 (a video frame) and saved
as JPEG (quality 90) and PNG, cycling until ``--images`` files of each format exist. vgg19 runs
with random weights of its architecture where the official file is absent (speed does not
depend on weight values). Rounds alternate between arrangements so that load from other
processes hits them alike; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from extract_speed import weights_for  # this folder is on sys.path when run as a script
from PIL import Image

from scenefusion.data.items import Item
from scenefusion.data.validate import open_image_rgb
from scenefusion.features.extract import extract_images
from scenefusion.features.image import ImageExtractor
from scenefusion.features.store import FeatureStore

PHOTOS = Path("/work/realdata/raw/images")
#: (DataLoader worker processes, model threads): 0 = decode in the main process
ARRANGEMENTS = [(0, 2), (1, 2), (1, 1), (2, 2)]


def make_files(photos: Path, out: Path, n: int) -> dict[str, list[Path]]:
    sources = sorted(p for p in photos.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if not sources:
        raise SystemExit(f"no photos under {photos}")
    files: dict[str, list[Path]] = {"jpeg": [], "png": []}
    for i in range(n):
        img = Image.open(sources[i % len(sources)]).convert("RGB").resize((1280, 720))
        for fmt, ext in (("jpeg", "jpg"), ("png", "png")):
            path = out / f"{i:04d}.{ext}"
            img.save(path, quality=90) if fmt == "jpeg" else img.save(path)
            files[fmt].append(path)
    return files


def decode_ms(extractor: ImageExtractor, files: list[Path]) -> float:
    pre = extractor.preprocessor()
    pre(open_image_rgb(files[0]))
    start = time.perf_counter()
    for f in files:
        pre(open_image_rgb(f))
    return 1000 * (time.perf_counter() - start) / len(files)


def model_ms(extractor: ImageExtractor, batch: int, rounds: int = 3) -> float:
    x = torch.randn(batch, 3, extractor.spec.input_size, extractor.spec.input_size)
    extractor.embed(x)
    start = time.perf_counter()
    for _ in range(rounds):
        extractor.embed(x)
    return 1000 * (time.perf_counter() - start) / (rounds * batch)


def end_to_end(backbone: str, weights: Path | None, precision: str, files: list[Path],
               workers: int, threads: int, cache: Path) -> float:
    extractor = ImageExtractor(backbone, weights, cache_dir=cache, threads=threads,
                               precision=precision)
    items = [Item(id=str(i), image=f, audio=None, label="x", group=str(i))
             for i, f in enumerate(files)]
    with tempfile.TemporaryDirectory() as tmp:  # an empty feature cache: everything computed
        store = FeatureStore(Path(tmp))
        start = time.perf_counter()
        got = extract_images(items, extractor, store, num_workers=workers)
        seconds = time.perf_counter() - start
    if got.computed != len(files):
        raise SystemExit(f"{backbone}: computed {got.computed} of {len(files)}: {got.skipped[:3]}")
    return len(files) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", action="append")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/decode_path.json"))
    args = ap.parse_args()
    backbones = args.backbone or ["effnet_lite0", "vgg19"]
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = make_files(args.photos, root, args.images)
        cache = root / "cache"  # ONNX exports, shared by every arrangement
        for b in backbones:
            weights, weights_kind = weights_for(b, root)
            ex = ImageExtractor(b, weights, cache_dir=cache, precision=args.precision)
            row = {"backbone": b, "precision": args.precision, "weights": weights_kind,
                   "model_ms_per_image": round(model_ms(ex, 32), 2)}
            for fmt, paths in files.items():
                row[f"decode_ms_{fmt}"] = round(decode_ms(ex, paths), 2)
            speeds: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for workers, threads in ARRANGEMENTS:
                    for fmt, paths in files.items():
                        key = f"{fmt} workers={workers} threads={threads}"
                        speeds.setdefault(key, []).append(end_to_end(
                            b, weights, args.precision, paths, workers, threads, cache))
            row["images_per_s"] = {k: round(statistics.median(v), 1) for k, v in speeds.items()}
            row["load_average"] = os.getloadavg()[0]
            records.append(row)
            print(json.dumps(row, indent=1), flush=True)
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()},"
                       f" torch {torch.__version__}", "images": args.images}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "records": records}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
