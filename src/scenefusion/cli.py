"""Command line: parses, calls the library, shows results with rich. No logic lives here.

One file of ~400 lines on purpose: each command is a short parse-call-render function, and
keeping them together shows every option a user has in one place."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .data import DataError, load_dataset
from .features import DEFAULT_BATCH_SIZE

app = typer.Typer(
    help="Scene classification from images and the audio recorded with them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
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
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


INTERRUPTED = "interrupted: features computed so far are cached; the same command resumes there"
RUN_INTERRUPTED = ("interrupted: features computed so far are cached (a re-run reuses them); "
                   "a run folder already started is marked INCOMPLETE")


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


ClassesOpt = Annotated[
    str | None,
    typer.Option(metavar="LIST", help="Comma-separated class list; other labels are skipped."),
]


AllowOutsideOpt = Annotated[
    bool,
    typer.Option("--allow-outside-paths",
                 help="Accept manifest paths that leave the manifest's folder."),
]


def _classes(value: str | None) -> list[str] | None:
    return [c.strip() for c in value.split(",") if c.strip()] if value else None


@data_app.command("inspect")
def data_inspect(
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="Data folder (pairs or reference layout) or CSV.")
    ],
    layout: Annotated[
        str, typer.Option(metavar="LAYOUT", help="auto, reference, manifest or pairs.")
    ] = "auto",
    classes: ClassesOpt = None,
    allow_outside_paths: AllowOutsideOpt = False,
) -> None:
    """Count items per class and group; list every skipped input and why."""
    try:
        with progress_bar() as bar:
            task = bar.add_task("checking files", total=None, rate="")
            dataset = load_dataset(
                path,
                layout=layout,
                classes=_classes(classes),
                allow_outside=allow_outside_paths,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except (DataError, ValueError) as err:
        fail(str(err))
        return
    where = escape(str(path))
    table = Table(title=f"{where} ({dataset.layout} layout, {len(dataset)} usable items)")
    table.add_column("class")
    table.add_column("items", justify="right")
    table.add_column("groups", justify="right")
    groups = dataset.groups_per_class()
    for name, count in dataset.class_counts().items():
        table.add_row(escape(name), str(count), str(groups[name]))
    console.print(table)
    console.print(f"groups (source videos): {len(set(dataset.groups))}, {dataset.group_source}")
    if dataset.skipped:
        skipped = Table(title=f"{len(dataset.skipped)} skipped input(s)", title_style="yellow")
        skipped.add_column("file")
        skipped.add_column("reason")
        for s in dataset.skipped:
            skipped.add_row(escape(s.path), escape(s.reason))
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
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Data folder or manifest CSV.")],
    image_backbone: Annotated[
        list[str] | None,
        typer.Option(metavar="ID", help="Image backbone id(s), repeatable; see `list`."),
    ] = None,
    audio: Annotated[
        str, typer.Option(metavar="ID", help="Audio feature id; see `list`.")
    ] = "mfcc",
    weights: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Weight file for a (single) torchvision backbone."),
    ] = None,
    cache: Annotated[Path | None, typer.Option(metavar="DIR", help="Feature cache folder.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, metavar="N")] = DEFAULT_BATCH_SIZE,
    runtime: Annotated[str, typer.Option(metavar="RUNTIME", help="auto, onnx or torch.")] = "auto",
    precision: Annotated[
        str, typer.Option(metavar="PRECISION", help="fp32 (default), int8 or bf16: see "
                          "benchmarks/README.md for speed and fidelity.")
    ] = "fp32",
    threads: Annotated[
        int | None,
        typer.Option(metavar="N", min=1,
                     help="CPU threads (default: the cores this process may use)."),
    ] = None,
    layout: Annotated[
        str, typer.Option(metavar="LAYOUT", help="auto, reference, manifest or pairs.")
    ] = "auto",
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
) -> None:
    """Compute and cache image embeddings and audio features; reuse whatever is cached."""
    from .cpu import limit_threads
    from .features.extract import extract_dataset
    from .features.store import FeatureStore

    backbones = image_backbone or ["effnet_lite0"]
    if weights is not None and len(backbones) != 1:
        fail("--weights needs exactly one --image-backbone")
    try:
        dataset = load_dataset(path, layout=layout, classes=_classes(classes), check_files=False,
                               allow_outside=allow_outside_paths)
    except (DataError, ValueError) as err:
        fail(str(err))
        return
    if len(dataset) == 0:
        fail(f"{path}: no usable items (see `scenefusion data inspect {path}`)", code=2)
    try:
        store = FeatureStore(cache)
        store.check_writable()
        with limit_threads(threads), progress_bar() as bar:
            if runner == "ray":
                from .features.distributed import RayOptions, extract_distributed

                out = extract_distributed(
                    dataset, store, backbones, audio,
                    image_weights={backbones[0]: weights} if weights else None, runtime=runtime,
                    precision=precision,
                    options=RayOptions(address, actors, threads, gpus_per_actor, batch_size),
                    progress=_stage_progress(bar),
                )
            elif runner != "local":
                raise ValueError(f"unknown runner {runner!r}; choose local or ray")
            else:
                out = extract_dataset(
                    dataset,
                    store,
                    backbones,
                    audio,
                    image_weights={backbones[0]: weights} if weights else None,
                    runtime=runtime,
                    threads=threads,
                    batch_size=batch_size,
                    precision=precision,
                    progress=_stage_progress(bar),
                )
    except (DataError, ValueError, KeyError, FileNotFoundError, RuntimeError) as err:
        fail(str(err))
        return
    except KeyboardInterrupt:
        fail(INTERRUPTED, code=130)
        return
    shapes = out.shapes if runner == "ray" else {
        f"audio:{audio}": out.audio.shape[1:],
        **{f"image:{b}": v.shape[1:] for b, v in out.images.items()},
    }
    table = Table(title=f"features for {len(dataset)} items, cache {escape(str(store.root))}")
    for col in ("features", "shape", "computed", "reused", "skipped", "seconds"):
        table.add_column(col, justify="right" if col != "features" else "left")
    for name, row in out.extraction.items():
        table.add_row(
            escape(name),
            "x".join(str(s) for s in shapes[name]),
            str(row["computed"]),
            str(row["reused"]),
            str(row["skipped"]),
            f"{row['seconds']:.1f}",
        )
    console.print(table)
    for s in dataset.skipped + out.skipped:
        console.print(f"[yellow]skipped[/yellow] {escape(s.path)}: {escape(s.reason)}")


def _stage_progress(bar: Progress):
    """Adapter from the library's (stage, done, total) callback to one rich task per stage."""
    import time

    tasks: dict[str, tuple[int, float]] = {}

    def update(stage: str, done: int, total: int) -> None:
        training = stage.startswith("training")
        key = "training" if training else stage
        if key not in tasks:
            tasks[key] = (bar.add_task(escape(stage), total=total, rate=""), time.perf_counter())
        task, start = tasks[key]
        rate = done / max(time.perf_counter() - start, 1e-9)
        bar.update(
            task,
            completed=done,
            total=total,
            description=escape(stage),
            rate="" if training else f"{rate:,.1f} items/s",
        )

    return update


