"""The rules every data layout shares, in one place, so a data set means the same thing
whatever its layout (the layouts themselves are in :mod:`scenefusion.data.layouts`).

A layout turns what is on disk into :class:`Row` s (an item or a skip each) and hands them to
:func:`finish_rows`: labels are stripped of surrounding spaces (:func:`label_of`); a row
repeated exactly is kept once; a file listed under two labels is dropped everywhere (which
label is right is unknown); a file in two groups is kept in the first only (else it could sit
on both sides of a split); then the class list and the file checks. Paths that leave the data
folder are refused unless the user allows them (:func:`leaving_path`).
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .grouping import image_only_groups
from .items import Dataset, Item, Skip
from .validate import DataError, check_audio, check_image

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

#: How many offending row numbers an error message lists before summarising the rest.
SHOW_ROWS = 5
OUTSIDE_HINT = "pass allow_outside=True / --allow-outside-paths to accept"
#: Written by scenefusion.data.synthetic into every generated data set; not a data file.
SYNTHETIC_MARKER = "SYNTHETIC.txt"

_FRAME_SUFFIX = re.compile(r"^(.*?)[-_ .]*\d+$")


def derive_group(stem: str) -> str:
    """Source-video guess from a frame's file name: the stem without its trailing frame number."""
    match = _FRAME_SUFFIX.match(stem)
    return match.group(1) if match and match.group(1) else stem


@dataclass
class Row:
    """One candidate input: the path a skip names, how other rows' reasons cite it (e.g.
    "row 3"), and its outcome (an item, or a skip once a rule turns it into one)."""

    path: str
    ref: str
    entry: Item | Skip


def row_of(path: Path | str, entry: Item | Skip, ref: str | None = None) -> Row:
    """A :class:`Row` named by ``path`` and cited by ``ref`` (default: the path)."""
    return Row(str(path), ref or str(path), entry)


def cell(value: object) -> str:
    """A CSV cell as stripped text; missing cells become ''."""
    return "" if value is None or pd.isna(value) else str(value).strip()


def label_of(raw: object, stripped: set[str]) -> str:
    """The label without surrounding spaces ('BEACH ' is 'BEACH' in every layout); a label
    that needed it is added to ``stripped`` for :func:`warn_stripped`."""
    label = cell(raw)
    if label and label != str(raw):
        stripped.add(str(raw))
    return label


def warn_stripped(stripped: set[str], where: Path) -> None:
    """One warning naming the labels :func:`label_of` stripped while reading ``where``."""
    if stripped:
        shown = ", ".join(repr(s) for s in sorted(stripped)[:SHOW_ROWS])
        log.warning("%s: label(s) with surrounding spaces were stripped: %s", where, shown)


def list_refs(refs: list[str]) -> str:
    """The first few row references, then how many more."""
    more = f" and {len(refs) - SHOW_ROWS} more" if len(refs) > SHOW_ROWS else ""
    return ", ".join(refs[:SHOW_ROWS]) + more


def identities(rows: list[Row]) -> dict[Path, str]:
    """One key per file on disk, however a row spells its path (./a.png, dir/../a.png, a link);
    computed once per path, since resolving is the slow part on large data sets."""
    paths = {p for row in rows if isinstance(row.entry, Item) for p in _files(row.entry)}
    return {p: os.path.normcase(os.path.realpath(p)) for p in paths}


def _files(item: Item) -> list[Path]:
    return [p for p in (item.image, item.audio) if p is not None]


def _outside(path: Path, base: Path) -> bool:
    """True when `path` leaves `base`, judged by its spelling and by where it really is
    (a symlink the user placed inside the folder is theirs to make; '../' in a row is not)."""
    base_abs = Path(os.path.normpath(base.absolute()))
    lexical = Path(os.path.normpath(base_abs / path))
    if lexical.is_relative_to(base_abs):
        return False
    return not (base_abs / path).resolve().is_relative_to(base_abs.resolve())


def leaving_path(values: dict[str, str], base: Path, folder: str) -> str | None:
    """A skip reason when any of the row's paths leaves `base`, else None."""
    for kind, value in values.items():
        if _outside(Path(value), base):
            return f"{kind} path {value!r} leaves the {folder} {base}; {OUTSIDE_HINT}"
    return None


def drop_exact_duplicates(rows: list[Row], identity: dict[Path, str]) -> list[Row]:
    """The same image + audio + label again: keep the first, name it in the others' skips."""
    first: dict[tuple, Row] = {}
    out = []
    for row in rows:
        item = row.entry
        if isinstance(item, Item):
            key = (*(identity[p] if p else None for p in (item.image, item.audio)), item.label)
            if key in first:
                row = Row(row.path, row.ref, Skip(row.path, f"duplicate of {first[key].ref}"))
            else:
                first[key] = row
        out.append(row)
    return out


def drop_label_conflicts(rows: list[Row], identity: dict[Path, str]) -> list[Row]:
    """A source listed under two labels: every row using it becomes a skip, since which label
    is right is unknown. ``identity`` maps each item's file to what makes two files one source
    (its real path, or the content hash of a video)."""
    labels: dict[str, set[str]] = defaultdict(set)
    refs: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if isinstance(row.entry, Item):
            for path in _files(row.entry):
                labels[identity[path]].add(row.entry.label)
                refs[identity[path]].append(row.ref)
    out = []
    for row in rows:
        if isinstance(row.entry, Item):
            for path in _files(row.entry):
                names = sorted(labels[identity[path]])
                if len(names) > 1:
                    listed = ", ".join(repr(n) for n in names[:-1]) + f" and {names[-1]!r}"
                    reason = (f"same file listed under labels {listed} ({path.name}: "
                              f"{list_refs(refs[identity[path]])}); which is right is unknown")
                    row = Row(row.path, row.ref, Skip(row.path, reason))
                    break
        out.append(row)
    return out


