"""Loaders: a folder of pairs, a manifest CSV, and the reference data set's own layout.

Each returns a `Dataset` whose `skipped` list says which inputs were left out and why. Every
loader applies the same rules, so a data set means the same thing whatever its layout:
labels are stripped of surrounding spaces; a row repeated exactly is kept once; a file listed
under two labels is dropped everywhere (which label is right is unknown); a file in two groups
is kept in the first only (else it could sit on both sides of a split); paths that leave the
data folder are refused unless `allow_outside=True`.

Long on purpose: the loaders share those rules (dedup, label conflicts, grouping, paths), and
keeping them in one module keeps every layout applying the same ones.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InvalidValue
from .grouping import image_only_groups
from .items import Dataset, Item, Skip
from .validate import AUDIO_SUFFIXES, IMAGE_SUFFIXES, DataError, check_audio, check_image

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

REFERENCE_CSV = "dataset.csv"
REFERENCE_MFCC_COLUMNS = [f"mfcc_{i}" for i in range(1, 105)]
REFERENCE_REQUIRED = ["IMAGE", "CLASS2", *REFERENCE_MFCC_COLUMNS]
# The reference CSV stores 13 MFCCs for each of 8 windows, window after window.
REFERENCE_MFCC_SHAPE = (8, 13)
MANIFEST_REQUIRED = ["image", "audio", "label"]
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


# --- rules shared by every loader --------------------------------------------------------------

@dataclass
class _Row:
    """One candidate input: the path a skip names, how other rows' reasons cite it, its outcome."""

    path: str
    ref: str
    entry: Item | Skip


def _cell(value: object) -> str:
    """A CSV cell as stripped text; missing cells become ''."""
    return "" if value is None or pd.isna(value) else str(value).strip()


def _label(raw: object, stripped: set[str]) -> str:
    """The label without surrounding spaces ('BEACH ' is 'BEACH' in every loader)."""
    label = _cell(raw)
    if label and label != str(raw):
        stripped.add(str(raw))
    return label


def _warn_stripped(stripped: set[str], where: Path) -> None:
    if stripped:
        shown = ", ".join(repr(s) for s in sorted(stripped)[:SHOW_ROWS])
        log.warning("%s: label(s) with surrounding spaces were stripped: %s", where, shown)


def _list_refs(refs: list[str]) -> str:
    more = f" and {len(refs) - SHOW_ROWS} more" if len(refs) > SHOW_ROWS else ""
    return ", ".join(refs[:SHOW_ROWS]) + more


def _identities(rows: list[_Row]) -> dict[Path, str]:
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


def _drop_exact_duplicates(rows: list[_Row], ident: dict[Path, str]) -> list[_Row]:
    """The same image + audio + label again: keep the first, name it in the others' skips."""
    first: dict[tuple, _Row] = {}
    out = []
    for row in rows:
        item = row.entry
        if isinstance(item, Item):
            key = (*(ident[p] if p else None for p in (item.image, item.audio)), item.label)
            if key in first:
                row = _Row(row.path, row.ref, Skip(row.path, f"duplicate of {first[key].ref}"))
            else:
                first[key] = row
        out.append(row)
    return out


def _drop_label_conflicts(rows: list[_Row], ident: dict[Path, str]) -> list[_Row]:
    """A file listed under two labels: drop every row using it, since which is right is unknown."""
    labels: dict[str, set[str]] = defaultdict(set)
    refs: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if isinstance(row.entry, Item):
            for path in _files(row.entry):
                labels[ident[path]].add(row.entry.label)
                refs[ident[path]].append(row.ref)
    out = []
    for row in rows:
        if isinstance(row.entry, Item):
            for path in _files(row.entry):
                names = sorted(labels[ident[path]])
                if len(names) > 1:
                    listed = ", ".join(repr(n) for n in names[:-1]) + f" and {names[-1]!r}"
                    reason = (f"same file listed under labels {listed} ({path.name}: "
                              f"{_list_refs(refs[ident[path]])}); which is right is unknown")
                    row = _Row(row.path, row.ref, Skip(row.path, reason))
                    break
        out.append(row)
    return out


def _drop_group_conflicts(rows: list[_Row], ident: dict[Path, str]) -> list[_Row]:
    """A file in two groups could land on both sides of a split: keep it in its first group."""
    first: dict[str, tuple[str, str]] = {}
    out = []
    for row in rows:
        item = row.entry
        if isinstance(item, Item):
            for path in _files(item):
                group, ref = first.setdefault(ident[path], (item.group, row.ref))
                if group != item.group:
                    reason = (f"{path.name} is also in group {group!r} ({ref}); one file in two "
                              "groups could sit on both sides of the train/test split")
                    row = _Row(row.path, row.ref, Skip(row.path, reason))
                    break
        out.append(row)
    return out


