"""A folder of videos as a data set: ``ROOT/<class>/*.{mp4,mkv,webm,mov,avi,m4v}``.

Users with their own footage have videos, not pairs. Each video becomes one item per step
(``fps`` per second: the frame at ``(k + 0.5) / fps`` s and ``audio_seconds`` of sound around
it), grouped by video, exactly as ``data from-video`` cuts them. The cut frames and clips live
in the cache under the video file's content hash and the cutting options, so a re-run decodes
nothing and an edited video (new content, new hash) is cut again. A cut is written to a
temporary folder and renamed into place with its list of steps, so a killed run leaves no
half-cut video behind (its temporary folder, named by its process, is removed by the next
load), then sealed by a checksum, so a cut damaged or edited in the cache is cut again. A
video that cannot be cut (unreadable, no audio track, shorter than a second) is a named skip,
as for every other layout, and so is one outside any class folder.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..cache_integrity import load_or_build
from ..paths import default_cache_dir
from .datasets import (
    cell,
    drop_label_conflicts,
    entry_of,
    finish_rows,
    label_of,
    leaving_path,
    outside_class_folders,
    read_table,
    register_layout,
    row_of,
    uses_group_column,
)
from .items import Dataset, Item, Skip
from .validate import AUDIO_SUFFIXES, IMAGE_SUFFIXES, DataError
from .video import VIDEO_SUFFIXES, video_to_pairs

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

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


def is_video_folder(root: Path) -> bool:
    """True when the class folders under ``root`` hold videos and no images or sounds."""
    found = {p.suffix.lower() for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
             for p in d.iterdir() if p.is_file()}
    media = set(IMAGE_SUFFIXES) | set(AUDIO_SUFFIXES)
    return bool(found & set(VIDEO_SUFFIXES)) and not found & media


def _content_hash(path: Path) -> str:
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
    folder = root / f"{digest or _content_hash(video)}-{options.key()}"
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


@dataclass(frozen=True)
class Listed:
    """One video as a layout lists it: its label and group, and how a skip cites its entry
    (the path in a folder, "row N" in a manifest)."""

    label: str
    video: Path
    group: str
    ref: str = ""


def _one_entry_per_footage(videos: list[Listed], rows: list) -> list[tuple[Listed, str]]:
    """The videos to cut, with their content hashes. Footage is one source however it is
    named: listed under two labels it is dropped from every entry (the rule of every layout,
    :func:`.datasets.drop_label_conflicts`); listed again, or copied, under one label it is
    kept at its first entry only, since one footage twice would sit on both sides of a split.
    The others become skips appended to ``rows``."""
    listed, identity, by_ref = [], {}, {}
    for entry in videos:
        if not entry.video.is_file():
            rows.append(row_of(entry.video, Skip(str(entry.video), "video file not found")))
            continue
        identity[entry.video] = _content_hash(entry.video)
        ref = entry.ref or str(entry.video)
        by_ref[ref] = entry
        listed.append(row_of(entry.video, Item(id=ref, label=entry.label, group=entry.group,
                                               image=entry.video), ref))
    keep, first_with = [], {}
    for row in drop_label_conflicts(listed, identity):
        found = entry_of(row)
        if isinstance(found, Skip):
            rows.append(row)
            continue
        entry = by_ref[found.id]
        digest = identity[entry.video]
        if digest in first_with:
            first = first_with[digest]
            same = os.path.samefile(first.video, entry.video)
            what = (f"listed again (first as {first.ref})" if same
                    else f"same content as {first.video}")
            rows.append(row_of(entry.video, Skip(str(entry.video), f"{what}; kept there only")))
            continue
        first_with[digest] = Listed(entry.label, entry.video, entry.group, found.id)
        keep.append((entry, digest))
    return keep


def _cut_all(videos: list[Listed], rows: list, options: VideoOptions,
             progress: Progress | None) -> dict[str, float]:
    """Cut every listed video into items appended to ``rows``; a video that cannot be cut, or
    whose footage is listed twice (:func:`_one_entry_per_footage`), becomes a skip. Returns
    the cutting summary."""
    report = CutReport()
    sweep_stale_cuts((options.cache_dir or default_cache_dir()) / CUTS_FOLDER)
    to_cut = _one_entry_per_footage(videos, rows)
    for n, (entry, digest) in enumerate(to_cut, 1):
        label, video, group = entry.label, entry.video, entry.group
        try:
            pairs = cut_cached(video, options, report, digest)
        except DataError as err:
            rows.append(row_of(video, Skip(str(err.path), err.problem)))
        else:
            for image, audio in pairs:
                step = image.stem.rsplit("_", 1)[-1]
                item = Item(id=f"{group}/{step}", label=label, group=group, image=image,
                            audio=audio)
                rows.append(row_of(image, item))
        if progress:
            progress(n, len(to_cut))
    log.info("%d video(s) cut, %d cut(s) reused from the cache", report.decoded, report.reused)
    return {"videos": len(videos), "cut": report.decoded, "reused": report.reused,
            "fps": options.fps}


def load_video_folder(
    root: Path,
    classes: list[str] | None = None,
    check_files: bool = True,
    progress: Progress | None = None,
    allow_outside: bool = False,
    options: VideoOptions | None = None,
) -> Dataset:
    """Load ``ROOT/<class>/<video>``: one item per step of each video, grouped by video.

    ``progress(done, total)`` counts videos. ``check_files`` is accepted so that every
    loader takes the same options: cut files are decoded by the cutter itself.
    ``allow_outside`` too: a video folder names no paths outside itself.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "data folder not found")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(root, "no class folders found (expected ROOT/<class>/<video>.mp4)")
    videos, stripped = [], set()
    rows = outside_class_folders(root, "videos")
    for class_dir in class_dirs:
        label = label_of(class_dir.name, stripped)
        for f in sorted(p for p in class_dir.iterdir() if not p.name.startswith(".")):
            if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES:
                videos.append(Listed(label, f, f"{label}/{f.name}"))
            else:
                rows.append(row_of(f, Skip(str(f), "not a video (expected "
                                           f"{', '.join(VIDEO_SUFFIXES)})")))
    summary = _cut_all(videos, rows, options or VideoOptions(), progress)
    dataset = finish_rows(rows, classes, root, "videos", "one group per video", stripped)
    dataset.videos = summary
    return dataset


