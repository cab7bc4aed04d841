"""Feature extraction speed on this machine: images/s per backbone at batch 1 and 32, MFCC
clips/s, and the cached re-run time of a 1,000-item data set. Prints a table, writes JSON.

    python benchmarks/extract_speed.py [--items 1000] [--out benchmarks/results/extract_speed.json]

Precision mode: with ``--backbone`` and/or ``--precision`` (both repeatable) it
measures each backbone x precision instead and writes a JSON list of records (backbone,
precision, images_per_s, cosine_to_fp32 (mean over photos), cosine_to_fp32_min, top-1 ImageNet
agreement with fp32, batch, threads, weights, machine):

    python benchmarks/extract_speed.py --backbone effnet_lite0 --backbone vgg19 \
        --precision fp32 --precision int8 --precision bf16 --out /tmp/precision.json

Fidelity is measured on the real photos under ``--photos`` (every image there), int8 being
calibrated on the generated set (``--calibrate-on generated``, out of sample: the weaker
fallback) or on those photos (``photos``: in sample, optimistic). Throughput rounds alternate
between precisions so that load from other processes hits them alike (load average recorded).

Targets: batched >= 2x batch-1 throughput for effnet_lite0; cached re-run of a
1,000-item set under 5 s. torchvision backbones are measured only where their weight files are
present; offline, they run with random weights of the same architecture (same speed), and
the table says so.
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

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from scenefusion.cpu import usable_cores
from scenefusion.data import load_dataset
from scenefusion.data.synthetic import make_pairs_folder
from scenefusion.features.audio import AUDIO_FEATURES, audio_feature
from scenefusion.features.backbones import IMAGE_BACKBONES, WeightsNotFoundError, find_weights
from scenefusion.features.extract import extract_audio, extract_images
from scenefusion.features.image import ImageExtractor
from scenefusion.features.quantize import PRECISIONS, cpu_supports_bf16, generated_images
from scenefusion.features.store import FeatureStore

PHOTOS = Path("/work/realdata/raw/images")
CPU_FLAGS = ("avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


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


def machine_info() -> dict:
    """What the figures depend on: CPU model and its int8/bf16 instructions, cores, versions."""
    import onnxruntime

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                  if ln.startswith("model name")), platform.processor() or platform.machine())
    flags = next((ln.split(":", 1)[1].split() for ln in cpuinfo.splitlines()
                  if ln.startswith("flags")), [])
    return {"cpu": model, "usable_cores": usable_cores(), "cpu_count": os.cpu_count(),
            "cpu_flags": [f for f in CPU_FLAGS if f in flags], "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
            "torch_bf16_native": cpu_supports_bf16()}


def photo_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def _head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The final ImageNet classifier applied to the embedding, where the architecture has one."""
    if hasattr(model, "classifier") and isinstance(model.classifier, torch.nn.Sequential):
        return model.classifier[6]  # VGG: fc8 after fc7 (+ dropout, inactive in eval)
    for name in ("_fc", "fc"):  # EfficientNet-Lite, ResNet, Inception
        if isinstance(getattr(model, name, None), torch.nn.Linear):
            return getattr(model, name)
    return None


def _rgb(source: Path | Image.Image) -> Image.Image:
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    with Image.open(source) as image:
        return image.convert("RGB")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _embed_all(extractor: ImageExtractor, batch: torch.Tensor, size: int) -> np.ndarray:
    return np.concatenate([extractor.embed(batch[i:i + size]) for i in range(0, len(batch), size)])


def _throughput_rounds(extractors: dict[str, ImageExtractor], x: torch.Tensor, rounds: int,
                       seconds: float) -> dict[str, list[float]]:
    """Images/s per precision, measured in alternating rounds (warm-up excluded)."""
    for ex in extractors.values():
        ex.embed(x)
    rates: dict[str, list[float]] = {p: [] for p in extractors}
    for _ in range(rounds):
        for precision, ex in extractors.items():
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds or n < 2 * len(x):
                ex.embed(x)
                n += len(x)
            rates[precision].append(n / (time.perf_counter() - start))
    return rates


