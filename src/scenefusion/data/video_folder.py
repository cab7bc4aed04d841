"""Videos cut into a data set's items, cached: the layouts of videos
(:mod:`scenefusion.data.layouts.videos`) list the videos, this module cuts them.

Users with their own footage have videos, not pairs. Each video becomes one item per step
(``fps`` per second: the frame at ``(k + 0.5) / fps`` s and ``audio_seconds`` of sound around
it), grouped by video, exactly as ``data from-video`` cuts them. The cut frames and clips live
in the cache under the video file's content hash and the cutting options, so a re-run decodes
nothing and an edited video (new content, new hash) is cut again. A cut is written to a
temporary folder and renamed into place with its list of steps, so a killed run leaves no
half-cut video behind (its temporary folder, named by its process, is removed by the next
load), then sealed by a checksum, so a cut damaged or edited in the cache is cut again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..cache_integrity import load_or_build
from ..paths import default_cache_dir
from .validate import DataError
from .video import video_to_pairs

log = logging.getLogger(__name__)

#: folder of the feature cache that holds cut videos
CUTS_FOLDER = "videos"
#: written last into a finished cut: the image stems in order
CUT_LIST = "cut.json"
#: a cut's temporary folder untouched this long is left from a killed run (a live cut writes a
#: file every step, so its folder is touched far more often)
STALE_CUT_SECONDS = 6 * 3600
#: the owner in a cut's temporary folder name: ``.<cut>.<pid>@<host>.<tag>.tmp``
_OWNER = re.compile(r"\.(?P<pid>\d+)@(?P<host>[^/@]+)\.[0-9a-f]{8}\.tmp$")


@dataclass(frozen=True)
class VideoOptions:
    """How videos are cut into items: steps per second, the longest span read per video
    (None: all of it), seconds of audio per item, and the cache folder the cuts live in
    (None: the cache in use)."""

    fps: float = 1.0
    max_seconds: float | None = None
    audio_seconds: float = 1.0
    cache_dir: Path | None = None

    def key(self) -> str:
        """The options that change a cut's files (never where the cache is)."""
        return f"fps{self.fps:g}-max{self.max_seconds or 0:g}-audio{self.audio_seconds:g}"


@dataclass
class CutReport:
    """What loading did to the videos: how many were cut now and how many cuts were reused."""

    decoded: int = 0
    reused: int = 0


def content_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:20]


def cut_cached(video: Path, options: VideoOptions, report: CutReport | None = None,
               digest: str | None = None) -> list[tuple[Path, Path]]:
    """The (image, audio) files of ``video``'s items, cutting it only when no finished cut
    of the same content (``digest``, computed when not given) and options is in the cache.
    A cached cut whose checksum does not hold, or whose list names a file outside its folder,
    is moved aside and cut again (:mod:`scenefusion.cache_integrity`). Raises DataError for a
    video that cannot be cut."""
    root = (options.cache_dir or default_cache_dir()) / CUTS_FOLDER
    folder = root / f"{digest or content_hash(video)}-{options.key()}"
    decoded = []

    def cut(target: Path) -> None:
        owner = f"{os.getpid()}@{socket.gethostname()}"
        tmp = root / f".{target.name}.{owner}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            written = video_to_pairs(video, tmp, "cut", audio_seconds=options.audio_seconds,
                                     fps=options.fps, max_seconds=options.max_seconds)
            (tmp / "cut").mkdir(parents=True, exist_ok=True)
            (tmp / "cut" / CUT_LIST).write_text(json.dumps([p.stem for p in written]))
            try:
                os.replace(tmp / "cut", target)
            except OSError:  # another process finished the same cut first: use theirs
                if not (target / CUT_LIST).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        decoded.append(target)

    pairs = load_or_build(folder, cut, listed_pairs, what="video cut", verb="cutting")
    if report is not None:
        if decoded:
            report.decoded += 1
        else:
            report.reused += 1
    return pairs


def sweep_stale_cuts(root: Path, max_age: float = STALE_CUT_SECONDS) -> list[Path]:
    """Remove the temporary folders of cuts that will never finish, so that killed runs do not
    fill the cache with hidden half-cut videos: one whose process (named in the folder's name,
    on this host) is gone, or one untouched for ``max_age`` seconds (a cut by another host, or
    from before owners were named). A live cut's folder is left alone. Returns those removed."""
    if not root.is_dir():
        return []
    here, now, removed = socket.gethostname(), time.time(), []
    for tmp in root.glob(".*.tmp"):
        owner = _OWNER.search(tmp.name)
        try:  # a live cut writes into tmp/cut/ at every step
            age = now - max(p.stat().st_mtime for p in (tmp, *tmp.glob("cut")))
        except OSError:  # removed meanwhile by its owner
            continue
        gone = owner is not None and owner["host"] == here and not _alive(int(owner["pid"]))
        if gone or age > max_age:
            shutil.rmtree(tmp, ignore_errors=True)
            log.info("removed the temporary folder of an unfinished cut: %s", tmp)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (one of another user counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def listed_pairs(folder: Path) -> list[tuple[Path, Path]]:
    """The (image, audio) files a cut's list names, each checked to lie inside the cut's
    folder: the list is read from the cache, and a tampered one must not make a data set read
    a file elsewhere. Raises DataError naming the list otherwise."""
    listing = folder / CUT_LIST
    stems = json.loads(listing.read_text(encoding="utf-8"))
    if not isinstance(stems, list) or not all(isinstance(s, str) and s for s in stems):
        raise DataError(listing, "not a list of file names")
    inside = folder.resolve()
    pairs = [(folder / f"{s}.jpg", folder / f"{s}.wav") for s in stems]
    for path in (p for pair in pairs for p in pair):
        if path.parent != folder or not path.resolve().is_relative_to(inside):
            raise DataError(listing, f"names {path.relative_to(folder)}, outside the cut's "
                                     "folder")
    return pairs
