"""Lower-precision image embedding on CPU.

int8: ONNX Runtime static quantisation of the fp32 export (QDQ format, per-channel symmetric
int8 weights, uint8 activations whose ranges come from a calibration pass over a few hundred
preprocessed images). The int8 graph is built once and cached beside the fp32 export; it is
written to a temporary file renamed into place, so a kill never leaves a half-written model.

bf16: ONNX Runtime's CPU provider has no bf16 Conv/MatMul kernels on x86 (its bf16 "fast math"
GEMM option exists only for ARM64), so bf16 runs in torch under CPU autocast, which uses oneDNN's
AVX-512-BF16 / AMX kernels where the CPU has them (:func:`cpu_supports_bf16`).

Where a backbone runs (CPU or CUDA) is :mod:`.device`'s choice.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InvalidValue
from ..files import written_atomically

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8", "bf16")
#: Images the int8 calibration pass sees by default (ONNX Runtime suggests a few hundred).
CALIBRATION_IMAGES = 200
CALIBRATION_BATCH = 8

ImageSource = Image.Image | str | os.PathLike


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise InvalidValue(f"unknown precision {precision!r}; "
                           f"choose one of {', '.join(PRECISIONS)}")
    return precision


def cpu_supports_bf16() -> bool:
    """Whether torch's oneDNN has native bf16 kernels on this CPU (AVX-512-BF16 or AMX);
    elsewhere bf16 is emulated and slower than fp32."""
    import torch

    with contextlib.suppress(AttributeError, RuntimeError):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


# --- calibration data -----------------------------------------------------------------------

def evenly_spaced(items: Sequence, n: int = CALIBRATION_IMAGES) -> list:
    """``n`` items spread over the whole sequence: data sets are usually sorted by class, so the
    first ``n`` would calibrate on one class only."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def generated_images(n: int = CALIBRATION_IMAGES, size: int = 256, seed: int = 0
                     ) -> Iterator[Image.Image]:
    """A deterministic stand-in when no real images are at hand: smooth colour fields with
    edges and fine noise, so activation ranges are roughly those of photos. It is weaker
    calibration than the data being processed (ranges of real scenes differ)."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        coarse = rng.uniform(0, 255, (int(rng.integers(2, 9)),) * 2 + (3,)).astype(np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC),
                           np.float32)
        yy, xx = np.mgrid[0:size, 0:size] / size
        angle, freq = rng.uniform(0, np.pi), rng.uniform(2, 24)
        stripes = np.sin(2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy))
        pixels = field + rng.uniform(0, 50) * stripes[..., None] + rng.normal(0, 8, field.shape)
        yield Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _open_rgb(source: ImageSource) -> Image.Image | None:
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    try:
        with Image.open(source) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        log.warning("calibration image %s skipped (%s)", source, exc)
        return None


def calibration_tag(images: Sequence[ImageSource] | None) -> str:
    """Identifies the calibration set for the cache key: the generated set, or the names and
    sizes of the files (pixel hashes for in-memory images). A different set gives a different
    int8 model, hence different embeddings."""
    if images is None:
        return f"generated-{CALIBRATION_IMAGES}"
    h = hashlib.sha256()
    for source in images:
        if isinstance(source, Image.Image):
            h.update(source.tobytes())
        else:
            path = Path(source)
            size = path.stat().st_size if path.is_file() else -1
            h.update(f"{path.name}:{size};".encode())
    return f"data-{len(images)}-{h.hexdigest()[:12]}"


def calibration_batches(
    images: Iterable[ImageSource] | None,
    preprocess: Callable[[Image.Image], object],
    batch: int = CALIBRATION_BATCH,
) -> Iterator[np.ndarray]:
    """(B, 3, H, W) float32 batches of preprocessed calibration images (generated when
    ``images`` is None; unreadable files are logged and skipped)."""
    sources = generated_images() if images is None else images
    opened = (im for im in map(_open_rgb, sources) if im is not None)
    while chunk := list(itertools.islice(opened, batch)):
        yield np.stack([np.asarray(preprocess(im), np.float32) for im in chunk])


class _Reader:
    """ONNX Runtime's CalibrationDataReader over calibration batches (input name ``image``)."""

    def __init__(self, batches: Iterable[np.ndarray]) -> None:
        self._batches = iter(batches)
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        if batch is None:
            return None
        self.count += len(batch)
        return {"image": batch}


# --- int8 -------------------------------------------------------------------------------------

def quantize_int8(model, out_path: Path, batches: Iterable[np.ndarray]) -> Path:
    """Statically quantise an fp32 ONNX model (a path or ModelProto) to ``out_path``: QDQ,
    per-channel int8 weights, uint8 activations calibrated by min/max over ``batches``.
    Written atomically; the temporary file is removed on any failure."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reader = _Reader(batches)
    calib = type("ImageCalibration", (CalibrationDataReader,), {"get_next": reader.get_next})()
    prepared = out_path.with_name(f".{out_path.name}.{os.getpid()}.prep.tmp")
    try:
        with written_atomically(out_path) as tmp:
            # ORT's recommended pre-pass: shape inference and graph optimisation, which also
            # turns deduplicated constants (Identity nodes) back into initializers the
            # quantiser needs
            quant_pre_process(model, prepared)
            quantize_static(
                prepared, tmp, calib, quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                # no CalibMaxIntermediateOutputs: the calibration graph keeps only per-tensor
                # ReduceMin/ReduceMax scalars, and in ORT 1.32 that option drops them unmerged
            )
            if reader.count == 0:
                raise ValueError("no calibration image could be read")
    finally:
        with contextlib.suppress(OSError):
            prepared.unlink(missing_ok=True)
    log.info("int8 model written to %s (calibrated on %d images)", out_path, reader.count)
    return out_path
