"""Videos -> image/audio pairs, one per second, as the reference data set was made.

Each second `t` of a video gives the frame shown at `t + 0.5 s` and the one second of audio
around it (or `audio_seconds` of it: more context for raw-audio features), written as
`<out>/<label>/<video>_<t>.jpg` + `.wav`, so the folder-of-pairs loader (and its grouping by
video) applies unchanged. Needs PyAV (`pip install 'scenefusion[video]'`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..errors import InvalidValue
from ..files import check_folder_name, open_new
from .validate import MIN_AUDIO_SECONDS, DataError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def _av():
    try:
        import av
    except ImportError:
        raise DataError("PyAV", "reading videos needs PyAV: pip install 'scenefusion[video]'") \
            from None
    return av


@contextlib.contextmanager
def decoding(path: Path) -> Iterator[Any]:
    """The open PyAV container of an untrusted video, to decode inside the block.

    Whatever decoding raises is the file's fault, not a bug: PyAV raises FFmpegError for a
    broken stream, but also UnicodeDecodeError from ``av.open`` for metadata that is not UTF-8,
    and others. Every video path (data sets, manifests, ``from-video``, ``predict --video``,
    the server) decodes here, so each turns any of them into one DataError naming the file.
    Keep writing files out of the block: a full disk is not the video's fault.
    """
    av = _av()
    try:
        with av.open(str(path)) as container:
            yield container
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 (any decoder error: the file is at fault)
        why = str(exc).strip()[:200] or type(exc).__name__
        raise DataError(path, f"not a readable video ({why})") from None


def _read_audio(path: Path, sample_rate: int, stop_after: float | None = None) -> np.ndarray:
    """The audio track as mono float32 at `sample_rate`. With `stop_after`, decoding stops
    once more than that many seconds are decoded: a length limit holds whatever the
    container's header says."""
    most = None if stop_after is None else int(stop_after * sample_rate) + 1
    chunks, total = [], 0
    with decoding(path) as container:
        if not container.streams.audio:
            raise DataError(path, "video has no audio track")
        av = _av()
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
                total += len(chunks[-1])
            if most is not None and total >= most:
                break
        else:
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        raise DataError(path, "audio track is empty")
    return np.concatenate(chunks).astype(np.float32)


def _audio_around(audio: np.ndarray, centre_s: float, seconds: float, sample_rate: int
                  ) -> np.ndarray:
    """`seconds` of `audio` centred on `centre_s`, moved inside the track where it would
    overhang (all of it when the track is shorter)."""
    n = min(int(round(seconds * sample_rate)), len(audio))
    start = int(round(centre_s * sample_rate)) - n // 2
    start = min(max(start, 0), len(audio) - n)
    return audio[start : start + n]


def sound_seconds(video: Path, stop_after: float, sample_rate: int = 16000) -> float:
    """Seconds of sound in ``video``, found by decoding it, never from its header (which a
    file can make say anything), and stopping just past ``stop_after``: a result above
    ``stop_after`` means "longer", without decoding the rest. Raises DataError for a video
    that cannot be read or has no sound."""
    video = Path(video)
    if not video.is_file():
        raise DataError(video, "video file not found")
    return len(_read_audio(video, sample_rate, stop_after)) / sample_rate


def stated_seconds(video: Path) -> float:
    """The length ``video``'s header states (0 when none): for messages only, since a file
    can state any length; limits use :func:`sound_seconds`."""
    with decoding(Path(video)) as container:
        if container.duration:
            return container.duration / 1_000_000  # av.time_base: microseconds
        return max((float(s.duration * s.time_base) for s in container.streams
                    if s.duration and s.time_base), default=0.0)


def _frames_at(path: Path, times: list[float]):
    """Yield (second index, PIL image) for the first frame at or after each time."""
    with decoding(path) as container:
        if not container.streams.video:
            raise DataError(path, "file has no video track")
        pending = list(enumerate(times))
        for frame in container.decode(video=0):
            if not pending:
                break
            if frame.time is None:
                continue
            while pending and frame.time + 1e-6 >= pending[0][1]:
                index, _ = pending.pop(0)
                yield index, frame.to_image()


class PairClash(DataError):
    """A file that cutting a video would write exists already (a user's file, never replaced)."""


def planned_pairs(video: Path, out_dir: Path, label: str, sample_rate: int = 16000,
                  image_suffix: str = ".jpg") -> list[tuple[Path, Path]]:
    """The (image, audio) paths :func:`video_to_pairs` would write for `video`, one pair per
    whole second, without writing anything; unreadable or too-short videos raise DataError."""
    video = Path(video)
    check_folder_name(label, "label")
    if not video.is_file():
        raise DataError(video, "video file not found")
    audio = _read_audio(video, sample_rate)
    return _pair_paths(video, Path(out_dir) / label, audio, sample_rate, image_suffix)


