"""`scenefusion extract | run | evaluate | list`: the pipeline's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..features import DEFAULT_BACKBONE, DEFAULT_BATCH_SIZE
from .app import (
    AllowOutsideOpt,
    CacheOpt,
    ClassesOpt,
    DeviceOpt,
    LayoutOpt,
    app,
    class_list,
    command,
    console,
    err_console,
    fail,
    progress_bar,
    stage_progress,
    warn,
)
from .tables import print_results
from .text import shown

RUN_INTERRUPTED = ("interrupted: features computed so far are cached (a re-run reuses them); "
                   "a run folder already started is marked INCOMPLETE")
ThreadsOpt = Annotated[
    int | None,
    typer.Option(metavar="N", min=1,
                 help="CPU threads for every stage (default: the cores this process may use); "
                      "lower it on a shared machine."),
]


@command(app, "extract")
def extract(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Data folder or manifest CSV.")],
    image_backbone: Annotated[
        list[str] | None,
        typer.Option(metavar="ID", help="Image backbone id(s), repeatable; see `list`."),
    ] = None,
    audio: Annotated[
        str, typer.Option(metavar="ID", help="Audio feature id (see `list`); auto: MFCC rows "
                          "of the reference layout, MFCCs over the whole clip for raw audio.")
    ] = "auto",
    weights: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Weight file for a (single) torchvision backbone."),
    ] = None,
    cache: CacheOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, metavar="N")] = DEFAULT_BATCH_SIZE,
    runtime: Annotated[str, typer.Option(metavar="RUNTIME", help="auto, onnx or torch.")] = "auto",
    precision: Annotated[
        str, typer.Option(metavar="PRECISION", help="fp32 (default), int8 or bf16: see "
                          "benchmarks/README.md for speed and fidelity.")
    ] = "fp32",
    threads: ThreadsOpt = None,
    layout: LayoutOpt = "auto",
    classes: ClassesOpt = None,
    allow_outside_paths: AllowOutsideOpt = False,
    runner: Annotated[
        str, typer.Option(metavar="RUNNER", help="local (default) or ray: a Ray Data pipeline "
                          "on a Ray cluster (--threads is then per actor).")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(metavar="ADDR", help="Ray cluster to join (ray://HEAD:10001 or auto); "
                     "default: start a local one."),
    ] = None,
    actors: Annotated[
        int, typer.Option(metavar="N", min=1, help="Embedding actors per backbone (ray).")
    ] = 1,
    gpus_per_actor: Annotated[
        float, typer.Option(metavar="G", min=0, help="GPUs reserved per actor (ray).")
    ] = 0.0,
    device: DeviceOpt = "auto",
) -> None:
    """Compute and cache image embeddings and audio features; reuse whatever is cached."""
    from ..config import ExperimentConfig, with_overrides
    from ..cpu import limit_threads
    from ..experiment import load_data
    from ..features.fill_cache import RayConfig, fill_cache
    from ..features.store import FeatureStore
    from ..plan import resolve_plan

    backbones = image_backbone or [DEFAULT_BACKBONE]
    if weights is not None and len(backbones) != 1:
        fail("--weights needs exactly one --image-backbone")
    # the same config, loading and plan as `run`, so both compute the same tables and keys
    cfg = with_overrides(ExperimentConfig(), **{
        "data.path": path, "data.layout": layout, "data.classes": class_list(classes),
        "data.allow_outside_paths": allow_outside_paths,
        "features.image_backbones": backbones, "features.audio": audio,
        "features.image_weights": {backbones[0]: weights} if weights else None,
        "features.cache_dir": cache, "features.batch_size": batch_size,
        "features.runtime": runtime, "features.precision": precision,
        "features.device": device, "threads": threads,
    })
    dataset = load_data(cfg, path)
    if len(dataset) == 0:
        fail(f"{path}: no usable items (see `scenefusion data inspect {path}`)", code=2)
    plan = resolve_plan(cfg, dataset)
    for note in plan.notes:
        console.print(shown(note))
    store = FeatureStore(cache)
    store.check_writable()
    with limit_threads(threads), progress_bar() as bar:
        out = fill_cache(dataset, store, plan.features, runner=runner,
                         ray=RayConfig(address, actors, gpus_per_actor),
                         progress=stage_progress(bar))
    table = Table(title=f"features for {len(dataset)} items, cache {shown(str(store.root))}")
    for col in ("features", "shape", "computed", "reused", "skipped", "seconds"):
        table.add_column(col, justify="right" if col != "features" else "left")
    for name, row in out.extraction.items():
        table.add_row(shown(name), "x".join(str(s) for s in out.shapes[name]),
                      str(row["computed"]), str(row["reused"]), str(row["skipped"]),
                      f"{row['seconds']:.1f}")
    console.print(table)
    for s in dataset.skipped + out.skipped:
        console.print(f"[yellow]skipped[/yellow] {shown(s.path)}: {shown(s.reason)}")


@command(app, "run", interrupted=RUN_INTERRUPTED)
def run(
    config: Annotated[
        Path | None,
        typer.Argument(metavar="CONFIG", help="Experiment YAML; default grid if omitted."),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(metavar="PATH", help="Data path (overrides the config).")
    ] = None,
    image_backbone: Annotated[
        list[str] | None,
        typer.Option(metavar="ID", help="Backbone id(s), repeatable (overrides the config)."),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Weight file for the (single) torchvision backbone."),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            metavar="SPLIT", help="group (default, leak-free) or frame (leaky, comparison)."
        ),
    ] = None,
    runs_dir: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Where run folders go.")
    ] = None,
    name: Annotated[str | None, typer.Option(metavar="NAME", help="Run folder name.")] = None,
    cache: CacheOpt = None,
    threads: ThreadsOpt = None,
    runner: Annotated[
        str | None,
        typer.Option(metavar="RUNNER", help="local (default) or ray: independent fits as Ray "
                     "tasks."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(metavar="ADDR", help="Ray cluster to join (with --runner ray); default: "
                     "start a local one."),
    ] = None,
    allow_outside_paths: AllowOutsideOpt = False,
    precision: Annotated[
        str | None,
        typer.Option(metavar="PRECISION", help="Image embedding precision: fp32 (default), "
                     "int8 or bf16."),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(metavar="DEVICE", help="Where image backbones run: auto (default: a CUDA "
                     "GPU when the runtime can use one), cpu or cuda."),
    ] = None,
) -> None:
    """Run the comparison grid: image-only, audio-only, early, late and hybrid fusion."""
    from ..config import load_config, with_overrides
    from ..experiment import resolve_data, run_experiment

    cfg = load_config(config)
    backbones = image_backbone or cfg.features.image_backbones
    if weights is not None and len(backbones) != 1:
        fail("--weights needs exactly one --image-backbone")
    cfg = with_overrides(cfg, **{
        "data.path": data,
        "features.image_backbones": image_backbone or None,
        "features.image_weights": {backbones[0]: weights} if weights else None,
        "split.strategy": split,
        "output.runs_dir": runs_dir,
        "output.name": name,
        "features.cache_dir": cache,
        "threads": threads,
        "runner.kind": runner,
        "runner.address": address,
        "data.allow_outside_paths": allow_outside_paths or None,
        "features.precision": precision,
        "features.device": device,
    })
    data_path = None
    if cfg.data.path is None:  # say which data, and where it lies, before the long work starts
        data_path, note = resolve_data(cfg)
        warn(note, "no data configured")
        err_console.print(f"data folder: {shown(str(data_path))} (see `scenefusion data "
                          "download` for the reference data)")
    with progress_bar() as bar:
        out = run_experiment(cfg, progress=stage_progress(bar))
    print_results(out.results, f"test split ({out.results[0].n_test} items)")
    for note in out.notes:
        console.print(f"[dim]- {shown(note)}[/dim]")
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in out.timings.items())
    console.print(f"time: {stages}")
    if data_path is not None:
        console.print(f"data folder: {shown(str(data_path))}")
    console.print(
        f"run folder: [bold]{shown(str(out.run_dir))}[/bold] (report.html, report.md, "
        f"metrics.json, plots/, best/)"
    )


@command(app, "evaluate")
def evaluate_run(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run folder written by `scenefusion run`.")
    ],
) -> None:
    """Re-render a saved run's reports, plots and table without retraining."""
    from ..experiment import rerender_reports

    results = rerender_reports(run_dir)
    print_results(results, f"{run_dir} ({results[0].n_test} test items)")
    console.print(f"reports re-rendered in [bold]{shown(str(run_dir))}[/bold]")