def _photo_groups(rows: list[_Row]) -> tuple[list[_Row], str]:
    """An image-only data set's rows regrouped by the photo rule of ``grouping.py``."""
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
    rows: Iterable[_Row], classes: list[str] | None, skipped: list[Skip]
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


def _finish(
    rows: list[_Row],
    classes: list[str] | None,
    root: Path,
    layout: str,
    group_source: str,
    check_files: bool,
    progress: Progress | None,
    modalities: tuple[str, ...] = ("image", "audio"),
) -> Dataset:
    """The steps every loader shares: duplicates and conflicts, class list, file checks."""
    ident = _identities(rows)
    for rule in (_drop_exact_duplicates, _drop_label_conflicts, _drop_group_conflicts):
        rows = rule(rows, ident)
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


# --- folder of pairs ---------------------------------------------------------------------------

def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "audio" if suffix in AUDIO_SUFFIXES else None


def _nested_folder(folder: Path, class_dir: Path) -> _Row:
    """A folder inside a class folder: its files are not read (classes are one level deep; a
    class name holding '/' becomes such a folder), so it is reported instead of vanishing."""
    n = sum(1 for p in folder.rglob("*") if p.is_file())
    return _Row(str(folder), str(folder), Skip(str(folder), (
        f"a folder inside class folder {class_dir.name!r} ({n} file(s) not read): pairs must "
        f"sit directly in ROOT/<class>/, and a class name cannot hold '/'")))


def _pair_row(class_dir: Path, label: str, stem: str, found: dict[str, list[Path]],
              modalities: tuple[str, ...] = ("image", "audio")) -> _Row:
    """One stem's files as an item, or a skip saying what is missing or ambiguous."""
    images, audios = found.get("image", []), found.get("audio", [])
    where = str((images or audios)[0])
    what = "pair" if len(modalities) == 2 else "item"
    problems = [
        f"two {kind} for one {what}: {' and '.join(p.name for p in files)}; remove or rename one"
        for kind, files in (("images", images), ("audio files", audios)) if len(files) > 1
    ]
    if not images and "image" in modalities:
        problems.append("no image with the same name")
    if not audios and "audio" in modalities:
        problems.append("no audio with the same name")
    if problems:
        return _Row(where, where, Skip(where, "; ".join(problems)))
    item = Item(
        id=f"{class_dir.name}/{stem}",
        label=label,
        group=f"{label}/{derive_group(stem)}",
        image=images[0] if images else None,
        audio=audios[0] if audios else None,
    )
    return _Row(where, where, item)