def load_video_manifest(
    csv_path: Path,
    classes: list[str] | None = None,
    check_files: bool = True,
    progress: Progress | None = None,
    allow_outside: bool = False,
    options: VideoOptions | None = None,
) -> Dataset:
    """Load a CSV with columns ``video,label[,group]`` (paths relative to the CSV): each video
    cut as in a video folder. The group is the ``group`` column (several videos of one place)
    when it is filled in every row, else the video; a partly filled one stops, as in every
    manifest. Paths leaving the CSV's folder are skipped unless ``allow_outside``."""
    csv_path = Path(csv_path)
    frame = read_table(csv_path, ["video", "label"])
    use_group = uses_group_column(frame, csv_path, ["video", "label"])
    base = csv_path.parent
    videos, rows, stripped = [], [], set()
    for n, rec in enumerate(frame.to_dict("records"), start=2):
        where = f"{csv_path}:{n}"
        path, label = cell(rec["video"]), label_of(rec["label"], stripped)
        if not (path and label):
            rows.append(row_of(where, Skip(where, "empty video or label cell")))
            continue
        leaving = None if allow_outside else leaving_path({"video": path}, base, "manifest folder")
        if leaving:
            rows.append(row_of(where, Skip(where, leaving)))
            continue
        group = cell(rec["group"]) if use_group else f"{label}/{Path(path).name}"
        videos.append(Listed(label, base / path, group, f"row {n}"))
    summary = _cut_all(videos, rows, options or VideoOptions(), progress)
    source = "manifest column" if use_group else "one group per video"
    dataset = finish_rows(rows, classes, base, "video-manifest", source, stripped)
    dataset.videos = summary
    return dataset


register_layout("videos", load_video_folder, detect=is_video_folder, stage="cutting videos")
register_layout("video-manifest", load_video_manifest,
                detect_csv=lambda columns: "video" in columns and not {"image", "audio"} & set(
                    columns), stage="cutting videos")
