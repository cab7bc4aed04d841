"""Requests/s and p50/p95 latency of `scenefusion serve`'s POST /predict on one image/audio
pair: `scenefusion serve` in its own process on 127.0.0.1 only, a bounded number of requests.

    python benchmarks/serve_latency.py [--bundle RUN_DIR/best --image F --audio F]
        [--requests 100] [--concurrency 1 2] [--out benchmarks/results/serve_latency.json]

Without --bundle it trains a tiny run on synthetic pairs first (effnet_lite0 + mfcc, logreg
models, early and late fusion; ~15 s) and sends one of its pairs. Each request is a full
multipart upload answered with the model's class, top-k and per-modality probabilities.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from scenefusion.config import ExperimentConfig
from scenefusion.data.synthetic import make_pairs_folder
from scenefusion.experiment import run_experiment

TINY = {"models": {"image": ["logreg"], "audio": ["logreg"]},
        "fusion": {"early": ["logreg"], "late": ["mean"], "hybrid": []},
        "evaluation": {"n_bootstrap": 50}}


def tiny_bundle(tmp: Path) -> tuple[Path, Path, Path]:
    """Train the tiny synthetic run; returns its best/ and one (image, audio) pair."""
    data = make_pairs_folder(tmp / "pairs", groups_per_class=3, frames_per_group=3)
    config = ExperimentConfig.model_validate({
        "data": {"path": str(data)}, **TINY, "features": {"cache_dir": str(tmp / "cache")},
        "output": {"runs_dir": str(tmp / "runs"), "name": "bench"}})
    run_experiment(config)
    image = sorted(data.rglob("*.png"))[0]
    return tmp / "runs" / "bench" / "best", image, image.with_suffix(".wav")


def upload(image: Path, audio: Path) -> dict[str, tuple[str, bytes, str]]:
    """The multipart fields of one pair, read once (httpx encodes them per request)."""
    return {"image": (image.name, image.read_bytes(), "image/png"),
            "audio": (audio.name, audio.read_bytes(), "audio/wav")}


def start_server(bundle: Path) -> tuple[subprocess.Popen, str]:
    """`scenefusion serve` in its own process on a free loopback port: the client's CPU time
    must not share the server's interpreter (and GIL), or it is measured as server latency."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", "from scenefusion.cli import app; app()",
                               "serve", str(bundle), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("scenefusion serve did not start within 120 s")


def timed_post(client: httpx.Client, url: str, files: dict) -> float:
    start = time.perf_counter()
    response = client.post(f"{url}/predict", files=files, timeout=60)
    response.raise_for_status()
    response.json()
    return time.perf_counter() - start


def measure(client: httpx.Client, url: str, files: dict, n: int, concurrency: int) -> dict:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        latencies = sorted(pool.map(lambda _: timed_post(client, url, files), range(n)))
    wall = time.perf_counter() - start
    quantiles = statistics.quantiles(latencies, n=100)
    return {"concurrency": concurrency, "requests": n, "seconds": round(wall, 3),
            "requests_per_s": round(n / wall, 2), "p50_ms": round(quantiles[49] * 1000, 1),
            "p95_ms": round(quantiles[94] * 1000, 1),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None, help="RUN_DIR/best to serve.")
    parser.add_argument("--image", type=Path, default=None)
    parser.add_argument("--audio", type=Path, default=None)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_latency.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("SCENEFUSION_CACHE", str(Path(tmp) / "sfcache"))
        if args.bundle is None:
            bundle, image, audio = tiny_bundle(Path(tmp))
        else:
            if args.image is None or args.audio is None:
                parser.error("--bundle needs --image and --audio")
            bundle, image, audio = args.bundle, args.image, args.audio
        server, url = start_server(bundle)
        try:
            files = upload(image, audio)
            with httpx.Client() as client:
                for _ in range(args.warmup):
                    timed_post(client, url, files)
                runs = [measure(client, url, files, args.requests, c) for c in args.concurrency]
                model = client.get(f"{url}/model", timeout=10).json()["name"]
        finally:
            server.terminate()
            server.wait(10)
    result = {"machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "model": model, "bundle": "tiny synthetic run" if args.bundle is None
              else str(args.bundle), "runs": runs}
    for r in runs:
        print(f"concurrency {r['concurrency']}: {r['requests_per_s']} requests/s, "
              f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms ({r['requests']} requests)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
