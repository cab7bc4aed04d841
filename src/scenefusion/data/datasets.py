"""Loaders: a folder of pairs, a manifest CSV, and the reference data set's own layout.

Each returns a `Dataset` whose `skipped` list says which inputs were left out and why.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

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

_FRAME_SUFFIX = re.compile(r"^(.*?)[-_ .]*\d+$")


def derive_group(stem: str) -> str:
    """Source-video guess from a frame's file name: the stem without its trailing frame number."""
    match = _FRAME_SUFFIX.match(stem)
    return match.group(1) if match and match.group(1) else stem


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
    rows: Iterable[tuple[str, Item | Skip]], classes: list[str] | None, skipped: list[Skip]
) -> list[Item]:
    kept = []
    for _, row in rows:
        if isinstance(row, Skip):
            skipped.append(row)
        elif classes is not None and row.label not in classes:
            where = row.image or row.audio or row.id
            reason = f"label {row.label!r} is not in the class list {classes}"
            skipped.append(Skip(str(where), reason))
        else:
            kept.append(row)
    return kept


def _finish(
    items: list[Item],
    classes: list[str] | None,
    root: Path,
    layout: str,
    group_source: str,
    skipped: list[Skip],
    check_files: bool,
    progress: Progress | None,
) -> Dataset:
    usable = []
    for i, item in enumerate(items):
        if _check_item_files(item, skipped, check_files):
            usable.append(item)
        if progress:
            progress(i + 1, len(items))
    names = list(classes) if classes is not None else sorted({it.label for it in usable})
    if skipped:
        log.info("%d input(s) skipped in %s; see Dataset.skipped", len(skipped), root)
    return Dataset(usable, names, root, layout, group_source, skipped)


