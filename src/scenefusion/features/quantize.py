"""Lower-precision image embedding on CPU.

int8: ONNX Runtime static quantisation of the fp32 export (QDQ format, per-channel symmetric
weights in 7 bits, uint8 activations whose ranges come from a calibration pass over a few hundred
preprocessed images). The int8 graph is built once and cached beside the fp32 export; it is
written to a temporary file renamed into place, so a kill never leaves a half-written model.

Why 7-bit weights (``reduce_range``): on x86 CPUs without VNNI (AVX2-only, AVX-512 without
VNNI) ONNX Runtime's uint8 x int8 kernels multiply with ``VPMADDUBSW``, which adds each pair of
products into a *saturating 16-bit* sum; with 8-bit weights a pair reaches 2 x 255 x 127 =
64,770 > 32,767 and is clipped. Measured on an AVX2-only AMD EPYC: the same 8-bit graph gives
embeddings at cosine 0.88 (mean; worst 0.63) to fp32 on real photos, but 0.99 when ORT runs it
without its integer kernels, and the tiny test net drops to -0.07. With weights in [-64, 63] a
pair is at most 2 x 255 x 64 = 32,640, so no sum can saturate on any CPU: the int8 model gives
the same numbers on AVX2, AVX-512 VNNI and AMX machines (VNNI/AMX accumulate in 32 bits). The
cost is one bit of weight precision (effnet_lite0: cosine 0.96 instead of 0.99 on VNNI CPUs).
8-bit weights for uint8 activations (U8U8) also avoid saturation but ran 3-5x slower than fp32.

Because a runtime's kernels can still differ from the graph's meaning on some CPU, every int8
model carries a check (:func:`agreement`): held-back calibration images and their fp32
embeddings, stored beside it; whenever the model is loaded its embeddings of those images are
compared with fp32 and a model that disagrees is refused (:class:`Int8Diverges`).

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

from ..errors import InvalidValue, ScenefusionError
from ..files import written_atomically

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8", "bf16")
#: Images the int8 calibration pass sees by default (ONNX Runtime suggests a few hundred).
CALIBRATION_IMAGES = 200
CALIBRATION_BATCH = 8
#: Calibration images held back from the calibration pass to check the int8 model against fp32.
CHECK_IMAGES = 16
#: The int8 model's embeddings of the held-back images must have at least this mean centred
#: cosine to fp32's. Measured (benchmarks/README.md, "Precision"): a sound model 0.95 (effnet_lite0,
#: real photos) to 0.99 (the tiny test net); the saturated 8-bit graphs of an AVX2-only CPU 0.83
#: and 0.57; two different photos score about 0.
MIN_AGREEMENT = 0.9
#: What the int8 graph is, for the cache key: another scheme gives other numbers.
SCHEME = "qdq-u8-activations-s7-per-channel-weights"

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


def split_check_images(images: Sequence[ImageSource] | None
                       ) -> tuple[Sequence[ImageSource] | None, list[ImageSource]]:
    """(calibration images, check images). The check always holds :data:`CHECK_IMAGES`
    generated images of another seed than the generated calibration set (enough rows to centre
    the cosine); given images add every 8th of theirs, up to as many again, held back from
    calibration so the check also spreads over the user's data."""
    generated = list(generated_images(CHECK_IMAGES, seed=1))
    if images is None:
        return None, generated
    images = list(images)
    held = set(evenly_spaced(range(len(images)), min(CHECK_IMAGES, len(images) // 8))
               if len(images) >= 8 else [])
    return ([im for i, im in enumerate(images) if i not in held],
            [images[i] for i in sorted(held)] + generated)


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


def centred_cosines(embedded: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-row cosine after removing the reference's batch mean: embeddings of one network share
    a large common component that makes any two images look alike under a plain cosine."""
    mean = reference.mean(0)
    a, ref = embedded - mean, reference - mean
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(ref, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * ref).sum(1) / norms


class Int8Diverges(ScenefusionError, RuntimeError):
    """The int8 model's embeddings disagree with fp32 on this CPU: using them would train and
    predict on wrong features without a word."""


def agreement(int8_embeddings: np.ndarray, fp32_embeddings: np.ndarray) -> float:
    """Mean centred cosine of the int8 embeddings of the check images to their fp32 ones
    (NaN, from non-finite int8 output, counts as no agreement)."""
    cos = centred_cosines(np.asarray(int8_embeddings, np.float64),
                          np.asarray(fp32_embeddings, np.float64))
    return float(np.nan_to_num(cos, nan=-1.0).mean())


def check_agreement(backbone_id: str, int8_embeddings: np.ndarray,
                    fp32_embeddings: np.ndarray) -> float:
    """The agreement (:func:`agreement`), or :class:`Int8Diverges` below :data:`MIN_AGREEMENT`."""
    score = agreement(int8_embeddings, fp32_embeddings)
    if not score >= MIN_AGREEMENT:
        raise Int8Diverges(f"int8 embedding of {backbone_id} diverges from fp32 on this CPU "
                           f"(cosine {score:.2f}): use --precision fp32")
    return score


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
    per-channel 7-bit weights (see the module's docstring), uint8 activations calibrated by
    min/max over ``batches``.
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
                reduce_range=True,  # 7-bit weights: no saturating 16-bit sums on any x86 CPU
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
