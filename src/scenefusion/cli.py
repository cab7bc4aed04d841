"""Command line: parses, calls the library, shows results with rich. No logic lives here."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .data import DataError, load_dataset

app = typer.Typer(help="Scene classification from images and the audio recorded with them.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Inspect, generate and download data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False):
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=err_console,
        transient=True,
    )


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


ClassesOpt = Annotated[
    str | None, typer.Option(help="Comma-separated class list; other labels are skipped.")
]


def _classes(value: str | None) -> list[str] | None:
    return [c.strip() for c in value.split(",") if c.strip()] if value else None


@data_app.command("inspect")
def data_inspect(
    path: Annotated[Path, typer.Argument(help="Data folder (pairs or reference layout) or CSV.")],
    layout: Annotated[str, typer.Option(help="auto, reference, manifest or pairs.")] = "auto",
    classes: ClassesOpt = None,
) -> None:
    """Count items per class and group; list every skipped input and why."""
    try:
        with progress_bar() as bar:
            task = bar.add_task("checking files", total=None, rate="")
            dataset = load_dataset(
                path, layout=layout, classes=_classes(classes),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except DataError as err:
        fail(str(err))
        return
    table = Table(title=f"{path} ({dataset.layout} layout, {len(dataset)} usable items)")
    table.add_column("class")
    table.add_column("items", justify="right")
    table.add_column("groups", justify="right")
    groups = dataset.groups_per_class()
    for name, count in dataset.class_counts().items():
        table.add_row(name, str(count), str(groups[name]))
    console.print(table)
    console.print(f"groups (source videos): {len(set(dataset.groups))}, {dataset.group_source}")
    if dataset.skipped:
        skipped = Table(title=f"{len(dataset.skipped)} skipped input(s)", title_style="yellow")
        skipped.add_column("file")
        skipped.add_column("reason")
        for s in dataset.skipped:
            skipped.add_row(s.path, s.reason)
        console.print(skipped)
    if len(dataset) == 0:
        fail("no usable items remain", code=2)


def _rate_updater(bar: Progress, task, start: float):
    import time

    def update(done: int, total: int) -> None:
        elapsed = max(time.perf_counter() - start, 1e-9)
        bar.update(task, completed=done, total=total, rate=f"{done / elapsed:,.1f} items/s")

    return update


@app.command("extract")
def extract(
    path: Annotated[Path, typer.Argument(help="Data folder or manifest CSV.")],
    image_backbone: Annotated[str, typer.Option(help="Image backbone id.")] = "effnet_lite0",
    audio: Annotated[str, typer.Option(help="Audio features: mfcc, mfcc_deltas, mfcc40.")] = "mfcc",
    weights: Annotated[
        Path | None, typer.Option(help="Weight file for a torchvision backbone.")
    ] = None,
    cache: Annotated[Path | None, typer.Option(help="Feature cache folder.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    layout: Annotated[str, typer.Option(help="auto, reference, manifest or pairs.")] = "auto",
    classes: ClassesOpt = None,
) -> None:
    """Compute and cache image embeddings and MFCC sequences; reuse whatever is cached."""
    import time

    from .features.extract import extract_audio, extract_images
    from .features.image import ImageExtractor
    from .features.store import FeatureStore

    try:
        dataset = load_dataset(path, layout=layout, classes=_classes(classes), check_files=False)
        extractor = ImageExtractor(image_backbone, weights)
        store = FeatureStore(cache)
        with progress_bar() as bar:
            task = bar.add_task(f"image: {image_backbone}", total=len(dataset), rate="")
            images = extract_images(dataset.items, extractor, store, batch_size=batch_size,
                                    progress=_rate_updater(bar, task, time.perf_counter()))
            task = bar.add_task(f"audio: {audio}", total=len(dataset), rate="")
            sounds = extract_audio(dataset.items, store, audio,
                                   progress=_rate_updater(bar, task, time.perf_counter()))
    except (DataError, ValueError, FileNotFoundError, RuntimeError) as err:
        fail(str(err))
        return
    table = Table(title=f"features for {len(dataset)} items, cache {store.root}")
    for col in ("features", "shape", "computed", "reused", "skipped", "seconds"):
        table.add_column(col, justify="right" if col != "features" else "left")
    for name, res in ((image_backbone, images), (audio, sounds)):
        shape = "x".join(str(s) for s in res.features.shape[1:])
        table.add_row(name, shape, str(res.computed), str(res.reused), str(len(res.skipped)),
                      f"{res.seconds:.1f}")
    console.print(table)
    for s in dataset.skipped + images.skipped + sounds.skipped:
        console.print(f"[yellow]skipped[/yellow] {s.path}: {s.reason}")
