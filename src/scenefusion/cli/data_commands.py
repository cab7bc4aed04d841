"""`scenefusion data ...`: inspect a data set, write the demo, cut videos, download the
reference set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..data import load_dataset
from .app import (
    AllowOutsideOpt,
    ClassesOpt,
    LayoutOpt,
    class_list,
    command,
    console,
    data_app,
    fail,
    progress_bar,
    warn,
)
from .text import shown


@command(data_app, "inspect")
def data_inspect(
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="Data folder (pairs or reference layout) or CSV.")
    ],
    layout: LayoutOpt = "auto",
    classes: ClassesOpt = None,
    allow_outside_paths: AllowOutsideOpt = False,
) -> None:
    """Count items per class and group; list every skipped input and why. A folder of videos
    is cut as `run` cuts it by default (one item per second, 4 s of sound), into the cache."""
    from ..config import ExperimentConfig
    from ..data import loading_stage
    from ..plan import video_options

    with progress_bar() as bar:
        task = bar.add_task(loading_stage(path, layout), total=None, rate="")
        dataset = load_dataset(
            path, layout=layout, classes=class_list(classes), allow_outside=allow_outside_paths,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            options=video_options(ExperimentConfig()),  # as a default `run` cuts them
        )
    where = shown(str(path))
    what = ("image + audio" if len(dataset.modalities) == 2
            else f"{dataset.modalities[0]} only: no fusion rows")
    table = Table(title=f"{where} ({dataset.layout} layout, {what}, {len(dataset)} usable "
                        f"items)")
    videos = dataset.videos
    table.add_column("class")
    table.add_column("items", justify="right")
    table.add_column("videos" if videos else "groups", justify="right")
    if videos:
        table.add_column("seconds", justify="right")
    groups = dataset.groups_per_class()
    for name, count in dataset.class_counts().items():
        seconds = [f"{count / videos['fps']:g}"] if videos else []
        table.add_row(shown(name), str(count), str(groups[name]), *seconds)
    console.print(table)
    if videos:
        console.print(f"videos: {videos['videos']} found, {videos['cut']} cut now, "
                      f"{videos['reused']} reused from the cache")
    console.print(f"groups (source videos): {len(set(dataset.groups))}, {dataset.group_source}")
    if dataset.skipped:
        skipped = Table(title=f"{len(dataset.skipped)} skipped input(s)", title_style="yellow")
        skipped.add_column("file")
        skipped.add_column("reason")
        for s in dataset.skipped:
            skipped.add_row(shown(s.path), shown(s.reason))
        console.print(skipped)
    if len(dataset) == 0:
        fail("no usable items remain", code=2)


@command(data_app, "download")
def data_download(
    dest: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Copy the data set here.")
    ] = None,
) -> None:
    """Fetch the reference data set from Kaggle with kagglehub (needs network access)."""
    from ..data.download import download_reference

    root = download_reference(dest)
    console.print(
        f"reference data set ready at [bold]{shown(str(root))}[/bold]; next: "
        f"scenefusion run --data {shown(str(root))}"
    )


@command(data_app, "from-video")
def data_from_video(
    videos: Annotated[
        list[Path], typer.Argument(metavar="VIDEO...", help="Video file(s) of one scene class.")
    ],
    label: Annotated[str, typer.Option(metavar="CLASS", help="Class name for these videos.")],
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Pairs folder to add to (OUT/<label>/...).")
    ],
    audio_seconds: Annotated[
        float,
        typer.Option(metavar="SECONDS", min=0.25,
                     help="Seconds of audio around each frame (default 1, as the reference "
                          "set); features read N s with an audio feature id ID@Ns, e.g. "
                          "aisfx@3s."),
    ] = 1.0,
) -> None:
    """Cut videos into one image + 1 s of audio per second, as a pairs folder."""
    from ..data.video import videos_to_pairs

    cut = videos_to_pairs(videos, out, label, audio_seconds=audio_seconds,
                          on_video=lambda path, written: console.print(
                              f"{shown(str(path))}: {len(written)} pairs"))
    for err in cut.skipped:
        warn(str(err), "skipped")
    total = cut.total
    if total == 0:
        fail("no pairs written", code=2)
    console.print(shown(f"{total} pairs in {out / label}; next: scenefusion data inspect {out}"))


@command(data_app, "demo")
def data_demo(
    dest: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to create.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Add the demo to a non-empty folder (never overwrites a "
                     "file)."),
    ] = False,
) -> None:
    """Write the SYNTHETIC demo pairs folder (for trying the tool; not real scenes)."""
    from ..data.synthetic import make_demo

    make_demo(dest, force=force)
    console.print(shown(f"synthetic demo data written to {dest}"))