def load_pairs_folder(
    root: Path,
    classes: list[str] | None = None,
    check_files: bool = True,
    progress: Progress | None = None,
) -> Dataset:
    """Load `ROOT/<class>/<name>.{jpg,png}` beside `<name>.{wav,flac,ogg}`.

    The group (source video) is derived from the file-name stem without its frame number,
    because a folder of pairs carries no other record of it.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "data folder not found")
    skipped: list[Skip] = []
    rows: list[tuple[str, Item | Skip]] = []
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(root, "no class folders found (expected ROOT/<class>/<name>.jpg + .wav)")
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.iterdir() if p.is_file())
        by_stem: dict[str, dict[str, Path]] = {}
        for f in files:
            kind = (
                "image" if f.suffix.lower() in IMAGE_SUFFIXES
                else "audio" if f.suffix.lower() in AUDIO_SUFFIXES
                else None
            )
            if kind is None:
                continue
            by_stem.setdefault(f.stem, {})[kind] = f
        for stem, found in sorted(by_stem.items()):
            if "image" not in found:
                rows.append((stem, Skip(str(found["audio"]), "no image with the same name")))
                continue
            if "audio" not in found:
                rows.append((stem, Skip(str(found["image"]), "no audio with the same name")))
                continue
            item = Item(
                id=f"{class_dir.name}/{stem}",
                label=class_dir.name,
                group=f"{class_dir.name}/{derive_group(stem)}",
                image=found["image"],
                audio=found["audio"],
            )
            rows.append((stem, item))
    items = _filter_classes(rows, classes, skipped)
    log.info("groups derived from file names (stem without trailing frame number)")
    return _finish(
        items, classes, root, "pairs", "derived from file names", skipped, check_files, progress
    )


def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(path, "CSV file not found")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a readable CSV ({exc})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        more = f" (+{len(missing) - 8} more)" if len(missing) > 8 else ""
        shown = ", ".join(missing[:8]) + more
        raise DataError(path, f"missing required column(s): {shown}")
    return frame


def load_manifest(
    csv_path: Path,
    classes: list[str] | None = None,
    check_files: bool = True,
    progress: Progress | None = None,
) -> Dataset:
    """Load a manifest CSV with columns `image,audio,label[,group]`, paths relative to the CSV."""
    csv_path = Path(csv_path)
    frame = _read_csv(csv_path, MANIFEST_REQUIRED)
    base = csv_path.parent
    has_group = "group" in frame.columns
    rows: list[tuple[str, Item | Skip]] = []
    for n, rec in enumerate(frame.itertuples(index=False), start=2):
        where = f"{csv_path}:{n}"
        image, audio, label = rec.image, rec.audio, rec.label
        if any(pd.isna(v) or str(v).strip() == "" for v in (image, audio, label)):
            rows.append((where, Skip(where, "empty image, audio or label cell")))
            continue
        image_path = base / str(image)
        group = str(rec.group) if has_group and not pd.isna(rec.group) else None
        if group is None:
            group = f"{label}/{derive_group(Path(str(image)).stem)}"
        item = Item(
            id=str(image), label=str(label), group=group, image=image_path, audio=base / str(audio)
        )
        rows.append((where, item))
    skipped: list[Skip] = []
    items = _filter_classes(rows, classes, skipped)
    source = "manifest column" if has_group else "derived from file names"
    if not has_group:
        log.info("manifest has no 'group' column: groups derived from image file names")
    return _finish(items, classes, base, "manifest", source, skipped, check_files, progress)


def load_reference(
    root: Path,
    classes: list[str] | None = None,
    check_files: bool = True,
    progress: Progress | None = None,
) -> Dataset:
    """Load the "Scene Classification: Images and Audio" layout: dataset.csv + images/<source>/.

    Audio exists only as the CSV's 104 MFCC values per row, reshaped to (8 windows, 13 MFCCs).
    The group is the source folder (one per video).
    """
    root = Path(root)
    csv_path = root / REFERENCE_CSV
    frame = _read_csv(csv_path, REFERENCE_REQUIRED)
    mfcc = frame[REFERENCE_MFCC_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    rows: list[tuple[str, Item | Skip]] = []
    for n, (rel, label) in enumerate(zip(frame["IMAGE"], frame["CLASS2"], strict=True)):
        where = f"{csv_path}:{n + 2}"
        if pd.isna(rel) or pd.isna(label):
            rows.append((where, Skip(where, "empty IMAGE or CLASS2 cell")))
            continue
        if not np.all(np.isfinite(mfcc[n])):
            rows.append((where, Skip(where, "MFCC values missing or not numeric")))
            continue
        rel = str(rel).replace("\\", "/")
        parts = Path(rel).parts
        group = parts[-2] if len(parts) >= 2 else derive_group(Path(rel).stem)
        item = Item(
            id=rel,
            label=str(label).strip(),
            group=group,
            image=root / rel,
            mfcc=mfcc[n].reshape(REFERENCE_MFCC_SHAPE),
        )
        rows.append((where, item))
    skipped: list[Skip] = []
    items = _filter_classes(rows, classes, skipped)
    return _finish(
        items, classes, root, "reference", "source folder", skipped, check_files, progress
    )


def detect_layout(path: Path) -> str:
    """Which loader fits `path`: 'reference', 'manifest' or 'pairs'."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return "manifest"
    if path.is_dir() and (path / REFERENCE_CSV).is_file():
        return "reference"
    if path.is_dir():
        return "pairs"
    raise DataError(path, "not found (expected a data folder or a manifest .csv)")


LOADERS = {"reference": load_reference, "manifest": load_manifest, "pairs": load_pairs_folder}


def load_dataset(
    path: Path,
    layout: str = "auto",
    classes: list[str] | None = None,
    check_files: bool = True,
    progress: Progress | None = None,
) -> Dataset:
    """Load any supported layout; `layout='auto'` picks it from what is on disk."""
    chosen = detect_layout(path) if layout == "auto" else layout
    if chosen not in LOADERS:
        raise ValueError(f"unknown layout {layout!r}; choose one of auto, {', '.join(LOADERS)}")
    return LOADERS[chosen](Path(path), classes=classes, check_files=check_files, progress=progress)
