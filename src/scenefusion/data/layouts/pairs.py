"""A folder of pairs: ``ROOT/<class>/<name>.{jpg,png}`` beside ``<name>.{wav,flac,ogg}``; a
folder with only sounds (or only images) is a one-modality data set of one item per file."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from ..datasets import (
    Row,
    derive_group,
    finish_rows,
    label_of,
    outside_class_folders,
    photo_groups,
    warn_stripped,
)
from ..items import Dataset, Item, Skip
from ..validate import AUDIO_SUFFIXES, IMAGE_SUFFIXES, DataError
from .registry import CATCH_ALL, LoadRequest, Probe, keyword_loader, register_layout

log = logging.getLogger(__name__)


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "audio" if suffix in AUDIO_SUFFIXES else None


def _nested_folder(folder: Path, class_dir: Path) -> Row:
    """A folder inside a class folder: its files are not read (classes are one level deep; a
    class name holding '/' becomes such a folder), so it is reported instead of vanishing."""
    n = sum(1 for p in folder.rglob("*") if p.is_file())
    return Row(str(folder), str(folder), Skip(str(folder), (
        f"a folder inside class folder {class_dir.name!r} ({n} file(s) not read): pairs must "
        f"sit directly in ROOT/<class>/, and a class name cannot hold '/'")))


def _pair_row(class_dir: Path, label: str, stem: str, found: dict[str, list[Path]],
              modalities: tuple[str, ...] = ("image", "audio")) -> Row:
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
        return Row(where, where, Skip(where, "; ".join(problems)))
    item = Item(
        id=f"{class_dir.name}/{stem}",
        label=label,
        group=f"{label}/{derive_group(stem)}",
        image=images[0] if images else None,
        audio=audios[0] if audios else None,
    )
    return Row(where, where, item)


def is_folder(probe: Probe) -> bool:
    """Any folder: the catch-all of folder layouts (its loader names what is wrong with it)."""
    return probe.is_dir


@register_layout("pairs", description="ROOT/<class>/<name>.jpg beside <name>.wav (or only "
                 "images, or only sounds), groups from file names", detect=is_folder,
                 priority=CATCH_ALL)
def pairs_layout(root: Path, request: LoadRequest) -> Dataset:
    """Load a folder of pairs. The group (source video) is derived from the file-name stem
    without its frame number, because a folder of pairs carries no other record of it. Two
    images (or two sounds) with one stem are reported, not resolved by a guess. A pairs
    folder never names paths outside itself, so ``request.allow_outside`` changes nothing."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "data folder not found")
    rows: list[Row] = []
    stripped: set[str] = set()
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(root, "no class folders found (expected ROOT/<class>/<name>.jpg + .wav)")
    rows += outside_class_folders(root, "pairs")
    stems: list[tuple[Path, str, dict[str, dict[str, list[Path]]]]] = []
    for class_dir in class_dirs:
        label = label_of(class_dir.name, stripped)
        by_stem: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
        for f in sorted(p for p in class_dir.iterdir() if not p.name.startswith(".")):
            if f.is_dir():
                rows.append(_nested_folder(f, class_dir))
            elif (kind := _kind(f)) is not None:
                by_stem[f.stem][kind].append(f)
            else:
                rows.append(Row(str(f), str(f), Skip(str(f), f"not an image or audio file "
                                                             f"({f.suffix or 'no suffix'})")))
        if not label:
            rows += [Row(str(class_dir), str(class_dir), Skip(str(class_dir), "empty label"))]
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
    warn_stripped(stripped, root)
    source = "derived from file names"
    if modalities == ("image",):
        rows, source = photo_groups(rows)
    else:
        log.info("groups derived from file names (stem without trailing frame number)")
    return finish_rows(rows, request.classes, root, "pairs", source,
                       check_files=request.check_files, progress=request.progress,
                       modalities=modalities)


load_pairs_folder = keyword_loader("pairs")
