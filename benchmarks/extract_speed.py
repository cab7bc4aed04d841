"""Feature extraction speed on this machine: images/s per backbone at batch 1 and 32, MFCC
clips/s, and the cached re-run time of a 1,000-item data set. Prints a table, writes JSON.

    python benchmarks/extract_speed.py [--items 1000] [--out benchmarks/results/extract_speed.json]

Targets (issue 3): batched >= 2x batch-1 throughput for effnet_lite0; cached re-run of a
1,000-item set under 5 s. torchvision backbones are measured only where their weight files are
present; offline, they run with random weights of the same architecture (same speed), and
the table says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from scenefusion.data import load_dataset
from scenefusion.data.synthetic import make_pairs_folder
from scenefusion.features.audio import AUDIO_FEATURES
from scenefusion.features.backbones import IMAGE_BACKBONES, WeightsNotFoundError, find_weights
from scenefusion.features.extract import extract_audio, extract_images
from scenefusion.features.image import ImageExtractor
from scenefusion.features.store import FeatureStore


def model_throughput(extractor: ImageExtractor, batch: int, seconds: float = 4.0) -> float:
    """Images/s of preprocess-free embedding at one batch size (warm-up excluded)."""
    x = torch.randn(batch, 3, extractor.spec.input_size, extractor.spec.input_size)
    extractor.embed(x)
    extractor.embed(x)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 2 * batch:
        extractor.embed(x)
        n += batch
    return n / (time.perf_counter() - start)


def weights_for(backbone_id: str, scratch: Path) -> tuple[Path | None, str]:
    """The real weight file when present; otherwise random weights of the same architecture,
    which run at the same speed (speed does not depend on the values), labelled as such."""
    spec = IMAGE_BACKBONES.get(backbone_id)
    if spec.weights.source == "package":
        return None, "shipped"
    try:
        return find_weights(spec, allow_download=False), "official"
    except WeightsNotFoundError:
        path = scratch / f"random-{spec.weights.file_name}"
        torch.manual_seed(0)
        torch.save(spec.builder().state_dict(), path)
        return path, "random (speed only)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/extract_speed.json"))
    args = parser.parse_args()
    console = Console()
    result: dict = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "backbones": {}, "audio": {}, "cached_rerun": {},
    }
    table = Table(title="image backbones: images/s (model only, random input)")
    for col in ("backbone", "weights", "runtime", "batch 1", "batch 32", "batch 32 / batch 1"):
        left = col in ("backbone", "weights", "runtime")
        table.add_column(col, justify="left" if left else "right")
    with tempfile.TemporaryDirectory() as scratch:
        for backbone_id in IMAGE_BACKBONES:
            weights, kind = weights_for(backbone_id, Path(scratch))
            result["backbones"][backbone_id] = {"weights": kind}
            for runtime in ("onnx", "torch"):
                extractor = ImageExtractor(backbone_id, weights, runtime=runtime,
                                           cache_dir=Path(scratch))
                one, many = model_throughput(extractor, 1), model_throughput(extractor, 32)
                result["backbones"][backbone_id][runtime] = {
                    "batch1": one, "batch32": many, "speedup": many / one}
                table.add_row(backbone_id, kind, runtime, f"{one:.1f}", f"{many:.1f}",
                              f"{many / one:.2f}x")
    console.print(table)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = np.arange(16000) / 16000
        import soundfile as sf

        sf.write(tmp / "a16.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32"), 16000)
        t44 = np.arange(44100) / 44100
        stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t44)] * 2, axis=1).astype("float32")
        sf.write(tmp / "a44.wav", stereo, 44100)
        for name, path in (("16 kHz mono", tmp / "a16.wav"), ("44.1 kHz stereo", tmp / "a44.wav")):
            mfcc = AUDIO_FEATURES.get("mfcc")
            mfcc(path)
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < 3:
                mfcc(path)
                n += 1
            result["audio"][name] = n / (time.perf_counter() - start)
        console.print("MFCC (8x13 per 1 s clip): " + ", ".join(
            f"{k} {v:.0f} clips/s" for k, v in result["audio"].items()))

        per_class = args.items // 8
        data = make_pairs_folder(tmp / "data", classes=tuple(f"C{i}" for i in range(8)),
                                 groups_per_class=per_class // 25, frames_per_group=25,
                                 image_size=256)
        store = FeatureStore(tmp / "cache")
        extractor = ImageExtractor("effnet_lite0")
        start = time.perf_counter()
        ds = load_dataset(data, check_files=False)
        first_img = extract_images(ds.items, extractor, store)
        first_aud = extract_audio(ds.items, store)
        first = time.perf_counter() - start
        start = time.perf_counter()
        ds = load_dataset(data, check_files=False)
        fresh_store = FeatureStore(store.root)  # a new process would start with no index loaded
        again_img = extract_images(ds.items, ImageExtractor("effnet_lite0"), fresh_store)
        again_aud = extract_audio(ds.items, fresh_store)
        rerun = time.perf_counter() - start
        assert again_img.computed == 0 and again_aud.computed == 0
        pipeline = {}
        for batch in (1, 8, 32):  # images only, end to end: decode in a worker + embed + store
            store_b = FeatureStore(tmp / f"cache-b{batch}")
            extracted = extract_images(ds.items, extractor, store_b, batch_size=batch)
            pipeline[batch] = len(ds) / extracted.seconds
        result["end_to_end_images_per_s"] = pipeline
        console.print("effnet_lite0 end to end (decode 256x256 PNG + embed + store), images/s: "
                      + ", ".join(f"batch {b}: {v:.1f}" for b, v in pipeline.items()))
        result["cached_rerun"] = {
            "items": len(ds), "first_run_s": first, "rerun_s": rerun,
            "first_run_items_per_s_end_to_end": len(ds) / first,
            "image_first_s": first_img.seconds, "audio_first_s": first_aud.seconds,
        }
        console.print(f"{len(ds)} items (256x256 PNG + 1 s WAV): first run {first:.1f} s "
                      f"({len(ds) / first:.1f} items/s end to end: decode + effnet_lite0 + MFCC),"
                      f" cached re-run {rerun:.2f} s")
    lite = result["backbones"]["effnet_lite0"]
    e2e = result["end_to_end_images_per_s"]
    result["targets"] = {
        "effnet_lite0_batched_speedup>=2 (end to end, batch 32 vs 1)": e2e[32] / e2e[1] >= 2,
        "effnet_lite0_batched_speedup>=2 (onnx, the default)": lite["onnx"]["speedup"] >= 2,
        "effnet_lite0_batched_speedup>=2 (torch)": lite["torch"]["speedup"] >= 2,
        "cached_rerun_1000_items<5s": result["cached_rerun"]["rerun_s"] < 5,
    }
    console.print(f"targets: {result['targets']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
