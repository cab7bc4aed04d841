"""Bad-input checks and safe readers.

Every problem with a user's file becomes a `DataError` that names the file and says what is wrong,
so that nobody sees a traceback from deep inside PIL or libsndfile. The readers also refuse what
would decode without error but give meaningless numbers: decompression bombs, 16-bit images read
as white, sideways phone photos, truncated or constant audio.
"""

from __future__ import annotations

import logging
import math
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ScenefusionError

log = logging.getLogger(__name__)

MIN_AUDIO_SECONDS = 0.25
SILENCE_PEAK = 1e-5
#: A stereo mix whose RMS falls below this fraction of its loudest channel's RMS has cancelled
#: (channels in antiphase, e.g. one wired inverted); normal stereo mixes stay above ~0.5.
CANCELLED_MIX_RATIO = 0.1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")

MIN_IMAGE_SIDE = 8
#: Pixels we are willing to decode (64 MP: ~200 MB as RGB); below PIL's own bomb limits.
MAX_IMAGE_PIXELS = 64_000_000
#: Longest side accepted, whatever the pixel count (a 100000 x 8 strip is tiny on disk but
#: resizing its short side to the model's input size would take gigabytes).
MAX_IMAGE_SIDE = 16384
MAX_ASPECT_RATIO = 20.0
#: Images are decoded (JPEG `draft`) or reduced (`Image.reduce`) to keep the shorter side at least
#: this long once it exceeds twice as much: every backbone resizes to far less.
DECODE_TARGET_SIDE = 1024

#: Wave data-chunk sizes that streaming writers (ffmpeg, sox to a pipe) leave as placeholders.
_UNKNOWN_WAV_SIZES = (0, 0xFFFFFFFF)
_WAV_PLACEHOLDER_MIN = 0x7FFFF000


