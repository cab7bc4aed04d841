"""`scenefusion predict | serve`: answers from a saved model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import AllowOutsideOpt, DeviceOpt, app, command, console, fail, warn
from .text import shown


@command(app, "predict")
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
    device: DeviceOpt = "auto",
) -> None:
    """Classify one image/audio pair (prints top-k), many (--pairs), or a video (--video)."""
    from ..files import ensure_writable_file
    from ..predict import load_bundle

    if pairs is None and video is None and image is None and audio is None:
        fail("give --image and/or --audio, --pairs DIR|CSV, or --video FILE")
    if pairs is not None or video is not None:  # before any work that fills it
        ensure_writable_file(out, "--out file")
    bundle = load_bundle(model, device)
    if video is not None:
        _predict_video(bundle, video, out, top_k, smooth)
    elif pairs is not None:
        _predict_many(bundle, pairs, out, top_k, allow_outside_paths)
    else:
        _predict_one(bundle, image, audio, top_k)


def _provenance(bundle) -> None:
    if bundle.provenance_warning():
        warn(bundle.provenance_warning())


def _predict_video(bundle, video: Path, out: Path, top_k: int, smooth: int) -> None:
    from ..timeline import decisive_seconds, predict_video, timeline_frame, video_verdict

    rows = predict_video(bundle, video, top_k=top_k, smooth=smooth)
    _provenance(bundle)
    timeline_frame(rows).to_csv(out, index=False)
    best, _, counts = video_verdict(rows)
    smoothed = f", smoothed over {smooth} s" if smooth > 1 else ""
    console.print(
        f"[bold]{shown(str(best))}[/bold] in {counts[best]} of "
        f"{len(rows)} seconds ({shown(bundle.info['name'])}{smoothed}); per second -> {shown(out)}"
    )
    for label, n in counts.items():
        if label != best:
            console.print(f"  {shown(str(label)):<20} {n} s")
    why = decisive_seconds(rows, best)
    for side, seconds in why.items():
        if seconds:
            listed = ", ".join(f"{s} s ({p:.2f})" for s, p in seconds)
            console.print(f"  seconds {side} {shown(str(best))}: {listed}")


def _predict_many(bundle, pairs: Path, out: Path, top_k: int, allow_outside: bool) -> None:
    from ..predict import predict_rows, predictions_frame, read_pairs

    images, audios = read_pairs(pairs, allow_outside=allow_outside)
    rows = predict_rows(bundle, images, audios, top_k=top_k)
    _provenance(bundle)
    predictions_frame(rows).to_csv(out, index=False)
    failed = [r for r in rows if r.error]
    console.print(f"{len(rows) - len(failed)} classified, {len(failed)} with errors -> "
                  f"{shown(str(out))}")
    for row in failed:
        console.print(f"[yellow]error[/yellow] {shown(row.error)}")
    n_fallback = sum(1 for r in rows if r.fallback)
    if n_fallback:
        console.print(f"{n_fallback} pair(s) with one usable modality were classified by a "
                      "single-modality model of the same run (see the warning column)")
    if len(failed) == len(rows):  # scripts must not read "nothing classified" as success
        fail(f"no pair could be classified (errors in {out})", code=2)


def _predict_one(bundle, image: Path | None, audio: Path | None, top_k: int) -> None:
    from ..predict import predict_rows

    row = predict_rows(bundle, [image], [audio], top_k=top_k)[0]
    _provenance(bundle)
    if row.error:
        fail(row.error)
    if row.warnings:
        warn("; ".join(row.warnings), "note")
    console.print(f"[bold]{shown(row.predicted)}[/bold]  ({shown(row.model)}, "
                  f"used: {'+'.join(row.modalities)})")
    for label, p in row.top_k:
        console.print(f"  {shown(label):<20} {p:.3f}")
    for member, share in row.members.items():
        console.print(f"  {shown(member)} pushed {share['contribution']:.3f} (weight "
                      f"{share['weight']:.2f} x its {share['probability']:.3f})")
    if audio is not None:
        _decisive_audio(bundle, audio, row.predicted)


def _decisive_audio(bundle, audio: Path, label: str) -> None:
    """A sound longer than the model's window: the windows most for and against ``label``."""
    from ..timeline import decisive_seconds, predict_audio_windows

    windows, seconds = predict_audio_windows(bundle, audio)
    if not any(not w.error for w in windows):
        return
    for side, found in decisive_seconds(windows, label, seconds_per_row=seconds).items():
        if found:
            listed = ", ".join(f"{t:g}-{t + seconds:g} s ({p:.2f})" for t, p in found)
            console.print(f"  sound {side} {shown(label)}: {listed}")


@command(app, "serve")
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
        float, typer.Option(metavar="SECONDS", min=1, help="Longest video accepted (422), "
                            "by decoded length.")
    ] = 120.0,
    max_audio_seconds: Annotated[
        float, typer.Option(metavar="SECONDS", min=1, help="Longest sound accepted (422), by "
                            "decoded length.")
    ] = 30.0,
    device: DeviceOpt = "auto",
) -> None:
    """A web page and a JSON API over a saved model (POST /predict, GET /model, /docs)."""
    try:
        import uvicorn

        from ..serve import create_app
    except ImportError as err:
        fail(f"serve needs the [serve] extra: pip install 'scenefusion[serve]' ({err})")
    api = create_app(model, max_upload_mb=max_upload_mb, max_video_seconds=max_video_seconds,
                     device=device, max_audio_seconds=max_audio_seconds)
    if api.state.bundle.provenance_warning():
        warn(api.state.bundle.provenance_warning())
    console.print(f"serving {shown(str(model))} at [bold]http://{host}:{port}/[/bold] "
                  f"(API docs: /docs); Ctrl+C stops")
    uvicorn.run(api, host=host, port=port, log_level="warning")
