"""Distributed extraction on Ray vs one process: items/s end to end on generated pairs (256x256
PNG + 1 s WAV, effnet_lite0 + mfcc, empty cache), Ray's start-up seconds apart, the cached
re-run, and per-stage single-core rates for the extrapolation to a cluster. Prints tables,
writes JSON.

    python benchmarks/distributed.py [--items 1000] [--actors 1 2]
                                     [--out benchmarks/results/distributed.json]

Needs the `[ray]` extra. Each configuration starts from an empty cache folder (one ONNX export
included, as in a user's first run), on the same generated data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from scenefusion.cpu import limit_threads, usable_cores
from scenefusion.data import load_dataset
from scenefusion.data.synthetic import make_pairs_folder
from scenefusion.data.validate import open_image_rgb
from scenefusion.features.audio import AUDIO_FEATURES, audio_feature
from scenefusion.features.distributed import RayOptions, actor_resources, connect
from scenefusion.features.distributed import extract_distributed as ray_extract
from scenefusion.features.extract import extract_dataset
from scenefusion.features.image import ImageExtractor
from scenefusion.features.recipe import FeatureRecipe
from scenefusion.features.store import FeatureStore, content_hash

BACKBONE, AUDIO = "effnet_lite0", "mfcc"
RECIPE = FeatureRecipe((BACKBONE,), audio_feature(AUDIO))


def make_data(root: Path, items: int):
    """~`items` pairs (3 classes x groups x 24 frames), 256 px images like extract_speed.py."""
    groups = max(1, math.ceil(items / (3 * 24)))
    make_pairs_folder(root, groups_per_class=groups, frames_per_group=24, image_size=256)
    dataset = load_dataset(root, check_files=False)
    return dataset.subset(list(range(min(items, len(dataset)))))


def single_process(dataset, cache: Path) -> dict:
    store = FeatureStore(cache)
    with limit_threads():
        start = time.perf_counter()
        extract_dataset(dataset, store, RECIPE)
        first = time.perf_counter() - start
        start = time.perf_counter()
        extract_dataset(dataset, store, RECIPE)
        again = time.perf_counter() - start
    return {"seconds": first, "items_per_s": len(dataset) / first, "rerun_seconds": again}


def on_ray(dataset, cache: Path, actors: int) -> dict:
    import ray

    store = FeatureStore(cache)
    options = RayOptions(actors=actors)
    cpus, threads = actor_resources(options, ray.cluster_resources())
    first = ray_extract(dataset, store, RECIPE, options=options)
    again = ray_extract(dataset, store, RECIPE, options=options)
    assert all(r["computed"] == 0 for r in again.extraction.values()), again.extraction
    return {"seconds": first.seconds, "items_per_s": len(dataset) / first.seconds,
            "rerun_seconds": again.seconds, "cpus_per_actor": cpus, "threads_per_actor": threads,
            "extraction": first.extraction}


def stage_rates(dataset, scratch: Path, n: int = 200) -> dict:
    """Items/s of each step on ONE thread: what one core (or one 1-thread actor) sustains."""
    items = dataset.items[:n]
    rates = {}
    with limit_threads(1):
        rates["hash (read + blake2b, image + wav)"] = _rate(
            items, lambda it: (content_hash(it.image), content_hash(it.audio)))
        feature = AUDIO_FEATURES.get(AUDIO)
        rates["mfcc (read wav + MFCC)"] = _rate(items, lambda it: feature(it.audio))
        extractor = ImageExtractor(BACKBONE, cache_dir=scratch, threads=1)
        rates["decode + preprocess image"] = _rate(
            items, lambda it: extractor.preprocess(open_image_rgb(it.image)))
        batch = torch.randn(8, 3, extractor.spec.input_size, extractor.spec.input_size)
        extractor.embed(batch)
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < 4:
            extractor.embed(batch)
            done += 8
        rates["embed effnet_lite0 (ONNX, batch 8)"] = done / (time.perf_counter() - start)
        table = FeatureStore(scratch / "writes").table("bench", "0", (1280,))
        rows = np.zeros((256, 1280), np.float32)
        start = time.perf_counter()
        for c in range(8):
            table.put_many([f"{c}-{i}" for i in range(256)], rows)
        rates["driver store writes (put_many, 256-row chunks)"] = 8 * 256 / (
            time.perf_counter() - start)
    return rates


def _rate(items, fn) -> float:
    start = time.perf_counter()
    for it in items:
        fn(it)
    return len(items) / (time.perf_counter() - start)


def extrapolate(rates: dict) -> list[str]:
    """Items/s of a cluster, on paper, from the per-core rates measured here."""
    per_actor = 1 / (1 / rates["decode + preprocess image"]
                     + 1 / rates["embed effnet_lite0 (ONNX, batch 8)"])
    per_cpu_task = 1 / (1 / rates["hash (read + blake2b, image + wav)"]
                        + 1 / rates["mfcc (read wav + MFCC)"])
    writes = rates["driver store writes (put_many, 256-row chunks)"]
    lines = [
        f"one 1-thread actor (decode + embed): {per_actor:,.0f} items/s; one CPU-stage core "
        f"(hash + MFCC): {per_cpu_task:,.0f} items/s; driver writes: {writes:,.0f} items/s",
    ]
    for actors, cpu_cores in ((8, 4), (64, 32), (256, 128)):
        model = actors * per_actor
        cpu = cpu_cores * per_cpu_task
        rate = min(model, cpu, writes)
        limit = {model: "actors (decode + model)", cpu: "CPU stage (hash + MFCC)",
                 writes: "driver writes"}[rate]
        lines.append(f"{actors} actors + {cpu_cores} CPU-stage cores: min({model:,.0f}, "
                     f"{cpu:,.0f}, {writes:,.0f}) = {rate:,.0f} items/s, bound by {limit}; "
                     f"1M items in {1e6 / rate / 60:,.1f} min")
    lines.append("storage read: ~0.2 MB per pair (256 px PNG + 1 s 16 kHz WAV) is read twice "
                 "(hash, decode): at 1 GB/s shared storage ~2,500 items/s, which binds before "
                 "the driver does at real photo sizes (1-5 MB per image: 100-500 items/s)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "distributed.json")
    args = parser.parse_args()
    console = Console()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        dataset = make_data(scratch / "data", args.items)
        results = {"single process": single_process(dataset, scratch / "cache-local")}
        startup = connect(num_cpus=usable_cores())
        for n in args.actors:
            results[f"ray, {n} actor(s)"] = on_ray(dataset, scratch / f"cache-ray{n}", n)
        import ray

        ray.shutdown()
        # again after Ray, so that a change of load on a shared machine shows as a difference
        results["single process (again)"] = single_process(dataset, scratch / "cache-local2")
        rates = stage_rates(dataset, scratch / "stages")
    base = results["single process"]["items_per_s"]
    table = Table(title=f"{len(dataset)} pairs, {BACKBONE} + {AUDIO}, empty cache, "
                        f"{usable_cores()} cores; Ray start-up {startup:.1f} s (not included)")
    for col in ("runner", "seconds", "items/s", "vs single", "cached re-run s", "actor CPUs"):
        table.add_column(col, justify="left" if col == "runner" else "right")
    for name, r in results.items():
        actor = (f"{r['cpus_per_actor']:g} ({r['threads_per_actor']} thr)"
                 if "cpus_per_actor" in r else "")
        table.add_row(name, f"{r['seconds']:.1f}", f"{r['items_per_s']:.1f}",
                      f"{r['items_per_s'] / base:.2f}x", f"{r['rerun_seconds']:.2f}", actor)
    console.print(table)
    console.print(f"load average (1, 5, 15 min) before {load_before}, after {os.getloadavg()}: "
                  "other processes on this machine share its cores")
    stages = Table(title="one thread per step, items/s")
    stages.add_column("step")
    stages.add_column("items/s", justify="right")
    for name, rate in rates.items():
        stages.add_row(name, f"{rate:,.0f}")
    console.print(stages)
    lines = extrapolate(rates)
    for line in lines:
        console.print(f"- {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": {"cores": usable_cores(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "ray": ray.__version__,
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "items": len(dataset), "ray_startup_seconds": startup, "runs": results,
        "single_thread_rates": rates, "extrapolation": lines,
    }, indent=2))
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