def load_pairs_folder(
    root: Path,
    classes: list[str] | None = None,
    check_files: bool = True,
    progress: Progress | None = None,
    allow_outside: bool = False,
) -> Dataset:
    """Load `ROOT/<class>/<name>.{jpg,png}` beside `<name>.{wav,flac,ogg}`; a folder with only
    sounds (or only images) is a one-modality data set of one item per file.

    The group (source video) is derived from the file-name stem without its frame number,
    because a folder of pairs carries no other record of it. Two images (or two sounds) with
    one stem are reported, not resolved by a guess. `allow_outside` is accepted so that every
    loader takes the same options; a pairs folder never names paths outside itself.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "data folder not found")
    rows: list[_Row] = []
    stripped: set[str] = set()
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(root, "no class folders found (expected ROOT/<class>/<name>.jpg + .wav)")
    rows += outside_class_folders(root, "pairs")
    stems: list[tuple[Path, str, dict[str, dict[str, list[Path]]]]] = []
    for class_dir in class_dirs:
        label = _label(class_dir.name, stripped)
        by_stem: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
        for f in sorted(p for p in class_dir.iterdir() if not p.name.startswith(".")):
            if f.is_dir():
                rows.append(_nested_folder(f, class_dir))
            elif (kind := _kind(f)) is not None:
                by_stem[f.stem][kind].append(f)
            else:
                rows.append(_Row(str(f), str(f), Skip(str(f), f"not an image or audio file "
                                                               f"({f.suffix or 'no suffix'})")))
        if not label:
            rows += [_Row(str(class_dir), str(class_dir), Skip(str(class_dir), "empty label"))]
            continue
        stems.append((class_dir, label, by_stem))
    kinds = {kind for _, _, by_stem in stems for found in by_stem.values() for kind in found}
    # a folder with no image (or no sound) at all is a one-modality data set; with both, every
    # item is a pair and a file without its partner is skipped
    modalities = tuple(m for m in ("image", "audio") if m in kinds) or ("image", "audio")
    if len(modalities) == 1:
        log.info("%s holds only %s files: a one-modality data set", root, modalities[0])
    for class_dir, label, by_stem in stems:
        rows += [_pair_row(class_dir, label, stem, found, modalities)
                 for stem, found in sorted(by_stem.items())]
    _warn_stripped(stripped, root)
    source = "derived from file names"
    if modalities == ("image",):
        rows, source = _photo_groups(rows)
    else:
        log.info("groups derived from file names (stem without trailing frame number)")
    return _finish(rows, classes, root, "pairs", source, check_files, progress, modalities)


# --- manifest CSV ------------------------------------------------------------------------------

def _read_csv(path: Path, required: list[str], text: bool = False) -> pd.DataFrame:
    """Read a CSV (BOM and spaces around column names tolerated); `text` keeps cells as strings
    so '007' stays '007' and only an empty cell counts as missing."""
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


def _uses_group_column(frame: pd.DataFrame, csv_path: Path,
                       required: Iterable[str] = MANIFEST_REQUIRED) -> bool:
    """Whether groups come from the `group` column: every usable row (all of its ``required``
    cells filled) has one, or none does.

    A partly filled column would mix column groups with file-name groups, and one video could
    then reach both train and test; it is refused, naming the rows to fill in.
    """
    if "group" not in frame.columns:
        return False
    usable = frame[[c for c in required if c in frame]].map(_cell).ne("").all(axis=1)
    filled = frame["group"].map(_cell).ne("")
    if not (usable & filled).any():
        return False
    empty = [str(i + 2) for i in np.flatnonzero(usable & ~filled)]
    if empty:
        raise DataError(
            csv_path,
            f"the 'group' column is empty in row(s) {_list_refs(empty)} but filled in others; "
            "fill it in every row or remove the column (mixing column groups with groups guessed "
            "from file names can put one video on both train and test)",
        )
    return True


def _manifest_row(
    rec: dict, n: int, csv_path: Path, use_group: bool, allow_outside: bool, stripped: set[str],
    modalities: tuple[str, ...] = ("image", "audio"),
) -> _Row:
    where, ref = f"{csv_path}:{n}", f"row {n}"
    base = csv_path.parent
    paths = {m: _cell(rec[m]) for m in modalities}
    label = _label(rec["label"], stripped)
    if not (all(paths.values()) and label):
        return _Row(where, ref, Skip(where, f"empty {', '.join(modalities)} or label cell"))
    leaving = None if allow_outside else leaving_path(paths, base, "manifest folder")
    if leaving:
        return _Row(where, ref, Skip(where, leaving))
    first = paths[modalities[0]]
    group = _cell(rec["group"]) if use_group else f"{label}/{derive_group(Path(first).stem)}"
    item = Item(id=first, label=label, group=group,
                image=base / paths["image"] if "image" in paths else None,
                audio=base / paths["audio"] if "audio" in paths else None)
    return _Row(where, ref, item)


def load_manifest(
    csv_path: Path,
    classes: list[str] | None = None,
    check_files: bool = True,
    progress: Progress | None = None,
    allow_outside: bool = False,
) -> Dataset:
    """Load a manifest CSV with columns `image,audio,label[,group]`, paths relative to the CSV
    (only `image` or only `audio` beside `label`: a one-modality data set).

    Paths that leave the CSV's folder (`../`, absolute paths elsewhere) are skipped unless
    `allow_outside=True`: a manifest from someone else should not reach across the disk.
    """
    csv_path = Path(csv_path)
    frame = _read_csv(csv_path, ["label"], text=True)
    modalities = tuple(m for m in ("image", "audio") if m in frame.columns)
    if not modalities:
        raise DataError(csv_path, "missing required column(s): image and/or audio (a manifest "
                                  "needs label and an image column, an audio column, or both)")
    if len(modalities) == 1:
        log.info("%s has no %s column: a one-modality data set", csv_path,
                 "audio" if modalities == ("image",) else "image")
    use_group = _uses_group_column(frame, csv_path)
    stripped: set[str] = set()
    rows = [
        _manifest_row(rec, n, csv_path, use_group, allow_outside, stripped, modalities)
        for n, rec in enumerate(frame.to_dict("records"), start=2)
    ]
    _warn_stripped(stripped, csv_path)
    source = "manifest column" if use_group else "derived from file names"
    if not use_group and modalities == ("image",):
        rows, source = _photo_groups(rows)
    elif not use_group:
        log.info("manifest has no filled 'group' column: groups derived from image file names")
    return _finish(rows, classes, csv_path.parent, "manifest", source, check_files, progress,
                   modalities)


# --- reference layout --------------------------------------------------------------------------

def load_reference(
    root: Path,
    classes: list[str] | None = None,
    check_files: bool = True,
    progress: Progress | None = None,
    allow_outside: bool = False,
) -> Dataset:
    """Load the "Scene Classification: Images and Audio" layout: dataset.csv + images/<source>/.

    Audio exists only as the CSV's 104 MFCC values per row, reshaped to (8 windows, 13 MFCCs).
    The group is the source folder (one per video). Image paths leaving ROOT are skipped unless
    `allow_outside=True`.
    """
    root = Path(root)
    csv_path = root / REFERENCE_CSV
    frame = _read_csv(csv_path, REFERENCE_REQUIRED)
    mfcc = frame[REFERENCE_MFCC_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    rows: list[_Row] = []
    stripped: set[str] = set()
    for n, (raw_rel, raw_label) in enumerate(zip(frame["IMAGE"], frame["CLASS2"], strict=True)):
        where, ref = f"{csv_path}:{n + 2}", f"row {n + 2}"
        rel, label = _cell(raw_rel).replace("\\", "/"), _label(raw_label, stripped)
        leaving = None if allow_outside or not rel else leaving_path(
            {"image": rel}, root, "data folder"
        )
        if not (rel and label):
            entry: Item | Skip = Skip(where, "empty IMAGE or CLASS2 cell")
        elif not np.all(np.isfinite(mfcc[n])):
            entry = Skip(where, "MFCC values missing or not numeric")
        elif leaving:
            entry = Skip(where, leaving)
        else:
            parts = Path(rel).parts
            group = parts[-2] if len(parts) >= 2 else derive_group(Path(rel).stem)
            entry = Item(id=rel, label=label, group=group, image=root / rel,
                         mfcc=mfcc[n].reshape(REFERENCE_MFCC_SHAPE))
        rows.append(_Row(where, ref, entry))
    _warn_stripped(stripped, csv_path)
    return _finish(rows, classes, root, "reference", "source folder", check_files, progress)


# --- choosing a loader -------------------------------------------------------------------------

#: layout name -> loader; a layout defined elsewhere adds itself with :func:`register_layout`
LOADERS: dict[str, Callable[..., Dataset]] = {
    "reference": load_reference, "manifest": load_manifest, "pairs": load_pairs_folder}
#: layouts recognised before the folder of pairs / the plain manifest: (name, does this
#: folder hold it?) and (name, do these CSV columns make it?)
_FOLDER_DETECTORS: list[tuple[str, Callable[[Path], bool]]] = []
_CSV_DETECTORS: list[tuple[str, Callable[[list[str]], bool]]] = []
#: what a progress bar says while a layout loads, where it is not "checking files"
_STAGES: dict[str, str] = {}


def register_layout(name: str, loader: Callable[..., Dataset],
                    detect: Callable[[Path], bool] | None = None,
                    detect_csv: Callable[[list[str]], bool] | None = None,
                    stage: str | None = None) -> None:
    """Add a layout: ``loader(root, classes=, check_files=, progress=, allow_outside=, **options)``
    and, for ``auto`` to find it, ``detect(folder) -> bool`` (a folder layout) or
    ``detect_csv(column names) -> bool`` (a CSV layout); ``stage`` names what its ``progress``
    counts (e.g. "cutting videos")."""
    LOADERS[name] = loader
    if stage is not None:
        _STAGES[name] = stage
    if detect is not None:
        _FOLDER_DETECTORS.append((name, detect))
    if detect_csv is not None:
        _CSV_DETECTORS.append((name, detect_csv))


def detect_layout(path: Path) -> str:
    """Which loader fits `path`: 'reference', 'manifest', a registered folder layout
    (e.g. 'videos') or 'pairs'."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        try:
            columns = [str(c).strip() for c in pd.read_csv(path, nrows=0).columns]
        except (OSError, ValueError, UnicodeDecodeError):
            return "manifest"  # its loader names the problem
        return next((name for name, detect in _CSV_DETECTORS if detect(columns)), "manifest")
    if path.is_dir() and (path / REFERENCE_CSV).is_file():
        return "reference"
    if path.is_dir():
        return next((name for name, detect in _FOLDER_DETECTORS if detect(path)), "pairs")
    raise DataError(path, "not found (expected a data folder or a manifest .csv)")


