"""The feature cache: the only code that touches the cache folder.

Layout: `<root>/<extractor id>-<params hash>/chunk-*.npz`, each chunk holding `keys` (item id +
content hash) and `values` (stacked arrays). A chunk is written to a temporary file and renamed
into place, so a killed run leaves only whole chunks behind and resumes where it stopped;
nothing stored is ever recomputed or overwritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..paths import default_cache_dir

log = logging.getLogger(__name__)


def content_hash(path: Path) -> str:
    """Short digest of a file's bytes: a changed file gets new features, a moved one keeps them."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "blake2b").hexdigest()[:20]


class FeatureTable:
    """Cached arrays of one (extractor id, params hash), looked up by item key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._index: dict[str, tuple[Path, int]] | None = None
        self._chunks: dict[Path, np.ndarray] = {}

    def _load_index(self) -> dict[str, tuple[Path, int]]:
        if self._index is None:
            self._index = {}
            for chunk in sorted(self.folder.glob("chunk-*.npz")):
                try:
                    with np.load(chunk, allow_pickle=False) as data:
                        keys = data["keys"]
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("ignoring unreadable cache chunk %s (%s)", chunk, exc)
                    continue
                for row, key in enumerate(keys.tolist()):
                    self._index.setdefault(key, (chunk, row))
        return self._index

    def __len__(self) -> int:
        return len(self._load_index())

    def __contains__(self, key: str) -> bool:
        return key in self._load_index()

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Every cached array among `keys` (missing keys are simply absent from the result)."""
        index = self._load_index()
        found: dict[str, np.ndarray] = {}
        for key in keys:
            hit = index.get(key)
            if hit is None:
                continue
            chunk, row = hit
            if chunk not in self._chunks:
                with np.load(chunk, allow_pickle=False) as data:
                    self._chunks[chunk] = data["values"]
            found[key] = self._chunks[chunk][row]
        return found

    def put_many(self, keys: list[str], values: np.ndarray) -> None:
        """Store new arrays as one chunk, atomically; keys already stored are left untouched."""
        index = self._load_index()
        fresh = [i for i, k in enumerate(keys) if k not in index]
        if not fresh:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"chunk-{uuid.uuid4().hex}.npz"
        final = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        new_keys = np.array([keys[i] for i in fresh])
        new_values = np.ascontiguousarray(np.asarray(values)[fresh])
        with open(tmp, "wb") as fh:
            np.savez(fh, keys=new_keys, values=new_values)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        self._chunks[final] = new_values
        for row, key in enumerate(new_keys.tolist()):
            index[key] = (final, row)


class FeatureStore:
    """A cache folder holding one `FeatureTable` per extractor configuration."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def table(self, extractor_id: str, params_key: str) -> FeatureTable:
        return FeatureTable(self.root / f"{extractor_id}-{params_key}")
