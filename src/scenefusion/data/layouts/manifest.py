"""A manifest CSV: columns ``image,audio,label[,group]``, paths relative to the CSV (only
``image`` or only ``audio`` beside ``label``: a one-modality data set)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..datasets import (
    Row,
    cell,
    derive_group,
    finish_rows,
    label_of,
    leaving_path,
    photo_groups,
    read_table,
    uses_group_column,
    warn_stripped,
)
from ..items import Dataset, Item, Skip
from ..validate import DataError
from .registry import CATCH_ALL, LoadRequest, Probe, keyword_loader, register_layout

log = logging.getLogger(__name__)

MANIFEST_REQUIRED = ["image", "audio", "label"]


def _manifest_row(
    rec: dict, n: int, csv_path: Path, use_group: bool, allow_outside: bool, stripped: set[str],
    modalities: tuple[str, ...] = ("image", "audio"),
) -> Row:
    where, ref = f"{csv_path}:{n}", f"row {n}"
    base = csv_path.parent
    paths = {m: cell(rec[m]) for m in modalities}
    label = label_of(rec["label"], stripped)
    if not (all(paths.values()) and label):
        return Row(where, ref, Skip(where, f"empty {', '.join(modalities)} or label cell"))
    leaving = None if allow_outside else leaving_path(paths, base, "manifest folder")
    if leaving:
        return Row(where, ref, Skip(where, leaving))
    first = paths[modalities[0]]
    group = cell(rec["group"]) if use_group else f"{label}/{derive_group(Path(first).stem)}"
    item = Item(id=first, label=label, group=group,
                image=base / paths["image"] if "image" in paths else None,
                audio=base / paths["audio"] if "audio" in paths else None)
    return Row(where, ref, item)


def is_csv(probe: Probe) -> bool:
    """Any CSV file: the catch-all of CSV layouts (its loader names what is wrong with it)."""
    return probe.is_csv


@register_layout("manifest", description="a CSV with columns image,audio,label[,group] (or "
                 "only image or only audio), paths relative to the CSV", detect=is_csv,
                 priority=CATCH_ALL)
def manifest_layout(csv_path: Path, request: LoadRequest) -> Dataset:
    """Load a manifest CSV. Paths that leave the CSV's folder (`../`, absolute paths
    elsewhere) are skipped unless ``request.allow_outside``: a manifest from someone else
    should not reach across the disk."""
    csv_path = Path(csv_path)
    frame = read_table(csv_path, ["label"])
    modalities = tuple(m for m in ("image", "audio") if m in frame.columns)
    if not modalities:
        raise DataError(csv_path, "missing required column(s): image and/or audio (a manifest "
                                  "needs label and an image column, an audio column, or both)")
    if len(modalities) == 1:
        log.info("%s has no %s column: a one-modality data set", csv_path,
                 "audio" if modalities == ("image",) else "image")
    use_group = uses_group_column(frame, csv_path, MANIFEST_REQUIRED)
    stripped: set[str] = set()
    rows = [
        _manifest_row(rec, n, csv_path, use_group, request.allow_outside, stripped, modalities)
        for n, rec in enumerate(frame.to_dict("records"), start=2)
    ]
    warn_stripped(stripped, csv_path)
    source = "manifest column" if use_group else "derived from file names"
    if not use_group and modalities == ("image",):
        rows, source = photo_groups(rows)
    elif not use_group:
        log.info("manifest has no filled 'group' column: groups derived from image file names")
    return finish_rows(rows, request.classes, csv_path.parent, "manifest", source,
                       check_files=request.check_files, progress=request.progress,
                       modalities=modalities)


load_manifest = keyword_loader("manifest")