def drop_group_conflicts(rows: list[Row], identity: dict[Path, str]) -> list[Row]:
    """A file in two groups could land on both sides of a split: keep it in its first group."""
    first: dict[str, tuple[str, str]] = {}
    out = []
    for row in rows:
        item = row.entry
        if isinstance(item, Item):
            for path in _files(item):
                group, ref = first.setdefault(identity[path], (item.group, row.ref))
                if group != item.group:
                    reason = (f"{path.name} is also in group {group!r} ({ref}); one file in two "
                              "groups could sit on both sides of the train/test split")
                    row = Row(row.path, row.ref, Skip(row.path, reason))
                    break
        out.append(row)
    return out


def photo_groups(rows: list[Row]) -> tuple[list[Row], str]:
    """An image-only data set's rows regrouped by the photo rule of ``grouping.py``, and the
    group source that rule names."""
    items = [r.entry for r in rows if isinstance(r.entry, Item)]
    grouped, source = image_only_groups(items)
    regrouped = iter(grouped)
    return [replace(r, entry=next(regrouped)) if isinstance(r.entry, Item) else r
            for r in rows], source


def _check_item_files(item: Item, skipped: list[Skip], check_files: bool) -> bool:
    try:
        for path, check in ((item.image, check_image), (item.audio, check_audio)):
            if path is None:
                continue
            if check_files:
                check(path)
            elif not path.is_file():
                raise DataError(path, "file not found")
    except DataError as err:
        skipped.append(Skip(err.path, err.problem))
        return False
    return True


def _filter_classes(
    rows: Iterable[Row], classes: list[str] | None, skipped: list[Skip]
) -> list[Item]:
    kept = []
    for row in rows:
        entry = row.entry
        if isinstance(entry, Skip):
            skipped.append(entry)
        elif classes is not None and entry.label not in classes:
            where = entry.image or entry.audio or entry.id
            reason = f"label {entry.label!r} is not in the class list {classes}"
            skipped.append(Skip(str(where), reason))
        else:
            kept.append(entry)
    return kept


def finish_rows(
    rows: list[Row],
    classes: list[str] | None,
    root: Path,
    layout: str,
    group_source: str,
    *,
    check_files: bool = False,
    progress: Progress | None = None,
    modalities: tuple[str, ...] = ("image", "audio"),
) -> Dataset:
    """The steps every layout ends with: duplicates and conflicts, the class list, then each
    item's files decoded (``check_files``) or only found; ``progress`` counts those checks."""
    identity = identities(rows)
    for rule in (drop_exact_duplicates, drop_label_conflicts, drop_group_conflicts):
        rows = rule(rows, identity)
    skipped: list[Skip] = []
    items = _filter_classes(rows, classes, skipped)
    usable = []
    for i, item in enumerate(items):
        if _check_item_files(item, skipped, check_files):
            usable.append(item)
        if progress:
            progress(i + 1, len(items))
    names = list(classes) if classes is not None else sorted({it.label for it in usable})
    if skipped:
        log.info("%d input(s) skipped in %s; see Dataset.skipped", len(skipped), root)
    return Dataset(usable, names, root, layout, group_source, skipped, modalities)


def read_table(path: Path, required: list[str], text: bool = True) -> pd.DataFrame:
    """Read a CSV (BOM and spaces around column names tolerated); DataError naming missing
    columns. ``text`` keeps cells as strings so '007' stays '007' and only an empty cell
    counts as missing."""
    if not path.is_file():
        raise DataError(path, "CSV file not found")
    options = {"dtype": str, "keep_default_na": False, "na_values": [""]} if text else {}
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig", **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a readable CSV ({exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        more = f" (+{len(missing) - 8} more)" if len(missing) > 8 else ""
        shown = ", ".join(missing[:8]) + more
        raise DataError(path, f"missing required column(s): {shown}")
    return frame


def uses_group_column(frame: pd.DataFrame, csv_path: Path, required: Iterable[str]) -> bool:
    """Whether a manifest's groups come from its `group` column: every usable row (all of its
    ``required`` cells filled) has one, or none does.

    A partly filled column would mix column groups with file-name groups, and one video could
    then reach both train and test; it is refused, naming the rows to fill in.
    """
    if "group" not in frame.columns:
        return False
    usable = frame[[c for c in required if c in frame]].map(cell).ne("").all(axis=1)
    filled = frame["group"].map(cell).ne("")
    if not (usable & filled).any():
        return False
    empty = [str(i + 2) for i in np.flatnonzero(usable & ~filled)]
    if empty:
        raise DataError(
            csv_path,
            f"the 'group' column is empty in row(s) {list_refs(empty)} but filled in others; "
            "fill it in every row or remove the column (mixing column groups with groups guessed "
            "from file names can put one video on both train and test)",
        )
    return True


def outside_class_folders(root: Path, what: str) -> list[Row]:
    """A skip for every file lying directly in ``root``, outside any class folder: a layout of
    class folders cannot label it, and it is listed rather than ignored in silence."""
    return [Row(str(f), str(f), Skip(str(f), f"not inside a class folder: {what} go in "
                                             "ROOT/<class>/"))
            for f in sorted(root.iterdir())
            if f.is_file() and not f.name.startswith(".") and f.name != SYNTHETIC_MARKER]