def print_results(results, title: str) -> None:
    """Comparison table of evaluation results (best first)."""
    from .evaluation import comparison_table

    print_table(comparison_table(results), title)


def print_table(table, title: str) -> None:
    """The comparison as a rich table (report.md/html carry every column).

    On terminals narrower than 110 columns, macro precision/recall are left out and headers
    shortened so that run names stay readable; the caption says so.
    """
    wide = console.width >= 110
    headers = (
        ["accuracy", "95% CI", "macro P", "macro R", "macro F1", "log-loss", "val acc"]
        if wide
        else ["acc", "95% CI", "F1", "logloss", "val"]
    )
    caption = (
        None
        if wide
        else ("acc: test accuracy, F1: macro F1, val: validation accuracy; macro P/R in report.md")
    )
    out = Table(title=title, caption=caption, pad_edge=False)
    out.add_column("name", overflow="fold", min_width=20)
    for c in headers:
        out.add_column(c, justify="right", no_wrap=True)
    for row in table.itertuples(index=False):
        ci = (
            ""
            if row.ci_low is None or row.ci_low != row.ci_low
            else (f"{row.ci_low:.3f}-{row.ci_high:.3f}")
        )
        val = getattr(row, "val_accuracy", None)
        pr = [f"{row.macro_precision:.3f}", f"{row.macro_recall:.3f}"] if wide else []
        out.add_row(
            escape(row.name),
            f"{row.accuracy:.3f}",
            ci,
            *pr,
            f"{row.macro_f1:.3f}",
            f"{row.log_loss:.3f}",
            "" if val is None or val != val else f"{val:.3f}",
        )
    console.print(out)


