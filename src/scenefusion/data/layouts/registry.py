"""Data layouts on one :class:`~scenefusion.registry.Registry`, like every other pluggable part.

A layout is a loader ``(path, LoadRequest) -> Dataset`` plus, for ``auto`` to find it, a test
of what is on disk (``detect(Probe) -> bool``) and a priority. A module that defines one
registers it there with :func:`register_layout`; configs (``data.layout``), the CLI's
``--layout`` and ``scenefusion list`` read :data:`LAYOUTS`, so nothing else needs an edit.
Every loader takes the same :class:`LoadRequest`: nobody inspects a loader's signature.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from ...errors import InvalidValue
from ...registry import Registry
from ..items import Dataset
from ..validate import DataError
from ..video_folder import VideoOptions

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

AUTO = "auto"
#: what a progress bar says while a layout loads, unless the layout names its own stage
CHECKING = "checking files"
#: priorities ``auto`` tries layouts in (highest first; ties in registration order): a layout
#: with a marker file of its own, then the usual specific layouts, then the catch-alls
MARKED, SPECIFIC, CATCH_ALL = 20, 10, 0


@dataclass(frozen=True)
class LoadRequest:
    """What every loader is asked: the class list to keep (None: every label found), whether
    to decode each file (else only find it), a ``progress(done, total)`` callback, whether
    paths may leave the data folder, and how videos are cut (layouts of videos only)."""

    classes: list[str] | None = None
    check_files: bool = True
    progress: Progress | None = None
    allow_outside: bool = False
    video: VideoOptions | None = None


class Probe:
    """What ``auto`` knows about a path, read once and shared by every layout's ``detect``:
    whether it is a folder, a CSV file, and (for a CSV) its column names."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @cached_property
    def is_dir(self) -> bool:
        return self.path.is_dir()

    @cached_property
    def is_csv(self) -> bool:
        return self.path.is_file() and self.path.suffix.lower() == ".csv"

    @cached_property
    def columns(self) -> list[str] | None:
        """A CSV's stripped column names; None when it is not a CSV or cannot be read (the
        manifest loader then names the problem)."""
        if not self.is_csv:
            return None
        try:
            return [str(c).strip() for c in pd.read_csv(self.path, nrows=0).columns]
        except (OSError, ValueError, UnicodeDecodeError):
            return None


Loader = Callable[[Path, LoadRequest], Dataset]
Detector = Callable[[Probe], bool]


@dataclass(frozen=True)
class Layout:
    """A registered layout: its loader, how ``auto`` recognises it (None: never picked by
    ``auto``), where ``auto`` tries it, and what its ``progress`` counts."""

    load: Loader
    detect: Detector | None = None
    priority: int = SPECIFIC
    stage: str = CHECKING


LAYOUTS: Registry[Layout] = Registry("data layout")


def register_layout(id: str, *, description: str, detect: Detector | None = None,
                    priority: int = SPECIFIC, stage: str = CHECKING
                    ) -> Callable[[Loader], Loader]:
    """Function decorator: register a loader ``(path, LoadRequest) -> Dataset`` as layout
    ``id``. ``detect`` lets ``auto`` pick it (tried by ``priority``, highest first);
    ``stage`` names what its ``progress`` counts (e.g. "cutting videos")."""
    if id != id.strip().lower() or not id:
        raise ValueError(f"data layout id {id!r}: use lower case without surrounding spaces "
                         "(users' layout names are matched that way)")

    def add(loader: Loader) -> Loader:
        LAYOUTS.register(id, Layout(loader, detect, priority, stage), description=description)
        return loader

    return add


def layouts() -> tuple[str, ...]:
    """Every layout name a user may give, 'auto' first."""
    return tuple(LAYOUTS)


def check_layout(layout: str) -> str:
    """The layout name normalised ('Pairs ' -> 'pairs'); an unknown one names the valid ones."""
    name = str(layout).strip().lower()
    if name not in LAYOUTS:
        raise InvalidValue(f"unknown layout {layout!r}; valid layouts: {', '.join(layouts())}")
    return name


def detect_layout(path: Path) -> str:
    """Which layout fits `path`: the first registered one whose ``detect`` accepts it, by
    priority ('reference', then e.g. 'videos' / 'video-manifest', then 'manifest' / 'pairs')."""
    probe = Probe(path)
    entries = [e for e in LAYOUTS.entries() if e.obj.detect is not None]
    for entry in sorted(entries, key=lambda e: -e.obj.priority):  # stable: ties keep order
        if entry.obj.detect(probe):
            return entry.id
    raise DataError(Path(path), "not found (expected a data folder or a manifest .csv)")


def loading_stage(path: Path, layout: str = AUTO) -> str:
    """What a progress bar should say while ``load_dataset(path, layout)`` runs."""
    chosen = check_layout(layout)
    return LAYOUTS.get(detect_layout(path) if chosen == AUTO else chosen).stage


def load_dataset(
    path: Path,
    layout: str = AUTO,
    classes: list[str] | None = None,
    check_files: bool = True,
    progress: Progress | None = None,
    allow_outside: bool = False,
    options: VideoOptions | None = None,
) -> Dataset:
    """Load any registered layout; `layout='auto'` picks it from what is on disk.

    `allow_outside=True` accepts manifest / reference paths that leave the data folder;
    ``options`` say how a layout of videos cuts them (the others ignore them).
    """
    request = LoadRequest(classes, check_files, progress, allow_outside, options)
    return LAYOUTS.get(check_layout(layout)).load(Path(path), request)


def keyword_loader(layout: str) -> Callable[..., Dataset]:
    """One layout's loader in the Python API's spelling, ``load(path, classes=None,
    check_files=True, progress=None, allow_outside=False, options=None)``: what
    ``load_pairs_folder``, ``load_manifest``, ... are."""

    def load(path: Path, classes: list[str] | None = None, check_files: bool = True,
             progress: Progress | None = None, allow_outside: bool = False,
             options: VideoOptions | None = None) -> Dataset:
        return load_dataset(path, layout, classes, check_files, progress, allow_outside, options)

    load.__doc__ = f"The {layout} layout with keyword options (the Python API's spelling)."
    return load


@register_layout(AUTO, description="the layout found from what is on disk: the reference "
                 "set's dataset.csv, a video folder or video manifest, else a manifest CSV or a "
                 "folder of pairs")
def load_auto(path: Path, request: LoadRequest) -> Dataset:
    """Whichever registered layout :func:`detect_layout` finds for ``path``."""
    return LAYOUTS.get(detect_layout(path)).load(path, request)
