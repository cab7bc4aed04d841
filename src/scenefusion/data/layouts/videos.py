"""The layouts of videos: a folder ``ROOT/<class>/*.{mp4,mkv,webm,mov,avi,m4v}`` and a manifest
CSV ``video,label[,group]``. Each video is cut into one item per step, grouped by video
(:mod:`scenefusion.data.video_folder` cuts and caches); a video that cannot be cut (unreadable,
no audio track, shorter than a second) is a named skip, as for every other layout, and so is
one outside any class folder."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ...paths import default_cache_dir
from ..datasets import (
    Progress,
    Row,
    cell,
    drop_label_conflicts,
    finish_rows,
    label_of,
    leaving_path,
    outside_class_folders,
    read_table,
    row_of,
    uses_group_column,
    warn_stripped,
)
from ..items import Dataset, Item, Skip
from ..validate import AUDIO_SUFFIXES, IMAGE_SUFFIXES, DataError
from ..video import VIDEO_SUFFIXES
from ..video_folder import (
    CUTS_FOLDER,
    CutReport,
    VideoOptions,
    content_hash,
    cut_cached,
    sweep_stale_cuts,
)
from .registry import LoadRequest, Probe, keyword_loader, register_layout

log = logging.getLogger(__name__)

CUTTING = "cutting videos"


def is_video_folder(root: Path) -> bool:
    """True when the class folders under ``root`` hold videos and no images or sounds."""
    found = {p.suffix.lower() for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
             for p in d.iterdir() if p.is_file()}
    media = set(IMAGE_SUFFIXES) | set(AUDIO_SUFFIXES)
    return bool(found & set(VIDEO_SUFFIXES)) and not found & media


def _detect_folder(probe: Probe) -> bool:
    return probe.is_dir and is_video_folder(probe.path)


def _detect_manifest(probe: Probe) -> bool:
    """A CSV with a ``video`` column and no ``image`` or ``audio`` one."""
    columns = probe.columns
    return columns is not None and "video" in columns and not {"image", "audio"} & set(columns)


@dataclass(frozen=True)
class Listed:
    """One video as a layout lists it: its label and group, and how a skip cites its entry
    (the path in a folder, "row N" in a manifest)."""

    label: str
    video: Path
    group: str
    ref: str = ""


def _one_entry_per_footage(videos: list[Listed], rows: list[Row]) -> list[tuple[Listed, str]]:
    """The videos to cut, with their content hashes. Footage is one source however it is
    named: listed under two labels it is dropped from every entry (the rule of every layout,
    :func:`..datasets.drop_label_conflicts`); listed again, or copied, under one label it is
    kept at its first entry only, since one footage twice would sit on both sides of a split.
    The others become skips appended to ``rows``."""
    listed, identity, by_ref = [], {}, {}
    for entry in videos:
        if not entry.video.is_file():
            rows.append(row_of(entry.video, Skip(str(entry.video), "video file not found")))
            continue
        identity[entry.video] = content_hash(entry.video)
        ref = entry.ref or str(entry.video)
        by_ref[ref] = entry
        listed.append(row_of(entry.video, Item(id=ref, label=entry.label, group=entry.group,
                                               image=entry.video), ref))
    keep, first_with = [], {}
    for row in drop_label_conflicts(listed, identity):
        found = row.entry
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


def _cut_all(videos: list[Listed], rows: list[Row], options: VideoOptions,
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


@register_layout("videos", description="ROOT/<class>/<video>.mp4 (mkv, webm, mov, avi, "
                 "m4v): one item per second of each video, grouped by video",
                 detect=_detect_folder, stage=CUTTING)
def video_folder_layout(root: Path, request: LoadRequest) -> Dataset:
    """Load ``ROOT/<class>/<video>``: one item per step of each video, grouped by video.

    ``request.progress(done, total)`` counts videos. ``check_files`` changes nothing: cut
    files are decoded by the cutter itself; nor does ``allow_outside``: a video folder names
    no paths outside itself.
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
    summary = _cut_all(videos, rows, request.video or VideoOptions(), request.progress)
    warn_stripped(stripped, root)
    dataset = finish_rows(rows, request.classes, root, "videos", "one group per video")
    dataset.videos = summary
    return dataset


@register_layout("video-manifest", description="a CSV with columns video,label[,group], "
                 "paths relative to the CSV: each video cut as in a video folder",
                 detect=_detect_manifest, stage=CUTTING)
def video_manifest_layout(csv_path: Path, request: LoadRequest) -> Dataset:
    """Load a CSV with columns ``video,label[,group]`` (paths relative to the CSV): each video
    cut as in a video folder. The group is the ``group`` column (several videos of one place)
    when it is filled in every row, else the video; a partly filled one stops, as in every
    manifest. Paths leaving the CSV's folder are skipped unless ``request.allow_outside``."""
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
        leaving = None if request.allow_outside else leaving_path(
            {"video": path}, base, "manifest folder")
        if leaving:
            rows.append(row_of(where, Skip(where, leaving)))
            continue
        group = cell(rec["group"]) if use_group else f"{label}/{Path(path).name}"
        videos.append(Listed(label, base / path, group, f"row {n}"))
    summary = _cut_all(videos, rows, request.video or VideoOptions(), request.progress)
    source = "manifest column" if use_group else "one group per video"
    warn_stripped(stripped, base)
    dataset = finish_rows(rows, request.classes, base, "video-manifest", source)
    dataset.videos = summary
    return dataset


load_video_folder = keyword_loader("videos")