@command(app, "list")
def list_components() -> None:
    """Every id a config or option accepts, with what it is: backbones, audio features,
    models (and which input each takes), fusion methods, data layouts."""
    from ..data.layouts import LAYOUTS
    from ..features.audio import AUDIO_FEATURES
    from ..features.audio.auto import AUTO, AUTO_DESCRIPTION
    from ..features.backbones import IMAGE_BACKBONES
    from ..models import FUSION, MODELS, capabilities

    table = Table(title="scenefusion ids")
    for col in ("kind", "id", "what it is"):
        table.add_column(col, overflow="fold")
    for e in IMAGE_BACKBONES.entries():
        table.add_row(
            "image backbone",
            e.id,
            shown(f"{e.description} ({e.obj.embedding_dim}-d, {e.obj.input_size}px)"),
        )
    table.add_row("audio feature", AUTO, shown(AUTO_DESCRIPTION))
    for e in AUDIO_FEATURES.entries():
        shape = "x".join(str(n) for n in e.obj.shape)
        licence = f"; licence: {e.obj.licence}" if e.obj.licence else ""
        table.add_row("audio feature", e.id,
                      shown(f"{e.description} ({shape} per item{licence})"))
    for e in MODELS.entries():
        table.add_row(
            "model", e.id, shown(f"{e.description} [input: {capabilities(e.obj).summary()}]")
        )
    for e in FUSION.entries():
        table.add_row("fusion", e.id, shown(e.description))
    for e in LAYOUTS.entries():
        table.add_row("data layout", e.id, shown(e.description))
    console.print(table)
