"""The records every stage passes around: one `Item` per image/audio pair (or per file of a
one-modality data set), one `Dataset` of them."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Item:
    """One example: an image and the audio recorded with it (one of them only, in a data set
    whose ``modalities`` say so).

    `mfcc` holds precomputed audio features (the reference data set ships audio only as MFCCs,
    shape (8, 13)); otherwise `audio` points at a sound file. `group` is the source video: frames
    of one video are near-duplicates, so every split keeps a group on one side only.
    """

    id: str
    label: str
    group: str
    image: Path | None = None
    audio: Path | None = None
    mfcc: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Skip:
    """An input that was left out, and why (shown to the user, never silently dropped)."""

    path: str
    reason: str


@dataclass
class Dataset:
    """Items plus what a user needs to trust them: class list, where groups came from, skips."""

    items: list[Item]
    classes: list[str]
    root: Path
    layout: str
    group_source: str
    skipped: list[Skip] = field(default_factory=list)
    #: what every item has: both, or only "audio" / only "image" (a one-modality data set)
    modalities: tuple[str, ...] = ("image", "audio")
    #: a video folder's cutting summary: videos found, cut now, cuts reused, steps per second
    videos: dict[str, float] | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> np.ndarray:
        """Integer class index per item, in `classes` order."""
        index = {name: i for i, name in enumerate(self.classes)}
        return np.array([index[it.label] for it in self.items], dtype=np.int64)

    @property
    def groups(self) -> np.ndarray:
        return np.array([it.group for it in self.items])

    def class_counts(self) -> dict[str, int]:
        counts = Counter(it.label for it in self.items)
        return {c: counts.get(c, 0) for c in self.classes}

    def groups_per_class(self) -> dict[str, int]:
        seen: dict[str, set[str]] = {c: set() for c in self.classes}
        for it in self.items:
            seen[it.label].add(it.group)
        return {c: len(g) for c, g in seen.items()}

    def fingerprint(self) -> str:
        """Short hash of every (id, label, group): names the data set in caches and runs."""
        h = hashlib.sha256()
        h.update(self.layout.encode())
        for it in sorted(self.items, key=lambda i: i.id):
            h.update(f"{it.id}\t{it.label}\t{it.group}\n".encode())
        return h.hexdigest()[:16]

    def subset(self, indices: np.ndarray | list[int]) -> Dataset:
        return Dataset(
            items=[self.items[i] for i in indices],
            classes=list(self.classes),
            root=self.root,
            layout=self.layout,
            group_source=self.group_source,
            skipped=list(self.skipped),
            modalities=self.modalities,
        )
