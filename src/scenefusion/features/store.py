"""The feature cache: the only code that touches the cache folder.

Layout: `<root>/<extractor id>-<params hash>/chunk-*.npz`, each chunk holding `keys` (item id +
content hash) and `values` (stacked arrays). A chunk is written to a temporary file and renamed
into place, so a killed run leaves only whole chunks behind and resumes where it stopped;
nothing stored is ever recomputed or overwritten.

A damaged cache heals instead of blocking: a chunk that cannot be read (truncated, bad CRC,
empty, wrong shape, keys and values of different lengths) is logged with its path, moved into
the table's `quarantine/` folder and its items are simply missing, so the caller recomputes
them. Processes that fill one table take its `.lock` file in turn (`FeatureTable.locked`), so
a second concurrent run reuses the first one's work instead of computing it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..files import FileProblem, ensure_writable_dir
from ..paths import default_cache_dir

try:
    import fcntl
except ImportError:  # not POSIX: concurrent runs are not coordinated (see `locked`)
    fcntl = None

log = logging.getLogger(__name__)

#: A temporary chunk older than this was left by a killed run (writing one takes seconds).
STALE_TEMP_SECONDS = 600
QUARANTINE = "quarantine"
#: What reading a damaged .npz raises: numpy, zipfile and zlib do not share a base class.
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def not_finite(row: np.ndarray, what: str) -> str | None:
    """The skip reason for a computed row holding NaN or infinite values (``what`` names the
    feature), or None for a usable row: such a row is never stored, since a cached NaN would
    poison every later run that reuses it."""
    if np.isfinite(row).all():
        return None
    return (f"its {what} holds NaN or infinite values (a damaged network or weight file?); "
            "left out and not cached")


class CacheError(FileProblem):
    """The feature cache cannot be written (read-only, full disk, no permission) or a fresh
    entry cannot be used: says which path and what to do, instead of a traceback after minutes
    of compute. A ValueError (via FileProblem), so every CLI command reports it as a message."""


def content_hash(path: Path) -> str:
    """Short digest of a file's bytes: a changed file gets new features, a moved one keeps them."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "blake2b").hexdigest()[:20]


def quarantine(path: Path, reason: str) -> Path | None:
    """Move a damaged cache file into `quarantine/` beside it (kept for inspection, out of the
    way of every later run) and log it; None when it could not be moved."""
    target = path.parent / QUARANTINE / path.name
    try:
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            target = target.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}")
        os.replace(path, target)
    except FileNotFoundError:
        return None  # another process moved it already
    except OSError as exc:
        log.warning("damaged feature cache file %s (%s); cannot move it aside (%s), ignoring it",
                    path, reason, exc)
        return None
    log.warning("damaged feature cache file %s (%s): moved to %s, its items will be recomputed",
                path, reason, target)
    return target


def _write_error(folder: Path, exc: OSError) -> CacheError:
    reason = f"[Errno {exc.errno}] {exc.strerror}" if exc.strerror else str(exc)
    return CacheError(folder, f"cannot write to the feature cache ({reason}); free space, fix "
                              "the permissions or choose another cache folder (--cache)")


