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