def loading_stage(path: Path, layout: str = "auto") -> str:
    """What a progress bar should say while ``load_dataset(path, layout)`` runs."""
    chosen = check_layout(layout)
    return _STAGES.get(detect_layout(path) if chosen == "auto" else chosen, "checking files")


def layouts() -> tuple[str, ...]:
    """Every layout name a user may give, 'auto' first."""
    return ("auto", *LOADERS)


def check_layout(layout: str) -> str:
    """The layout name normalised ('Pairs ' -> 'pairs'); an unknown one names the valid ones."""
    name = str(layout).strip().lower()
    if name not in layouts():
        raise InvalidValue(f"unknown layout {layout!r}; valid layouts: {', '.join(layouts())}")
    return name


def load_dataset(
    path: Path,
    layout: str = "auto",
    classes: list[str] | None = None,
    check_files: bool = True,
    progress: Progress | None = None,
    allow_outside: bool = False,
    **options: object,
) -> Dataset:
    """Load any supported layout; `layout='auto'` picks it from what is on disk.

    `allow_outside=True` accepts manifest / reference paths that leave the data folder.
    ``options`` go to the layouts that take them (a video folder's ``options=VideoOptions``)
    and are ignored by the others.
    """
    chosen = check_layout(layout)
    if chosen == "auto":
        chosen = detect_layout(path)
    loader = LOADERS[chosen]
    accepted = inspect.signature(loader).parameters
    return loader(
        Path(path), classes=classes, check_files=check_files, progress=progress,
        allow_outside=allow_outside, **{k: v for k, v in options.items() if k in accepted},
    )


