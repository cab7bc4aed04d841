"""Reading the JSON files scenefusion writes, writing files whole, and checking output
locations before long work.

They exist so that a broken file or an unwritable folder is reported as one sentence naming
the path, *before* minutes of feature extraction or training, not after; and so that a killed
run never leaves a half-written file where a reader expects a whole one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import InvalidValue, ScenefusionError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def written_atomically(path: Path | str) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; renamed onto ``path`` when the
    block ends without error and removed in any case, so a kill, an exception or a full disk
    never leaves a truncated file where a reader expects a whole one.

    A folder (or anything not a file) at ``path`` is refused before the block writes, and a
    failed rename is reported, as OSError naming ``path``: the temporary name is an internal
    detail, and a user can act only on the path they know."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a folder is where this file belongs; remove it",
                                str(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


class FileProblem(ScenefusionError, ValueError):
    """A file or folder scenefusion needs is missing, unreadable, broken or not writable."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def read_json_object(path: Path | str, required: Iterable[str] = ()) -> dict[str, Any]:
    """A JSON file that must hold an object with the `required` keys."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileProblem(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FileProblem(path, f"cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileProblem(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise FileProblem(path, f"expected a JSON object, found {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise FileProblem(path, f"missing key(s) {', '.join(missing)}")
    return data


def ensure_writable_dir(folder: Path | str, what: str = "output folder") -> Path:
    """Create `folder` if needed and prove it takes a file, so a read-only disk, a file in the
    way or a missing permission stops the command before it computes anything."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileProblem(folder, f"{what} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise FileProblem(folder, f"{what} is not writable ({exc.strerror or exc})") from None
    return folder


def ensure_writable_file(path: Path | str, what: str = "output file") -> Path:
    """Check that `path` can be written (its folder is created), before the work that fills it."""
    path = Path(path)
    if path.is_dir():
        raise FileProblem(path, f"{what} is a folder, not a file")
    ensure_writable_dir(path.parent if str(path.parent) else Path("."), f"folder of the {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise FileProblem(path, f"{what} exists and is not writable")
    return path


def check_folder_name(name: str, what: str) -> str:
    """``name`` as one folder name, or a ValueError naming it: a class label or a run name
    that is empty, ``.``/``..``, absolute or holds a path separator would put files outside
    (or at the root of) the folder they belong in."""
    text = str(name)
    problem = None
    if not text.strip():
        problem = "is empty"
    elif text in (".", ".."):
        problem = "is not a folder name"
    elif "/" in text or "\\" in text or os.sep in text or (os.altsep and os.altsep in text):
        problem = "holds a path separator"
    elif "\0" in text:
        problem = "holds a NUL character"
    if problem:
        raise InvalidValue(f"{what} {text!r} {problem}: it must be one folder name "
                         "(no '/', '\\', '.' or '..')")
    return text


def open_new(path: Path | str):
    """Open a file that must not exist yet for binary writing (create-only, so a file that
    appeared since a clash check is refused, never replaced)."""
    try:
        return open(path, "xb")
    except FileExistsError:
        raise FileProblem(path, "already exists; refusing to overwrite it") from None


_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGEST_LOCK = threading.Lock()


def file_key(path: Path) -> tuple[str, int, int]:
    """Identifies a file's current content cheaply: a rewritten file gets a new key."""
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def file_sha256(path: Path, official: str | None = None, what: str = "file") -> str:
    """SHA-256 of a file's bytes, computed once per process and file version (:func:`file_key`):
    weight files of tens of MB are hashed into cache keys each time an extractor is built.
    When it differs from ``official`` (the packaged file's), logs once that the file's results
    are cached apart ("{what} PATH is not the packaged file; ...")."""
    key = file_key(path)
    with _DIGEST_LOCK:
        if key not in _DIGESTS:
            with open(path, "rb") as fh:
                _DIGESTS[key] = hashlib.file_digest(fh, "sha256").hexdigest()
            if official is not None and _DIGESTS[key] != official:
                log.info("%s %s is not the packaged file; its features are cached apart (keyed "
                         "by the file's SHA-256)", what, path)
        return _DIGESTS[key]
