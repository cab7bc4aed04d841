"""The typer apps, the consoles, and the one place where a library error becomes a message.

Every command is declared with :func:`command`: a :class:`~scenefusion.errors.ScenefusionError`
raised anywhere below it is printed as ``error: <message>`` and ends the process with the
error's ``exit_code``; Ctrl-C ends it with the command's own note and exit code 130. No command
catches errors itself.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..data.layouts import layouts
from ..errors import ScenefusionError
from .text import PlainFormatter, shown

app = typer.Typer(
    help="Scene classification from images and the audio recorded with them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect, generate and download data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)

INTERRUPTED = "interrupted: features computed so far are cached; the same command resumes there"


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False):
    handler = RichHandler(console=err_console, show_path=False)
    handler.setFormatter(PlainFormatter("%(message)s"))  # a logged label shows as printed
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {shown(message)}")
    raise typer.Exit(code)


def warn(message: str, label: str = "warning") -> None:
    err_console.print(f"[yellow]{label}:[/yellow] {shown(message)}")


def command(typer_app: typer.Typer, name: str, interrupted: str = INTERRUPTED
            ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command whose library errors end in one sentence, never a traceback."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def handled(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except ScenefusionError as err:
                fail(str(err), err.exit_code)
            except OSError as err:  # the disk or the OS refused (full, read-only, permission)
                where = f"{err.filename}: " if err.filename else ""
                fail(f"{where}{err.strerror or err}")
            except KeyboardInterrupt:
                fail(interrupted, 130)

        return typer_app.command(name)(handled)

    return register


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


#: a stage shorter than this shows no rate: cached items arrive all at once, and N items over a
#: few microseconds is not a speed
MIN_RATE_SECONDS = 0.5


def stage_progress(bar: Progress, lines: bool | None = None) -> Callable[[str, int, int], None]:
    """Adapter from the library's (stage, done, total) callback to one rich task per stage.

    Where the bar's console is not a terminal (a log file, CI) the bar is invisible, so each
    stage also prints a line when it starts and when it ends (``lines`` overrides the check).
    """
    lines = not bar.console.is_terminal if lines is None else lines
    tasks: dict[str, tuple[Any, float]] = {}
    ended: set[str] = set()

    def update(stage: str, done: int, total: int) -> None:
        training = stage.startswith("training")
        key = "training" if training else stage
        now = time.perf_counter()
        if key not in tasks:
            tasks[key] = (bar.add_task(shown(stage), total=total, rate=""), now)
            if lines:
                bar.console.print(f"{shown(key)}: started, {total} to do")
        task, start = tasks[key]
        elapsed = now - start
        rate = ("" if training or elapsed < MIN_RATE_SECONDS
                else f"{done / elapsed:,.1f} items/s")
        bar.update(task, completed=done, total=total, description=shown(stage), rate=rate)
        if lines and done >= total and key not in ended:
            ended.add(key)
            bar.console.print(f"{shown(key)}: done, {done} in {elapsed:.1f} s"
                              + (f" ({rate})" if rate else ""))

    return update


def or_list(names: tuple[str, ...] | list[str]) -> str:
    """'a, b or c': registry ids in help text."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


ClassesOpt = Annotated[
    str | None,
    typer.Option(metavar="LIST", help="Comma-separated class list; other labels are skipped."),
]
AllowOutsideOpt = Annotated[
    bool,
    typer.Option("--allow-outside-paths",
                 help="Accept manifest paths that leave the manifest's folder."),
]
LayoutOpt = Annotated[
    str, typer.Option(metavar="LAYOUT", help=f"Data layout: {or_list(layouts())} "
                      "(see `list`).")
]
CacheOpt = Annotated[Path | None, typer.Option(metavar="DIR", help="Feature cache folder.")]
DeviceOpt = Annotated[
    str, typer.Option(metavar="DEVICE", help="Where image backbones run: auto (a CUDA GPU when "
                      "the runtime can use one), cpu or cuda.")
]


def class_list(value: str | None) -> list[str] | None:
    return [c.strip() for c in value.split(",") if c.strip()] if value else None
