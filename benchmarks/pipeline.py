"""Seconds per stage of a full `scenefusion run` (data, features, split, training, evaluation),
then of a second run that reuses the cached features. Prints a table, writes JSON.

    python benchmarks/pipeline.py [--data PATH] [--config experiment.yaml]
                                  [--out benchmarks/results/pipeline.json]

Without --data it uses the synthetic demo set (the only paired data available offline).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from scenefusion.config import load_config
from scenefusion.experiment import run_experiment

STAGES = ("data", "features", "split", "training", "evaluation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pipeline.json"))
    args = parser.parse_args()
    console = Console()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("first run (empty cache)", "re-run (cached features)"):
            config = load_config(args.config)
            if args.data is not None:
                config.data.path = args.data
            config.features.cache_dir = Path(tmp) / "cache"
            config.output.runs_dir = Path(tmp) / "runs"
            start = time.perf_counter()
            out = run_experiment(config)
            total = time.perf_counter() - start
            runs[label] = {"stages": out.timings, "total_s": total,
                           "items_test": out.results[0].n_test,
                           "runs_compared": len(out.results), "extraction": out.extraction}
    table = Table(title="scenefusion run: seconds per stage")
    table.add_column("stage")
    for label in runs:
        table.add_column(label, justify="right")
    for stage in STAGES:
        table.add_row(stage, *(f"{r['stages'].get(stage, 0.0):.2f}" for r in runs.values()))
    table.add_row("total", *(f"{r['total_s']:.2f}" for r in runs.values()))
    console.print(table)
    first = next(iter(runs.values()))
    console.print(f"{first['runs_compared']} runs compared; data: "
                  f"{args.data or 'synthetic demo set'}")
    result = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "data": str(args.data) if args.data else "synthetic demo",
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