@app.command("run")
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
    cache: Annotated[Path | None, typer.Option(metavar="DIR", help="Feature cache folder.")] = None,
    threads: Annotated[
        int | None,
        typer.Option(metavar="N", min=1,
                     help="CPU threads for every stage (default: the cores this process may "
                          "use); lower it on a shared machine."),
    ] = None,
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
) -> None:
    """Run the comparison grid: image-only, audio-only, early, late and hybrid fusion."""
    from .config import ConfigError, load_config, with_overrides
    from .data import SplitError
    from .experiment import NoUsableData, run_experiment
    from .features.backbones import WeightsLoadError

    try:
        cfg = load_config(config)
        backbones = image_backbone or cfg.features.image_backbones
        if weights is not None and len(backbones) != 1:
            fail("--weights needs exactly one --image-backbone")
        cfg = with_overrides(
            cfg,
            **{
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
            },
        )
    except ConfigError as err:
        fail(str(err))
        return
    try:
        if cfg.data.path is None:  # say which data before the long work starts
            from .experiment import resolve_data

            _, note = resolve_data(cfg)
            err_console.print(f"[yellow]no data configured:[/yellow] {escape(note)}")
            err_console.print("(see `scenefusion data download` for the reference data)")
        with progress_bar() as bar:
            out = run_experiment(cfg, progress=_stage_progress(bar))
    except NoUsableData as err:
        fail(str(err), code=2)
        return
    except (
        DataError,
        SplitError,
        ValueError,
        KeyError,
        FileNotFoundError,
        WeightsLoadError,
    ) as err:
        fail(str(err))
        return
    except KeyboardInterrupt:
        fail(RUN_INTERRUPTED, code=130)
        return
    print_results(out.results, f"test split ({out.results[0].n_test} items)")
    for note in out.notes:
        console.print(f"[dim]- {escape(note)}[/dim]")
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in out.timings.items())
    console.print(f"time: {stages}")
    console.print(
        f"run folder: [bold]{escape(str(out.run_dir))}[/bold] (report.html, report.md, "
        f"metrics.json, plots/, best/)"
    )