def precision_records(args: argparse.Namespace, console: Console) -> list[dict]:
    """One record per backbone x precision: throughput and fidelity to fp32 on real photos."""
    machine = machine_info()
    photos = photo_paths(args.photos) if args.photos.is_dir() else []
    photo_source = f"{len(photos)} real photos under {args.photos}" if photos else \
        "generated images (no real photos found: fidelity figures are weak)"
    precisions = ["fp32"] + [p for p in dict.fromkeys(args.precision or PRECISIONS) if p != "fp32"]
    records = []
    with tempfile.TemporaryDirectory() as scratch:
        for backbone_id in dict.fromkeys(args.backbone or ["effnet_lite0", "vgg19"]):
            weights, kind = weights_for(backbone_id, Path(scratch))
            sources = photos or list(generated_images(20, seed=7))
            extractors, build_s = {}, {}
            for precision in precisions:
                calib = (photos if args.calibrate_on == "photos" and photos else None)
                ex = ImageExtractor(backbone_id, weights, precision=precision,
                                    cache_dir=Path(scratch), threads=args.threads,
                                    calibration_images=calib)
                start = time.perf_counter()
                ex.embed(torch.zeros(1, 3, ex.spec.input_size, ex.spec.input_size))  # builds
                build_s[precision] = time.perf_counter() - start
                extractors[precision] = ex
            fp32 = extractors["fp32"]
            batch = torch.stack([fp32.preprocess(_rgb(p)) for p in sources])
            embedded = {p: _embed_all(ex, batch, args.batch) for p, ex in extractors.items()}
            head = _head(fp32.model)
            top1 = None
            if head is not None:
                with torch.inference_mode():
                    top1 = {p: head(torch.from_numpy(e)).argmax(1).numpy()
                            for p, e in embedded.items()}
            ref = embedded["fp32"]
            cross = _cosines(ref, np.roll(ref, 1, axis=0))
            x = batch[:args.batch] if len(batch) >= args.batch else batch.repeat(
                -(-args.batch // len(batch)), 1, 1, 1)[:args.batch]
            load_before = os.getloadavg()
            rates = _throughput_rounds(extractors, x, args.rounds, args.seconds)
            load_after = os.getloadavg()
            fp32_rate = statistics.median(rates["fp32"])
            for precision, ex in extractors.items():
                cos = _cosines(embedded[precision], ref)
                rate = statistics.median(rates[precision])
                records.append({
                    "backbone": backbone_id, "precision": precision, "runtime": ex.runtime,
                    "images_per_s": round(rate, 2),
                    "speedup_vs_fp32": round(rate / fp32_rate, 2),
                    "images_per_s_rounds": [round(r, 2) for r in rates[precision]],
                    "cosine_to_fp32": round(float(cos.mean()), 5),
                    "cosine_to_fp32_min": round(float(cos.min()), 5),
                    "top1_agreement_with_fp32": None if top1 is None else
                        round(float((top1[precision] == top1["fp32"]).mean()), 3),
                    "fp32_cosine_between_different_photos": round(float(cross.mean()), 3),
                    "fidelity_images": photo_source,
                    "weights": kind,
                    "weights_note": "random weights of the same architecture (official file "
                                    "absent): speed is representative, fidelity is not evidence "
                                    "for downstream accuracy" if kind.startswith("random")
                                    else "pretrained ImageNet weights",
                    "calibration": None if precision != "int8" else (
                        f"{args.calibrate_on}: " + ("the fidelity photos (in sample)"
                                                     if ex.calibration_images is not None
                                                     else "200 generated images (out of sample)")),
                    "build_s": round(build_s[precision], 1),
                    "batch": args.batch, "threads": ex.threads,
                    "load_average_1min": [round(load_before[0], 2), round(load_after[0], 2)],
                    "machine": machine,
                })
                console.print(f"{backbone_id:14} {precision:5} {rate:7.2f} img/s "
                              f"({rate / fp32_rate:.2f}x)  cosine mean {cos.mean():.4f} "
                              f"min {cos.min():.4f}  build {build_s[precision]:.0f} s")
            del extractors
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--backbone", action="append", help="precision mode; repeatable")
    parser.add_argument("--precision", action="append", choices=PRECISIONS,
                        help="precision mode; repeatable (fp32 is always measured)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="per round and precision")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--calibrate-on", choices=("generated", "photos"), default="generated")
    args = parser.parse_args()
    console = Console()
    if args.backbone or args.precision:
        records = precision_records(args, console)
        out = args.out or Path("benchmarks/results/extract_precision.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(records, indent=2))
        console.print(f"written to {out}")
        return
    args.out = args.out or Path("benchmarks/results/extract_speed.json")
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
        first_aud = extract_audio(ds.items, store, audio_feature("mfcc"))
        first = time.perf_counter() - start
        start = time.perf_counter()
        ds = load_dataset(data, check_files=False)
        fresh_store = FeatureStore(store.root)  # a new process would start with no index loaded
        again_img = extract_images(ds.items, ImageExtractor("effnet_lite0"), fresh_store)
        again_aud = extract_audio(ds.items, fresh_store, audio_feature("mfcc"))
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
