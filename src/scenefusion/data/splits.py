"""Leakage-free splits: every source video (group) lands on one side only.

Frames one second apart are near-duplicates, so a frame-level split measures memory, not
recognition. The frame-level split exists only under its own explicit name, for comparison with
published figures.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidValue, ScenefusionError
from .folds import MIN_TRAIN_ROWS
from .items import Dataset

log = logging.getLogger(__name__)

STRATEGIES = ("group", "frame")


class SplitError(ScenefusionError, ValueError):
    """The data cannot be split as asked (e.g. a class with too few source videos)."""


@dataclass
class Split:
    """Row indices of each side plus notes a user must see (fallbacks, derived groups)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    strategy: str
    seed: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "seed": self.seed,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "notes": self.notes,
        }


def _majority_label(labels: np.ndarray, groups: np.ndarray) -> dict[str, int]:
    by_group: dict[str, list[int]] = defaultdict(list)
    for lab, grp in zip(labels, groups, strict=True):
        by_group[grp].append(int(lab))
    return {g: int(np.bincount(v).argmax()) for g, v in by_group.items()}


def _tail_slice(indices: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the first part, hand the last `fraction` of a group's frames to val (contiguous)."""
    n_val = int(round(len(indices) * fraction))
    if n_val == 0 or n_val == len(indices):
        return indices, indices[:0]
    return indices[:-n_val], indices[-n_val:]


def grouped_split(
    dataset: Dataset,
    test_fraction: float = 0.25,
    val_fraction: float = 0.15,
    seed: int = 0,
) -> Split:
    """Stratified split by source video: within each class, whole groups go to test/val/train.

    Each class needs at least 2 groups (one to train on, one to test on). A class with too few
    groups for a grouped validation set gets its val rows as the last frames of its training
    videos instead; that only leaks between train and val (early stopping, tuning), never into
    test, and it is written in `notes`.
    """
    labels = dataset.labels
    groups = dataset.groups
    rng = np.random.default_rng(seed)
    group_label = _majority_label(labels, groups)
    rows_of: dict[str, np.ndarray] = {
        g: np.flatnonzero(groups == g) for g in sorted(group_label)
    }
    train, val, test, notes = [], [], [], []
    for k, name in enumerate(dataset.classes):
        class_groups = sorted(g for g, lab in group_label.items() if lab == k)
        if not class_groups:
            continue
        if len(class_groups) < 2:
            raise SplitError(
                f"class {name!r} has only {len(class_groups)} source group(s) "
                f"({', '.join(class_groups)}); a leakage-free split needs at least 2 "
                "(one to train on, one to test on): add videos of this class, drop it, or "
                "say which files come from one video in a manifest's 'group' column "
                "(image,label,group; see README 'Data')"
            )
        order = list(rng.permutation(class_groups))
        n = len(order)
        n_test = min(max(1, int(round(test_fraction * n))), n - 1)
        n_val = int(round(val_fraction * n)) if val_fraction > 0 else 0
        if val_fraction > 0 and n - n_test >= 2:
            n_val = min(max(1, n_val), n - n_test - 1)
        else:
            n_val = 0
        if n_val and sum(len(rows_of[g]) for g in order[n_test + n_val:]) < MIN_TRAIN_ROWS:
            n_val = 0  # training rows come first: a class needs two to be cross-validated
        test_groups = order[:n_test]
        val_groups = order[n_test : n_test + n_val]
        train_groups = order[n_test + n_val :]
        test += [rows_of[g] for g in test_groups]
        val += [rows_of[g] for g in val_groups]
        if val_fraction > 0 and n_val == 0:
            notes.append(
                f"class {name!r}: {n} groups, too few for a grouped val set; val = last "
                f"{val_fraction:.0%} of frames of each training video (test stays leak-free)"
            )
            for g in train_groups:
                keep, held = _tail_slice(rows_of[g], val_fraction)
                train.append(keep)
                val.append(held)
        else:
            train += [rows_of[g] for g in train_groups]
    for note in notes:
        log.info(note)
    if dataset.group_source == "derived from file names":
        notes.append("groups were derived from file names (no source-video record in the data)")
    elif dataset.group_source.startswith("derived"):  # which rule the names were read by
        notes.append(f"groups {dataset.group_source}")
    cat = lambda parts: np.sort(np.concatenate(parts)) if parts else np.array([], dtype=np.int64)  # noqa: E731
    split = Split(cat(train), cat(val), cat(test), "group", seed, notes)
    _check_training_rows(dataset, split)
    return split


def _check_training_rows(dataset: Dataset, split: Split) -> None:
    """Refuse, before any extraction, a class left with fewer training rows than a model and
    its cross-validation need (one held out, one fitted on)."""
    counts = np.bincount(dataset.labels[split.train], minlength=len(dataset.classes))
    for k, name in enumerate(dataset.classes):
        total = int(np.sum(dataset.labels == k))
        if total and counts[k] < MIN_TRAIN_ROWS:
            raise SplitError(
                f"class {name!r} keeps {counts[k]} training item(s) of its {total} after the "
                f"test and validation sides take theirs; training needs at least "
                f"{MIN_TRAIN_ROWS}: add photos or videos of this class or drop it")


def frame_split(
    dataset: Dataset, test_fraction: float = 0.25, val_fraction: float = 0.15, seed: int = 0
) -> Split:
    """Random stratified split by frame. LEAKS across near-duplicate frames: comparison only."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(dataset))
    labels = dataset.labels
    try:
        rest, test = train_test_split(
            idx, test_size=test_fraction, stratify=labels, random_state=seed
        )
        val = np.array([], dtype=np.int64)
        if val_fraction > 0:
            rel = val_fraction / (1 - test_fraction)
            rest, val = train_test_split(rest, test_size=rel, stratify=labels[rest],
                                         random_state=seed)
    except ValueError as err:  # scikit-learn's word for a class too small to stratify
        counts = dataset.class_counts()
        smallest = min(counts, key=lambda c: counts[c])
        raise SplitError(f"a frame-level split cannot give every side items of every class "
                         f"(class {smallest!r} has {counts[smallest]} item(s)): {err}") from None
    note = "frame-level split: frames of one video are on both sides; accuracy is inflated"
    log.info(note)
    split = Split(np.sort(rest), np.sort(val), np.sort(test), "frame", seed, [note])
    _check_training_rows(dataset, split)
    return split


def make_split(
    dataset: Dataset,
    strategy: str = "group",
    test_fraction: float = 0.25,
    val_fraction: float = 0.15,
    seed: int = 0,
) -> Split:
    if strategy == "group":
        return grouped_split(dataset, test_fraction, val_fraction, seed)
    if strategy == "frame":
        return frame_split(dataset, test_fraction, val_fraction, seed)
    raise InvalidValue(f"unknown split strategy {strategy!r}; choose one of {STRATEGIES}")