# --- what a layout defined in another module builds on -------------------------------------------

def label_of(raw: object, stripped: set[str]) -> str:
    """A folder or cell name as a label, the same way every loader reads one."""
    return _label(raw, stripped)


def read_table(path: Path, required: list[str]) -> pd.DataFrame:
    """A CSV as text cells with stripped column names; DataError naming missing columns."""
    return _read_csv(path, required, text=True)


def cell(value: object) -> str:
    """A CSV cell as stripped text ('' when missing)."""
    return _cell(value)


def row_of(path: Path | str, entry: Item | Skip, ref: str | None = None) -> object:
    """One candidate input for :func:`finish_rows`: an item or a skip, named by ``path`` and
    cited in other rows' reasons by ``ref`` (e.g. "row 3"; default: the path)."""
    return _Row(str(path), ref or str(path), entry)


def entry_of(row: object) -> Item | Skip:
    """What a row made by :func:`row_of` holds now (a rule may have turned it into a skip)."""
    assert isinstance(row, _Row)
    return row.entry


def outside_class_folders(root: Path, what: str) -> list:
    """A skip for every file lying directly in ``root``, outside any class folder: a layout of
    class folders cannot label it, and it is listed rather than ignored in silence."""
    return [_Row(str(f), str(f), Skip(str(f), f"not inside a class folder: {what} go in "
                                              "ROOT/<class>/"))
            for f in sorted(root.iterdir())
            if f.is_file() and not f.name.startswith(".") and f.name != SYNTHETIC_MARKER]


def uses_group_column(frame: pd.DataFrame, csv_path: Path, required: Iterable[str]) -> bool:
    """Whether a manifest's groups come from its ``group`` column (the rule of every manifest:
    filled in every usable row, or in none); DataError naming the empty rows otherwise."""
    return _uses_group_column(frame, csv_path, required)


def drop_label_conflicts(rows: list, identity: dict[Path, str]) -> list:
    """Rows made with :func:`row_of`, every one using a source listed under two labels turned
    into a skip; ``identity`` maps each item's file to what makes two files one source (its
    real path, or the content hash of a video)."""
    return _drop_label_conflicts(rows, identity)


def finish_rows(rows: list, classes: list[str] | None, root: Path, layout: str,
                group_source: str, stripped: set[str]) -> Dataset:
    """Apply the rules every loader shares (duplicates, label and group conflicts, the class
    list, missing files) to rows made with :func:`row_of`."""
    _warn_stripped(stripped, root)
    return _finish(rows, classes, root, layout, group_source, False, None)
