"""The reference data set's own layout ("Scene Classification: Images and Audio"):
``dataset.csv`` + ``images/<source>/``, audio only as the CSV's 104 MFCC values per row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..datasets import (
    Row,
    cell,
    derive_group,
    finish_rows,
    label_of,
    leaving_path,
    read_table,
    warn_stripped,
)
from ..items import Dataset, Item, Skip
from .registry import MARKED, LoadRequest, Probe, keyword_loader, register_layout

REFERENCE_CSV = "dataset.csv"
REFERENCE_MFCC_COLUMNS = [f"mfcc_{i}" for i in range(1, 105)]
REFERENCE_REQUIRED = ["IMAGE", "CLASS2", *REFERENCE_MFCC_COLUMNS]
# The reference CSV stores 13 MFCCs for each of 8 windows, window after window.
REFERENCE_MFCC_SHAPE = (8, 13)


def has_reference_csv(probe: Probe) -> bool:
    """A folder holding the reference set's ``dataset.csv``."""
    return probe.is_dir and (probe.path / REFERENCE_CSV).is_file()


@register_layout("reference", description="the reference data set: dataset.csv (IMAGE, "
                 "CLASS2, 104 MFCC columns) + images/<source video>/", detect=has_reference_csv,
                 priority=MARKED)
def reference_layout(root: Path, request: LoadRequest) -> Dataset:
    """Load the reference layout. Audio exists only as the CSV's 104 MFCC values per row,
    reshaped to (8 windows, 13 MFCCs). The group is the source folder (one per video). Image
    paths leaving ROOT are skipped unless ``request.allow_outside``."""
    root = Path(root)
    csv_path = root / REFERENCE_CSV
    frame = read_table(csv_path, REFERENCE_REQUIRED, text=False)
    mfcc = frame[REFERENCE_MFCC_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    rows: list[Row] = []
    stripped: set[str] = set()
    for n, (raw_rel, raw_label) in enumerate(zip(frame["IMAGE"], frame["CLASS2"], strict=True)):
        where, ref = f"{csv_path}:{n + 2}", f"row {n + 2}"
        rel, label = cell(raw_rel).replace("\\", "/"), label_of(raw_label, stripped)
        leaving = None if request.allow_outside or not rel else leaving_path(
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
        rows.append(Row(where, ref, entry))
    warn_stripped(stripped, csv_path)
    return finish_rows(rows, request.classes, root, "reference", "source folder",
                       check_files=request.check_files, progress=request.progress)


load_reference = keyword_loader("reference")
