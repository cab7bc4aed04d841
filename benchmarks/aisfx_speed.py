"""Speed of the `aisfx` audio feature per 1 s clip, batch 1: reading the file, the log-mel
input, the embedding network on ONNX Runtime (the default) and on eager torch, and the whole
feature on each runtime. Prints a table, writes JSON.

    python benchmarks/aisfx_speed.py [--rounds 5] [--clips 20] \
        [--out benchmarks/results/aisfx_speed.json]

Needs the aiSFX weights (``pip install --no-deps aisfx==0.1.2``, or
``$SCENEFUSION_AISFX_WEIGHTS``); with ``--random-weights`` it uses a random checkpoint of the same
architecture instead (speed does not depend on the weight values). Rounds alternate between the
stages so that load from other processes hits them alike; each figure is the median over rounds
of the mean ms per clip. The ONNX export goes to a temporary cache folder; its one-off cost
(export + session) is printed too.
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
import soundfile as sf
import torch
from rich.console import Console
from rich.table import Table

from scenefusion.cpu import usable_cores
from scenefusion.data.validate import read_audio
from scenefusion.features.audio.aisfx import (
    AisfxParams,
    aisfx_embedding,
    aisfx_frames,
    build_embedding_net,
    load_aisfx_net,
    load_aisfx_session,
)
from scenefusion.features.audio.framing import fit_clip


def _clips(folder: Path, n: int) -> tuple[list[Path], list[Path]]:
    """n one-second clips at 44.1 kHz stereo (no resampling) and n at 16 kHz mono (resampled)."""
    rng = np.random.default_rng(0)
    native, resampled = [], []
    for i in range(n):
        for sr, channels, out in ((44100, 2, native), (16000, 1, resampled)):
            t = np.arange(sr) / sr
            wave = 0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.05 * rng.normal(size=sr)
            data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
            path = folder / f"clip{i}-{sr}.wav"
            sf.write(path, data.astype(np.float32), sr)
            out.append(path)
    return native, resampled


def _ms_per_clip(fn, items, warmup: int = 3) -> float:
    for item in items[:warmup]:
        fn(item)
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / len(items) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/aisfx_speed.json"))
    args = parser.parse_args()
    threads = usable_cores()
    torch.set_num_threads(threads)
    onnx_params, torch_params = AisfxParams(runtime="onnx"), AisfxParams(runtime="torch")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["SCENEFUSION_CACHE"] = str(folder / "cache")
        if args.random_weights:
            torch.manual_seed(0)
            weights = folder / "random-aisfx.pth"
            state = {f"embedding_net.{k}": v for k, v in build_embedding_net().state_dict().items()}
            torch.save((state, {}), weights)
            os.environ["SCENEFUSION_AISFX_WEIGHTS"] = str(weights)
        start = time.perf_counter()
        net = load_aisfx_net()
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        session = load_aisfx_session()
        export_s = time.perf_counter() - start
        native, resampled = _clips(folder, args.clips)

        def read(p):
            return fit_clip(read_audio(p, onnx_params.sample_rate)[0],
                            onnx_params.sample_rate * onnx_params.clip_seconds)

        clips = [read(p) for p in native]
        frames = [aisfx_frames(c, onnx_params)[None] for c in clips]
        onnx_gap = float(np.abs(session.run(None, {"frames": frames[0]})[0]
                                - _torch_net(net, frames[0])).max())
        stages = {
            "read 1 s WAV (44.1 kHz stereo) + fit": (read, native),
            "read 1 s WAV (16 kHz mono, resampled) + fit": (read, resampled),
            "log-mel input (44 x 96)": (lambda c: aisfx_frames(c, onnx_params), clips),
            "network, onnxruntime": (lambda f: session.run(None, {"frames": f}), frames),
            "network, torch": (lambda f: _torch_net(net, f), frames),
            "feature end to end, onnx (default), 44.1 kHz file": (
                lambda p: aisfx_embedding(p, onnx_params), native),
            "feature end to end, torch, 44.1 kHz file": (
                lambda p: aisfx_embedding(p, torch_params), native),
            "feature end to end, onnx (default), 16 kHz file": (
                lambda p: aisfx_embedding(p, onnx_params), resampled),
            "feature end to end, torch, 16 kHz file": (
                lambda p: aisfx_embedding(p, torch_params), resampled),
        }
        rounds: dict[str, list[float]] = {name: [] for name in stages}
        for _ in range(args.rounds):
            for name, (fn, items) in stages.items():
                rounds[name].append(_ms_per_clip(fn, items))
    medians = {name: statistics.median(values) for name, values in rounds.items()}
    table = Table(title=f"aisfx per 1 s clip, batch 1, {threads} threads (median of "
                        f"{args.rounds} rounds)")
    table.add_column("stage")
    table.add_column("ms / clip", justify="right")
    for name, ms in medians.items():
        table.add_row(name, f"{ms:.1f}")
    Console().print(table)
    print(f"once per process: torch network load {load_s:.2f} s; ONNX export + session "
          f"{export_s:.2f} s (a cached export: session only)")
    print(f"onnx vs torch max |difference|: {onnx_gap:.2e}")
    import onnxruntime as ort

    record = {"ms_per_clip": medians, "rounds": rounds, "threads": threads,
              "torch_load_s": load_s, "onnx_export_and_session_s": export_s,
              "onnx_max_abs_diff": onnx_gap, "random_weights": args.random_weights,
              "machine": {"platform": platform.platform(), "python": platform.python_version(),
                          "torch": torch.__version__, "onnxruntime": ort.__version__,
                          "load_average": os.getloadavg()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))


def _torch_net(net, frames: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return net(torch.from_numpy(frames)).numpy()


if __name__ == "__main__":
    main()