@app.command("predict")
def predict(
    model: Annotated[
        Path, typer.Option(metavar="DIR", help="A saved bundle: RUN_DIR/best (or RUN_DIR).")
    ],
    image: Annotated[Path | None, typer.Option(metavar="FILE", help="One image.")] = None,
    audio: Annotated[
        Path | None, typer.Option(metavar="FILE", help="The audio recorded with it.")
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="A folder of pairs (matched by file name) or a CSV with image/audio columns.",
        ),
    ] = None,
    video: Annotated[
        Path | None, typer.Option(metavar="FILE", help="A video: classified second by second.")
    ] = None,
    out: Annotated[
        Path, typer.Option(metavar="FILE", help="CSV written for --pairs / --video.")
    ] = Path("predictions.csv"),
    top_k: Annotated[int, typer.Option(min=1, metavar="K")] = 3,
    smooth: Annotated[
        int,
        typer.Option(min=1, metavar="SECONDS",
                     help="--video: average each second's probabilities over this many "
                          "seconds around it (1 = off), so one odd second does not flip it."),
    ] = 1,
    allow_outside_paths: AllowOutsideOpt = False,
) -> None:
    """Classify one image/audio pair (prints top-k), many (--pairs), or a video (--video)."""
    from .files import ensure_writable_file
    from .predict import load_bundle, predict_pairs, predict_video, read_pairs, video_verdict

    if pairs is None and video is None and image is None and audio is None:
        fail("give --image and/or --audio, --pairs DIR|CSV, or --video FILE")
    try:
        if pairs is not None or video is not None:  # before any work that fills it
            ensure_writable_file(out, "--out file")
        bundle = load_bundle(model)
        if video is not None:
            frame = predict_video(bundle, video, top_k=top_k, with_probabilities=True,
                                  smooth=smooth)
        else:
            images, audios = (read_pairs(pairs, allow_outside=allow_outside_paths)
                              if pairs is not None else ([image], [audio]))
            frame = predict_pairs(bundle, images, audios, top_k=top_k)
    except (DataError, ValueError, FileNotFoundError) as err:
        fail(str(err))
        return
    if bundle.provenance_warning():
        err_console.print(f"[yellow]warning:[/yellow] {escape(bundle.provenance_warning())}")
    if video is not None:
        frame.drop(columns=["probabilities"]).to_csv(out, index=False)
        try:
            best, _, counts = video_verdict(frame)
        except ValueError as err:
            fail(str(err), code=2)
            return
        smoothed = f", smoothed over {smooth} s" if smooth > 1 else ""
        console.print(
            f"[bold]{escape(str(best))}[/bold] in {counts[best]} of "
            f"{len(frame)} seconds ({escape(bundle.info['name'])}{smoothed}); per second -> {out}"
        )
        for label, n in counts.items():
            if label != best:
                console.print(f"  {escape(str(label)):<20} {n} s")
        return
    if pairs is not None:
        frame.to_csv(out, index=False)
        n_err = int((frame["error"] != "").sum())
        console.print(f"{len(frame) - n_err} classified, {n_err} with errors -> {escape(str(out))}")
        for row in frame[frame["error"] != ""].itertuples():
            console.print(f"[yellow]error[/yellow] {escape(row.error)}")
        n_fallback = int(frame["warning"].str.contains(r"(?:^|; )used ", regex=True).sum())
        if n_fallback:
            console.print(f"{n_fallback} pair(s) with one usable modality were classified by a "
                          "single-modality model of the same run (see the warning column)")
        if n_err == len(frame):  # scripts must not read "nothing classified" as success
            fail(f"no pair could be classified (errors in {out})", code=2)
        return
    row = frame.iloc[0]
    if row["error"]:
        fail(row["error"])
    if row["warning"]:
        err_console.print(f"[yellow]note:[/yellow] {escape(row['warning'])}")
    console.print(
        f"[bold]{escape(row['predicted'])}[/bold]  ({escape(row['model'])}, "
        f"used: {row['modalities']})"
    )
    for part in row["top_k"].split("; "):
        label, p = part.rsplit(" ", 1)
        console.print(f"  {escape(label):<20} {float(p):.3f}")


@data_app.command("download")
def data_download(
    dest: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Copy the data set here.")
    ] = None,
) -> None:
    """Fetch the reference data set from Kaggle with kagglehub (needs network access)."""
    from .data.download import DownloadError, download_reference

    try:
        root = download_reference(dest)
    except DownloadError as err:
        fail(str(err))
        return
    console.print(
        f"reference data set ready at [bold]{escape(str(root))}[/bold]; next: "
        f"scenefusion run --data {escape(str(root))}"
    )


@data_app.command("from-video")
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
    from .data.video import planned_pairs, refuse_clashes, video_to_pairs
    from .files import check_folder_name

    try:
        check_folder_name(label, "--label")
    except ValueError as err:
        fail(str(err))
        return
    readable, planned = [], []
    for path in videos:  # every clash is named before the first file is written
        try:
            planned += planned_pairs(path, out, label)
            readable.append(path)
        except DataError as err:
            err_console.print(f"[yellow]skipped[/yellow] {escape(str(err))}")
    try:
        refuse_clashes(planned)
    except DataError as err:
        fail(str(err))
        return
    total = 0
    for path in readable:
        try:
            written = video_to_pairs(path, out, label, audio_seconds=audio_seconds)
        except DataError as err:
            err_console.print(f"[yellow]skipped[/yellow] {escape(str(err))}")
            continue
        total += len(written)
        console.print(f"{escape(str(path))}: {len(written)} pairs")
    if total == 0:
        fail("no pairs written", code=2)
    console.print(escape(f"{total} pairs in {out / label}; next: scenefusion data inspect {out}"))


