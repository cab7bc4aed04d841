"""Cross-validation folds over training rows, built in one place: model selection, tuning,
learning combiners and the calibration check all hold out the same kind of unit.

Built by hand, not with StratifiedGroupKFold: that splitter balances classes only on average,
so with one or two training groups in a class a fold can hold out all of them, and the fit
side then lacks the class (a one-class fit crashes; a calibration fold learns nothing about
it). Here each class's units are dealt to folds so that no fold ever holds every unit of a
class: every class is on the fitting side of every fold.

A unit is a source group (whole videos held out); with a frame-level split every row is its
own group (``row_groups``). A class with a single training group cannot be held out by group
and still be learnt from, so its group is cut into contiguous slices of its frames instead:
that leaks between neighbouring frames of one video inside the folds only (test stays
leak-free), and it is written in ``Folds.notes``.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ScenefusionError

log = logging.getLogger(__name__)

#: A class needs this many training rows for any cross-validation: one held out, one to fit.
MIN_TRAIN_ROWS = 2


class FoldError(ScenefusionError, ValueError):
    """The training rows cannot be cut into folds that keep every class on the fitting side."""


Split = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Folds:
    """(fit rows, held-out rows) per fold, positions within the rows given; every row is held
    out exactly once. ``notes`` says where a class could not be held out by whole groups."""

    splits: tuple[Split, ...]
    notes: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Split]:
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)


def row_groups(groups: np.ndarray, strategy: str) -> np.ndarray:
    """The groups folds hold out: the source groups for a grouped split; one per row for a
    frame-level split (the split itself already mixes frames of a video, and holding out
    derived groups there can hold out a whole class)."""
    groups = np.asarray(groups)
    if strategy == "frame":
        return np.array([f"row{i}" for i in range(len(groups))])
    return groups


def _units(rows: dict[str, np.ndarray], name: str, n_folds: int, slice_lone: bool,
           notes: list[str]) -> list[np.ndarray]:
    """What a class deals to folds: its groups, or slices of its only group (none when its
    rows all sit in groups of another class, which carry them)."""
    if len(rows) >= 2 or not rows:
        return list(rows.values())
    (only,) = rows.values()
    if not slice_lone:
        raise FoldError(f"class {name} has one group: no fold can hold out a group of it and "
                        f"still fit on it")
    if len(only) < MIN_TRAIN_ROWS:
        raise FoldError(f"class {name} has {len(only)} training item: cross-validation needs "
                        f"at least {MIN_TRAIN_ROWS} of every class (one to hold out, one to "
                        f"fit on)")
    notes.append(f"class {name} has one training group: its cross-validation folds are "
                 f"contiguous slices of that group's frames, so its out-of-fold estimates "
                 f"are optimistic (neighbouring frames on both sides)")
    return list(np.array_split(only, min(n_folds, len(only))))


def training_folds(y: np.ndarray, groups: np.ndarray | None, n_folds: int,
                   seed: int | None = 0, classes: Sequence[str] | None = None,
                   slice_lone_groups: bool = True) -> Folds:
    """At most ``n_folds`` folds over the rows of ``y``, holding out whole ``groups`` (each
    row alone without them), stratified by class, with every class on the fitting side of
    every fold. Deterministic for a given ``seed``. ``classes`` names the labels of ``y``
    (class indices) in notes and errors.

    Refused (``FoldError``) only where no such folds exist: fewer than two classes, or a
    class with a single training row; and, with ``slice_lone_groups=False`` (a check that
    means something only on whole held-out groups), a class with a single group.
    """
    y = np.asarray(y)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    labels = np.unique(y)
    if len(labels) < 2:
        raise FoldError("cross-validation needs at least 2 classes in the training rows")
    groups = np.arange(len(y)).astype(str) if groups is None else np.asarray(groups)
    by_group: dict[object, list[int]] = defaultdict(list)
    for i, g in enumerate(groups.tolist()):
        by_group[g].append(i)
    # a group belongs to its most frequent class (groups rarely mix labels)
    of_class: dict[object, dict[str, np.ndarray]] = defaultdict(dict)
    for g, idx in by_group.items():
        majority = Counter(y[idx].tolist()).most_common(1)[0][0]
        of_class[majority][str(g)] = np.asarray(idx, dtype=np.int64)

    def name(label: object) -> str:
        return repr(classes[int(label)]) if classes is not None else repr(label)

    notes: list[str] = []
    units = {lab: _units(of_class[lab], name(lab), n_folds, slice_lone_groups, notes)
             for lab in labels.tolist()}
    n_splits = min(n_folds, max(len(u) for u in units.values()))
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    total = np.zeros(n_splits, dtype=np.int64)
    for lab in labels.tolist():
        shuffled = [units[lab][i] for i in rng.permutation(len(units[lab]))]
        # biggest first, each to the fold holding fewest rows of this class (then fewest
        # overall): a class's second unit always lands in another fold than its first
        shuffled.sort(key=len, reverse=True)
        tie_order = rng.permutation(n_splits)
        in_class = np.zeros(n_splits, dtype=np.int64)
        for unit in shuffled:
            f = min(tie_order, key=lambda k: (in_class[k], total[k]))
            fold_of[unit] = f
            in_class[f] += len(unit)
            total[f] += len(unit)
    positions = np.arange(len(y))
    splits = tuple((positions[fold_of != f], positions[fold_of == f]) for f in range(n_splits))
    for note in notes:
        log.info(note)
    return Folds(splits, tuple(notes))
