"""Content checksums for everything the cache derives and keeps (ONNX exports, int8 models,
merged weight files, cut videos): the one rule that a damaged artefact is rebuilt, never used.

A file that still parses can hold wrong numbers (a flipped byte in a weight tensor), so loading
is not proof of health. Each artefact gets a sha256 *seal* beside it (``NAME.sha256``, in
``sha256sum`` format), written atomically after the artefact itself; a loader checks the seal
first. A missing or mismatching seal, or an artefact that does not load, is logged, moved aside
as ``NAME.corrupt`` (kept for inspection, one per artefact) and the artefact built again, once.
Building and checking one artefact hold its lock file (POSIX), so a concurrent process never
judges a half-sealed artefact damaged nor builds it twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .files import written_atomically

try:
    import fcntl
except ImportError:  # not POSIX: concurrent builders are not coordinated
    fcntl = None

log = logging.getLogger(__name__)

T = TypeVar("T")

SEAL_SUFFIX = ".sha256"
CORRUPT_SUFFIX = ".corrupt"


def seal_path(path: Path) -> Path:
    """Where the checksum of the artefact at ``path`` (a file or a folder) is kept."""
    return path.with_name(path.name + SEAL_SUFFIX)


def digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and contents, in name
    order; links by their target, never followed), so any change inside the folder shows."""
    h = hashlib.sha256()
    if not path.is_dir():
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    entries = []
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        entries += [Path(folder, name) for name in files + [d for d in dirs
                                                            if Path(folder, d).is_symlink()]]
    for entry in sorted(entries, key=lambda p: p.relative_to(path).as_posix()):
        h.update(entry.relative_to(path).as_posix().encode() + b"\0")
        if entry.is_symlink():
            h.update(b"link:" + os.fsencode(os.readlink(entry)))
        else:
            with open(entry, "rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
        h.update(b"\0")
    return h.hexdigest()


def seal(path: Path) -> None:
    """Write the checksum of the artefact now at ``path`` beside it, atomically."""
    with written_atomically(seal_path(path)) as tmp:
        tmp.write_text(f"{digest(path)}  {path.name}\n", encoding="ascii")


def damage(path: Path) -> str | None:
    """Why the artefact at ``path`` cannot be trusted (no checksum, unreadable checksum, content
    that does not match it), or None when its content is the one sealed."""
    try:
        recorded = seal_path(path).read_text(encoding="ascii").split()[0]
    except FileNotFoundError:
        return f"it has no checksum ({seal_path(path).name})"
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        return f"its checksum file cannot be read ({type(exc).__name__})"
    try:
        actual = digest(path)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if actual != recorded:
        return f"its content does not match its sha256 checksum ({actual[:12]} != {recorded[:12]})"
    return None


def quarantine(path: Path) -> Path | None:
    """Move the artefact at ``path`` and its checksum aside as ``NAME.corrupt`` (replacing an
    older quarantined copy); when it cannot be moved it is deleted, so that nothing rebuilt
    beside it can be mixed with it. None when it was not moved (logged)."""
    target = path.with_name(path.name + CORRUPT_SUFFIX)
    try:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(path, target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot move the damaged cache artefact %s aside (%s); deleting it", path,
                    exc)
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        return None
    with contextlib.suppress(OSError):
        os.replace(seal_path(path), seal_path(target))
    return target


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside the artefact while it is checked or built; uncoordinated where
    the folder cannot be written or ``fcntl`` is missing (not POSIX)."""
    fh = None
    if fcntl is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path.with_name(f".{path.name}.lock"), "a+b")  # noqa: SIM115 (closed below)
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError as exc:
            log.debug("no lock for %s (%s)", path, exc)
    try:
        yield
    finally:
        if fh is not None:
            fh.close()  # releases the lock


#: ``build(path)`` writes the artefact at ``path`` and returns None (it is then sealed), or
#: returns the artefact itself when it could not be written there (used from memory, unsealed).
Build = Callable[[Path], Any]


def load_or_build(path: Path, build: Build, load: Callable[[Any], T], *,
                  fresh: Callable[[Any], T] | None = None, what: str = "artefact",
                  verb: str = "building") -> T:
    """``load`` the cached artefact at ``path`` when its checksum holds and it loads; otherwise
    (logged as "cached {what} {path} cannot be loaded (why); {verb} it again", moved aside)
    ``build`` and seal it, and load the fresh one with ``fresh`` (default: ``load``), whose
    failure propagates: a fresh artefact that does not load is the builder's error, not a loop."""
    with locked(path):
        if path.exists() or path.is_symlink():
            problem = damage(path)
            if problem is None:
                try:
                    return load(path)
                except Exception as exc:  # noqa: BLE001 (any loader's errors: no shared base)
                    problem = f"{type(exc).__name__}: {str(exc).strip()[:400]}"
            log.warning("cached %s %s cannot be loaded (%s); %s it again", what, path, problem,
                        verb)
            quarantine(path)
        built = build(path)
        if built is None:
            try:
                seal(path)
            except OSError as exc:
                log.warning("cannot write the checksum of %s (%s); it will be built again next "
                            "time", path, exc)
    return (fresh or load)(path if built is None else built)