@data_app.command("demo")
def data_demo(
    dest: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to create.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Add the demo to a non-empty folder (never overwrites a "
                     "file)."),
    ] = False,
) -> None:
    """Write the SYNTHETIC demo pairs folder (for trying the tool; not real scenes)."""
    from .data.synthetic import make_demo

    try:
        make_demo(dest, force=force)
    except (DataError, OSError) as err:
        fail(str(err))
        return
    console.print(escape(f"synthetic demo data written to {dest}"))


@app.command("evaluate")
def evaluate_run(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run folder written by `scenefusion run`.")
    ],
) -> None:
    """Re-render a saved run's reports, plots and table without retraining."""
    from .experiment import rerender_reports

    try:
        results = rerender_reports(run_dir)
    except (FileNotFoundError, ValueError, KeyError) as err:
        fail(str(err))
        return
    print_results(results, f"{run_dir} ({results[0].n_test} test items)")
    console.print(f"reports re-rendered in [bold]{escape(str(run_dir))}[/bold]")


@app.command("list")
def list_components() -> None:
    """Every id a config or option accepts, with what it is: backbones, audio features,
    models (and which input each takes), fusion methods."""
    from .features.audio import AUDIO_FEATURES
    from .features.backbones import IMAGE_BACKBONES
    from .models import FUSION, MODELS, capabilities

    table = Table(title="scenefusion ids")
    for col in ("kind", "id", "what it is"):
        table.add_column(col, overflow="fold")
    for e in IMAGE_BACKBONES.entries():
        table.add_row(
            "image backbone",
            e.id,
            escape(f"{e.description} ({e.obj.embedding_dim}-d, {e.obj.input_size}px)"),
        )
    for e in AUDIO_FEATURES.entries():
        shape = "x".join(str(n) for n in e.obj.shape)
        table.add_row("audio feature", e.id, escape(f"{e.description} ({shape} per item)"))
    for e in MODELS.entries():
        table.add_row(
            "model", e.id, escape(f"{e.description} [input: {capabilities(e.obj).summary()}]")
        )
    for e in FUSION.entries():
        table.add_row("fusion", e.id, escape(e.description))
    console.print(table)


@app.command("serve")
def serve(
    model: Annotated[
        Path, typer.Argument(metavar="RUN_DIR/best", help="A saved bundle (or its run folder).")
    ],
    host: Annotated[
        str, typer.Option(metavar="ADDR", help="Address to bind; 0.0.0.0 exposes it to the "
                          "network (there is no authentication).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", min=1, max=65535)] = 8000,
    max_upload_mb: Annotated[
        float, typer.Option(metavar="MB", min=0.01, help="Largest request body accepted (413).")
    ] = 50.0,
    max_video_seconds: Annotated[
        float, typer.Option(metavar="SECONDS", min=1, help="Longest video accepted (422).")
    ] = 120.0,
) -> None:
    """A web page and a JSON API over a saved model (POST /predict, GET /model, /docs)."""
    try:
        import uvicorn

        from .serve import create_app
    except ImportError as err:
        fail(f"serve needs the [serve] extra: pip install 'scenefusion[serve]' ({err})")
        return
    try:
        api = create_app(model, max_upload_mb=max_upload_mb, max_video_seconds=max_video_seconds)
    except (DataError, ValueError, FileNotFoundError) as err:
        fail(str(err))
        return
    warning = api.state.bundle.provenance_warning()
    if warning:
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    console.print(f"serving {escape(str(model))} at [bold]http://{host}:{port}/[/bold] "
                  f"(API docs: /docs); Ctrl+C stops")
    uvicorn.run(api, host=host, port=port, log_level="warning")