class FeatureTable:
    """Cached arrays of one (extractor id, params hash), looked up by item key.

    `row_shape`, when given, is the shape every stored row must have: a chunk holding rows of
    another shape is damaged (and quarantined), never broadcast into the caller's array."""

    def __init__(self, folder: Path, row_shape: tuple[int, ...] | None = None) -> None:
        self.folder = folder
        self.row_shape = tuple(row_shape) if row_shape is not None else None
        self._index: dict[str, tuple[Path, int]] | None = None
        self._sizes: dict[Path, int] = {}
        self._chunks: dict[Path, np.ndarray] = {}
        self._damaged: set[Path] = set()  # found damaged but could not be moved aside

    def _load_index(self) -> dict[str, tuple[Path, int]]:
        if self._index is None:
            self._sweep_temps()
            self._index, self._sizes = {}, {}
            for chunk in sorted(set(self.folder.glob("chunk-*.npz")) - self._damaged):
                keys = self._read_keys(chunk)
                if keys is None:
                    continue
                self._sizes[chunk] = len(keys)
                for row, key in enumerate(keys):
                    self._index.setdefault(key, (chunk, row))  # a duplicate: the first wins
        return self._index

    def _read_keys(self, chunk: Path) -> list[str] | None:
        try:
            with np.load(chunk, allow_pickle=False) as data:
                keys = data["keys"]
        except FileNotFoundError:
            return None
        except _UNREADABLE as exc:
            self._set_aside(chunk, f"unreadable: {type(exc).__name__}: {exc}")
            return None
        if keys.ndim != 1 or keys.dtype.kind != "U":
            self._set_aside(chunk, f"keys are not a list of strings ({keys.dtype}, {keys.shape})")
            return None
        return keys.tolist()

    def _set_aside(self, chunk: Path, problem: str) -> None:
        if quarantine(chunk, problem) is None:
            self._damaged.add(chunk)

    def _values(self, chunk: Path) -> np.ndarray | None:
        """The chunk's values, checked against its keys and the table's row shape; None (and
        the index rebuilt without it) when the chunk is damaged."""
        if chunk in self._chunks:
            return self._chunks[chunk]
        problem = None
        try:
            with np.load(chunk, allow_pickle=False) as data:
                values = data["values"]
        except FileNotFoundError:
            values = None  # moved aside by another process: rebuild the index below
        except _UNREADABLE as exc:
            values, problem = None, f"unreadable: {type(exc).__name__}: {exc}"
        if values is not None:
            problem = self._shape_problem(chunk, values)
        if values is None or problem:
            if problem:
                self._set_aside(chunk, problem)
            self._index = None
            return None
        self._chunks[chunk] = values
        return values

    def _shape_problem(self, chunk: Path, values: np.ndarray) -> str | None:
        if values.ndim == 0 or len(values) != self._sizes.get(chunk):
            return f"{self._sizes.get(chunk)} keys but values of shape {values.shape}"
        if self.row_shape is not None and values.shape[1:] != self.row_shape:
            return (f"values of shape {values.shape}, expected rows of shape {self.row_shape} "
                    "like the rest of the table")
        return None

    def _sweep_temps(self) -> None:
        """Remove temporary chunks that a killed run or a full disk left behind."""
        cutoff = time.time() - STALE_TEMP_SECONDS
        for tmp in self.folder.glob(".chunk-*.tmp"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    log.info("removed stale temporary cache file %s", tmp)

    def __len__(self) -> int:
        return len(self._load_index())

    def __contains__(self, key: str) -> bool:
        return key in self._load_index()

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Every readable cached array among `keys`; missing keys, and those of a chunk found
        damaged now (quarantined), are absent from the result so the caller recomputes them."""
        found: dict[str, np.ndarray] = {}
        for key in keys:
            row = self._lookup(key)
            if row is not None:
                found[key] = row
        return found

    def _lookup(self, key: str) -> np.ndarray | None:
        while (hit := self._load_index().get(key)) is not None:
            chunk, row = hit
            values = self._values(chunk)
            if values is not None:
                return values[row]
        return None  # each failed try quarantined a chunk and rebuilt the index: this ends

    def put_many(self, keys: list[str], values: np.ndarray) -> None:
        """Store new arrays as one chunk, atomically; keys already stored are left untouched.
        A failed write leaves no temporary file and raises `CacheError` naming the folder.
        Non-finite values are refused (callers skip such rows by name: :func:`not_finite`)."""
        index = self._load_index()
        values = np.asarray(values)
        if not np.isfinite(values).all():
            raise ValueError(f"refusing to cache NaN or infinite values in {self.folder}")
        if self.row_shape is not None and values.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {values.shape[1:]} for the cache table "
                             f"{self.folder} of rows {self.row_shape}")
        fresh = [i for i, k in enumerate(keys) if k not in index]
        if not fresh:
            return
        name = f"chunk-{uuid.uuid4().hex}.npz"
        final = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        new_keys = np.array([keys[i] for i in fresh])
        new_values = np.ascontiguousarray(values[fresh])
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=new_keys, values=new_values)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            raise _write_error(self.folder, exc) from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        self._chunks[final] = new_values
        self._sizes[final] = len(new_keys)
        for row, key in enumerate(new_keys.tolist()):
            index[key] = (final, row)

    @contextlib.contextmanager
    def locked(self) -> Iterator[FeatureTable]:
        """Hold the table's `.lock` (other processes filling it wait) and see what they stored
        before it was ours, so the caller computes only what is still missing. Uncoordinated
        where `fcntl` is missing (not POSIX)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fh = open(self.folder / ".lock", "a+b")  # noqa: SIM115 (closed in finally)
        except OSError as exc:
            raise _write_error(self.folder, exc) from exc
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.info("waiting for another process filling the feature cache %s",
                             self.folder)
                    fcntl.flock(fh, fcntl.LOCK_EX)
            self._index = None  # re-read: the previous holder may have stored our items
            yield self
        finally:
            fh.close()  # releases the lock


class FeatureStore:
    """A cache folder holding one `FeatureTable` per extractor configuration."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def table(self, extractor_id: str, params_key: str,
              row_shape: tuple[int, ...] | None = None) -> FeatureTable:
        return FeatureTable(self.root / f"{extractor_id}-{params_key}", row_shape)

    def check_writable(self) -> Path:
        """Prove the cache folder takes a file (created if needed), before expensive work."""
        try:
            return ensure_writable_dir(self.root, "feature cache")
        except FileProblem as err:
            raise CacheError(err.path, f"{err.problem}; free space, fix the permissions or "
                                       "choose another cache folder (--cache)") from None