def _pair_paths(video: Path, folder: Path, audio: np.ndarray, sample_rate: int,
                image_suffix: str, fps: float = 1.0, max_seconds: float | None = None
                ) -> list[tuple[Path, Path]]:
    """One naming rule: step `k` of `video` (the frame at `(k + 0.5) / fps` s) is
    `<folder>/<stem>_<k:05d>.<suffix>` + `.wav`; at 1 frame per second, `k` is the second."""
    seconds = len(audio) / sample_rate
    if seconds < 1:
        raise DataError(video, f"shorter than one second ({seconds:.2f} s)")
    usable = seconds if max_seconds is None else min(seconds, max_seconds)
    steps = max(1, int(usable * fps + 1e-9))
    stems = [f"{video.stem}_{k:05d}" for k in range(steps)]
    return [(folder / f"{stem}{image_suffix}", folder / f"{stem}.wav") for stem in stems]


def refuse_clashes(pairs: list[tuple[Path, Path]]) -> None:
    """Raise :class:`PairClash` naming the first path that exists already or is planned twice
    (two videos with one file name stem), before anything is written."""
    paths = [p for pair in pairs for p in pair]
    seen: set[Path] = set()
    clashes = []
    for p in paths:
        if os.path.lexists(p) or p in seen:
            clashes.append(p)
        seen.add(p)
    if clashes:
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise PairClash(clashes[0], f"already exists or is written twice{more}; from-video "
                                    "never replaces a file: remove it, rename a video or "
                                    "choose another --out")


def video_to_pairs(
    video: Path,
    out_dir: Path,
    label: str,
    sample_rate: int = 16000,
    image_suffix: str = ".jpg",
    audio_seconds: float = 1.0,
    fps: float = 1.0,
    max_seconds: float | None = None,
) -> list[Path]:
    """Write one image + a WAV per whole second of `video` (``fps`` per second; only the first
    ``max_seconds`` when given); returns the image paths.

    The WAV holds `audio_seconds` of sound centred on the frame (shifted to stay inside the
    track near its start and end), so neighbouring clips overlap when it is above 1.
    A user's files are never replaced: `label` must be one folder name, every path this video
    would write is checked before the first is written (:class:`PairClash` names an existing
    one), and each file is opened create-only.
    """
    video = Path(video)
    check_folder_name(label, "label")
    if not video.is_file():
        raise DataError(video, "video file not found")
    if audio_seconds < MIN_AUDIO_SECONDS:
        raise InvalidValue(f"audio_seconds must be at least {MIN_AUDIO_SECONDS}, got "
                         f"{audio_seconds}")
    if not fps > 0 or (max_seconds is not None and not max_seconds > 0):
        raise InvalidValue(f"fps and max_seconds must be positive, got {fps} and {max_seconds}")
    folder = Path(out_dir) / label
    # with max_seconds, decode only the sound the last frame's clip can reach
    reach = None if max_seconds is None else max_seconds + audio_seconds + 1
    audio = _read_audio(video, sample_rate, reach)
    pairs = _pair_paths(video, folder, audio, sample_rate, image_suffix, fps, max_seconds)
    refuse_clashes(pairs)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    times = [(k + 0.5) / fps for k in range(len(pairs))]
    for k, image in _frames_at(video, times):
        image_path, audio_path = pairs[k]
        with open_new(image_path) as fh:
            image.convert("RGB").save(fh, format=_PIL_FORMATS[image_suffix.lower()])
        with open_new(audio_path) as fh:
            sf.write(fh, _audio_around(audio, times[k], audio_seconds, sample_rate),
                     sample_rate, format="WAV")
        written.append(image_path)
    if len(written) < len(pairs):
        log.info("%s: %d of %d seconds had a frame", video, len(written), len(pairs))
    return written


_PIL_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}


@dataclass
class CutVideos:
    """What :func:`videos_to_pairs` did: image paths written per video, and the videos it
    skipped with why (unreadable, too short, missing)."""

    written: dict[Path, list[Path]] = field(default_factory=dict)
    skipped: list[DataError] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(paths) for paths in self.written.values())


def videos_to_pairs(videos: list[Path], out_dir: Path, label: str, audio_seconds: float = 1.0,
                    on_video: Callable[[Path, list[Path]], None] | None = None) -> CutVideos:
    """Cut several videos of one class into pairs, calling ``on_video(video, images)`` as each
    is done. A video that cannot be read is a reported skip, not the end of the job; a clash
    with an existing file stops it before anything is written (every video's paths are
    planned first)."""
    check_folder_name(label, "--label")
    result = CutVideos()
    readable, planned = [], []
    for path in videos:
        try:
            planned += planned_pairs(path, out_dir, label)
            readable.append(Path(path))
        except DataError as err:
            result.skipped.append(err)
    refuse_clashes(planned)
    for path in readable:
        try:
            result.written[path] = video_to_pairs(path, out_dir, label,
                                                  audio_seconds=audio_seconds)
        except DataError as err:
            result.skipped.append(err)
            continue
        if on_video is not None:
            on_video(path, result.written[path])
    return result
