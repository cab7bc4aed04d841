"""Videos -> image/audio pairs, one per second, as the reference data set was made.

Each second `t` of a video gives the frame shown at `t + 0.5 s` and the one second of audio
around it (or `audio_seconds` of it: more context for raw-audio features), written as
`<out>/<label>/<video>_<t>.jpg` + `.wav`, so the folder-of-pairs loader (and its grouping by
video) applies unchanged. Needs PyAV (`pip install 'scenefusion[video]'`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf

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


def _read_audio(av, path: Path, sample_rate: int) -> np.ndarray:
    """The whole audio track as mono float32 at `sample_rate`."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise DataError(path, "video has no audio track")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
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


def _frames_at(av, path: Path, times: list[float]):
    """Yield (second index, PIL image) for the first frame at or after each time."""
    with av.open(str(path)) as container:
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


def video_to_pairs(
    video: Path,
    out_dir: Path,
    label: str,
    sample_rate: int = 16000,
    image_suffix: str = ".jpg",
    audio_seconds: float = 1.0,
) -> list[Path]:
    """Write one image + a WAV per whole second of `video`; returns the image paths.

    The WAV holds `audio_seconds` of sound centred on the frame (shifted to stay inside the
    track near its start and end), so neighbouring clips overlap when it is above 1.
    """
    video = Path(video)
    if not video.is_file():
        raise DataError(video, "video file not found")
    if audio_seconds < MIN_AUDIO_SECONDS:
        raise ValueError(f"audio_seconds must be at least {MIN_AUDIO_SECONDS}, got "
                         f"{audio_seconds}")
    av = _av()
    try:
        audio = _read_audio(av, video, sample_rate)
        seconds = len(audio) // sample_rate
        if seconds < 1:
            raise DataError(video, f"shorter than one second ({len(audio) / sample_rate:.2f} s)")
        folder = Path(out_dir) / label
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for t, image in _frames_at(av, video, [s + 0.5 for s in range(seconds)]):
            stem = f"{video.stem}_{t:05d}"
            image.convert("RGB").save(folder / f"{stem}{image_suffix}")
            sf.write(folder / f"{stem}.wav", _audio_around(audio, t + 0.5, audio_seconds,
                                                           sample_rate), sample_rate)
            written.append(folder / f"{stem}{image_suffix}")
    except av.error.FFmpegError as exc:
        raise DataError(video, f"not a readable video ({exc})") from None
    if len(written) < seconds:
        log.info("%s: %d of %d seconds had a frame", video, len(written), seconds)
    return written
