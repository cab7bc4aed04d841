"""Bad-input checks and safe readers.

Every problem with a user's file becomes a `DataError` that names the file and says what is wrong,
so that nobody sees a traceback from deep inside PIL or libsndfile.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, UnidentifiedImageError

MIN_AUDIO_SECONDS = 0.25
SILENCE_PEAK = 1e-5
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class DataError(ValueError):
    """A problem with input data, phrased for the person who owns the file."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def open_image_rgb(path: Path) -> Image.Image:
    """Decode an image fully (truncated files fail here, not later) and return it as RGB."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except UnidentifiedImageError:
        raise DataError(path, "not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"corrupt or truncated image ({exc})") from None
    if rgb.width < 8 or rgb.height < 8:
        raise DataError(path, f"image too small ({rgb.width}x{rgb.height}); need at least 8x8")
    return rgb


def check_image(path: Path) -> None:
    """Raise DataError if the image cannot be used."""
    open_image_rgb(path)


def audio_info(path: Path) -> sf._SoundFileInfo:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "audio file not found")
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise DataError(path, f"not a readable audio file ({exc})") from None


def read_audio(path: Path, target_sr: int | None = None) -> tuple[np.ndarray, int]:
    """Read a sound file as mono float32, resampled to `target_sr` when given.

    Rejects what would silently give meaningless features: empty, shorter than 0.25 s, silent.
    """
    path = Path(path)
    info = audio_info(path)
    if info.frames == 0:
        raise DataError(path, "audio is empty (0 samples)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DataError(path, f"truncated or corrupt audio ({exc})") from None
    if data.shape[0] == 0:
        raise DataError(path, "audio is empty (0 samples)")
    mono = data.mean(axis=1)
    seconds = mono.shape[0] / sr
    if seconds < MIN_AUDIO_SECONDS:
        raise DataError(
            path, f"audio too short ({seconds:.3f} s); need at least {MIN_AUDIO_SECONDS} s"
        )
    if not np.all(np.isfinite(mono)):
        raise DataError(path, "audio contains NaN or infinite samples")
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise DataError(path, "audio is silent (peak amplitude ~0); MFCCs would be meaningless")
    if target_sr is not None and sr != target_sr:
        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mono = librosa.resample(mono, orig_sr=sr, target_sr=target_sr)
        sr = target_sr
    return mono.astype(np.float32, copy=False), sr


def check_audio(path: Path) -> None:
    """Raise DataError if the audio cannot be used (reads the samples: catches truncation)."""
    read_audio(path)