class DataError(ScenefusionError, ValueError):
    """A problem with input data, phrased for the person who owns the file."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


# --- images ------------------------------------------------------------------------------------

def open_image_rgb(path: Path) -> Image.Image:
    """Decode an image fully (truncated files fail here, not later) and return it as RGB.

    Size limits are checked from the header before any pixel is decoded; EXIF orientation is
    applied; 16-bit, float, palette, alpha and CMYK images are converted without clipping.
    Very large images come back reduced (shorter side >= DECODE_TARGET_SIDE).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with warnings.catch_warnings():
            # Our own limit is stricter than PIL's warning threshold; never let the warning
            # escape (or, under -W error, surface as an exception from PIL).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                _check_dimensions(path, img.size)
                _draft(img)
                _check_pixels(path, img.size)
                img.load()
                rgb = _to_rgb(path, _upright(path, img))
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(path, "not a readable image (unknown or corrupt format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(path, f"image too large to decode safely ({exc})") from None
    except MemoryError:
        raise DataError(path, "image too large to decode in the available memory") from None
    except Exception as exc:  # PIL raises many types on bad files (OSError, SyntaxError, ...)
        raise DataError(path, f"corrupt or truncated image ({exc})") from None
    return _reduce(rgb)


def check_image(path: Path) -> None:
    """Raise DataError if the image cannot be used."""
    open_image_rgb(path)


def _check_dimensions(path: Path, size: tuple[int, int]) -> None:
    """Refuse from the header alone: too small, a side too long, or too extreme an aspect."""
    w, h = size
    if min(w, h) < MIN_IMAGE_SIDE:
        raise DataError(path, f"image too small ({w}x{h}); need at least "
                              f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}")
    if max(w, h) > MAX_IMAGE_SIDE:
        raise DataError(path, f"image too large ({w}x{h}); refusing a side longer than "
                              f"{MAX_IMAGE_SIDE} px (possible decompression bomb)")
    ratio = max(w, h) / min(w, h)
    if ratio > MAX_ASPECT_RATIO:
        raise DataError(path, f"image aspect ratio too extreme ({w}x{h}, {ratio:.0f}:1); refusing "
                              f"more than {MAX_ASPECT_RATIO:.0f}:1 (resizing it would take "
                              "huge memory)")


def _check_pixels(path: Path, size: tuple[int, int]) -> None:
    """Refuse to decode more than MAX_IMAGE_PIXELS (a large JPEG is judged at its draft size:
    libjpeg never builds the full-size picture)."""
    w, h = size
    if w * h > MAX_IMAGE_PIXELS:
        raise DataError(path, f"image too large ({w}x{h} = {w * h / 1e6:.0f} megapixels); "
                              f"refusing more than {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels "
                              "(possible decompression bomb)")


def _draft(img: Image.Image) -> None:
    """Let libjpeg decode a large JPEG at 1/2, 1/4 or 1/8 scale: cheaper in time and memory."""
    w, h = img.size
    short = min(w, h)
    if img.format != "JPEG" or short <= 2 * DECODE_TARGET_SIDE:
        return
    img.draft("RGB", (w * DECODE_TARGET_SIDE // short, h * DECODE_TARGET_SIDE // short))


def _reduce(rgb: Image.Image) -> Image.Image:
    """Shrink by an integer factor (a cheap box filter) when far larger than any model needs."""
    factor = min(rgb.size) // DECODE_TARGET_SIDE
    return rgb.reduce(factor) if min(rgb.size) > 2 * DECODE_TARGET_SIDE else rgb


def _upright(path: Path, img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, so a phone photo stored sideways is embedded upright.

    Damaged EXIF is not worth losing the picture for: it is logged and the stored orientation
    kept.
    """
    try:
        ImageOps.exif_transpose(img, in_place=True)  # no copy when there is nothing to turn
    except Exception as exc:  # malformed EXIF blocks raise assorted types
        log.warning("%s: unreadable EXIF orientation (%s); using the image as stored", path, exc)
    return img


def _to_rgb(path: Path, img: Image.Image) -> Image.Image:
    """8-bit RGB without clipping high-bit-depth data or leaking hidden transparent colours."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return Image.fromarray(_to_uint8(path, np.asarray(img), img.mode), "L").convert("RGB")
    if "A" in img.getbands() or "a" in img.getbands() or "transparency" in img.info:
        return _flatten_alpha(img)
    try:
        return img.convert("RGB")
    except ValueError:
        raise DataError(path, f"unsupported image mode {img.mode!r}") from None


def _to_uint8(path: Path, values: np.ndarray, mode: str) -> np.ndarray:
    """Scale one grey channel to 0..255.

    16-bit data is divided by 257 (65535 -> 255), keeping relative brightness. "I" (32-bit
    int) and "F" (float) carry no fixed range: values already in 0..255 (or 0..1 for float)
    are taken as they are, 0..65535 as 16-bit, anything else is stretched from min to max.
    """
    data = values.astype(np.float64)
    if not np.all(np.isfinite(data)):
        raise DataError(path, f"image ({mode}) contains NaN or infinite pixel values")
    lo, hi = float(data.min()), float(data.max())
    if mode.startswith("I;16"):
        scaled = data / 257.0
    elif lo >= 0 and hi <= 1 and mode == "F":
        scaled = data * 255.0
    elif lo >= 0 and hi <= 255:
        scaled = data
    elif lo >= 0 and hi <= 65535:
        scaled = data / 257.0
    else:
        scaled = (data - lo) * (255.0 / max(hi - lo, 1e-12))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """Composite onto white: transparent pixels' stored colour is arbitrary (often black or
    garbage) and would otherwise reach the model. Opaque images come out exactly as if the
    alpha channel had been dropped."""
    rgba = img.convert("RGBA")
    if rgba.getchannel("A").getextrema() == (255, 255):
        return rgba.convert("RGB")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


# --- audio -------------------------------------------------------------------------------------

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

    Rejects what would silently give meaningless features: empty, truncated, shorter than
    0.25 s, non-finite, silent in every channel, constant (DC). Normal audio is mixed to mono
    by the plain channel mean, unchanged; see `_mix_to_mono` for the one exception.
    """
    path = Path(path)
    info = audio_info(path)
    if info.frames == 0:
        raise DataError(path, "audio is empty (0 samples)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DataError(path, f"truncated or corrupt audio ({exc})") from None
    except MemoryError:
        raise DataError(path, "audio too long to read into the available memory") from None
    if data.shape[0] == 0:
        raise DataError(path, "audio is empty (0 samples)")
    _check_complete(path, info, data.shape[0])
    seconds = data.shape[0] / sr
    if seconds < MIN_AUDIO_SECONDS:
        raise DataError(
            path, f"audio too short ({seconds:.3f} s); need at least {MIN_AUDIO_SECONDS} s"
        )
    if not np.all(np.isfinite(data)):
        raise DataError(path, "audio contains NaN or infinite samples")
    _check_not_silent(path, data)
    mono = _mix_to_mono(data)
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


def decoded_audio_seconds(path: Path, stop_after: float) -> float:
    """Seconds of sound libsndfile decodes from ``path`` (the reader every audio feature
    uses), stopping just past ``stop_after``: a result above it means "longer", found
    without reading (or holding in memory) the rest. A limit on sound length is checked
    here, so a bound holds in what is decoded, not in what a header states."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "audio file not found")
    try:
        with sf.SoundFile(str(path)) as fh:
            most = int(stop_after * fh.samplerate) + 1
            frames = sum(len(block) for block in fh.blocks(blocksize=1 << 16, frames=most))
            return frames / fh.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise DataError(path, f"not a readable audio file ({exc})") from None


def _check_complete(path: Path, info: sf._SoundFileInfo, frames_read: int) -> None:
    """libsndfile reads a file cut off mid-data short, without error: compare what the header
    declares with what the file holds."""
    declared, about = _wav_declared_frames(path, frames_read) or (info.frames, "")
    if declared > frames_read:
        raise DataError(path, f"audio is truncated: header says {about}{declared} samples, "
                              f"file holds {frames_read}")


def _wav_declared_frames(path: Path, frames_read: int) -> tuple[int, str] | None:
    """Frames the RIFF/WAVE `data` chunk declares (and "about " when estimated, for compressed
    codecs), when it declares more bytes than the file holds; None when not a WAV, complete,
    or the size is a streaming placeholder."""
    try:
        with open(path, "rb") as fh:
            return _scan_wav_chunks(fh, path.stat().st_size, frames_read)
    except OSError:
        return None  # unreadable here means libsndfile's own read already decided


def _scan_wav_chunks(fh: BinaryIO, file_size: int, frames_read: int) -> tuple[int, str] | None:
    """Walk the RIFF chunks to `data`; see `_wav_declared_frames`."""
    head = fh.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return None
    order = "<" if head[:4] == b"RIFF" else ">"
    block_align = 0
    pos = 12
    while pos + 8 <= file_size:
        fh.seek(pos)
        chunk_id, size = struct.unpack(order + "4sI", fh.read(8))
        fmt = fh.read(14) if chunk_id == b"fmt " else b""
        if len(fmt) == 14:
            block_align = struct.unpack(order + "12xH", fmt)[0]
        elif chunk_id == b"data":
            held = file_size - pos - 8
            if size in _UNKNOWN_WAV_SIZES or size >= _WAV_PLACEHOLDER_MIN or size <= held:
                return None
            if block_align and block_align * frames_read <= held:  # PCM-like: exact
                return size // block_align, ""
            return math.ceil(frames_read * size / max(held, 1)), "about "
        pos += 8 + size + (size & 1)
    return None


def _check_not_silent(path: Path, data: np.ndarray) -> None:
    """Judge each channel on its own: mixing first would call antiphase stereo silent."""
    if float(np.max(np.abs(data))) < SILENCE_PEAK:
        raise DataError(path, "audio is silent (peak amplitude ~0); MFCCs would be meaningless")
    # half the peak-to-peak range: the amplitude around the channel's own (DC) level, computed
    # exactly (a float32 mean over many samples drifts by more than SILENCE_PEAK)
    amplitude = 0.5 * np.ptp(data, axis=0)
    if float(np.max(amplitude)) < SILENCE_PEAK:
        raise DataError(path, "audio is constant (DC): no channel varies around its level "
                              f"({float(data[0, 0]):.4g}); MFCCs would be meaningless")


def _mix_to_mono(data: np.ndarray) -> np.ndarray:
    """The channel mean, as always, unless it cancels (channels in antiphase, e.g. one wired
    inverted): then the loudest channel alone, which still carries the scene's sound, rather
    than a near-zero mix whose MFCCs describe nothing."""
    mono = data.mean(axis=1)
    if data.shape[1] == 1:
        return mono
    channel_rms = np.sqrt(np.mean(np.square(data, dtype=np.float64), axis=0))
    mix_rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64))))
    if mix_rms < CANCELLED_MIX_RATIO * float(channel_rms.max()) or (
        float(np.max(np.abs(mono))) < SILENCE_PEAK
    ):
        return np.ascontiguousarray(data[:, int(np.argmax(channel_rms))])
    return mono
