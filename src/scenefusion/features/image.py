"""Image embeddings: a loaded backbone (see :mod:`.backbones`) that preprocesses PIL images
and embeds batches through ONNX Runtime (default, several times faster on a plain CPU) or
eager torch, in fp32 (default), int8 or bf16 (see :mod:`.quantize`). ``scenefusion list``
shows every backbone id."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..cache_integrity import load_or_build
from ..cpu import thread_budget, torch_threads
from ..errors import InvalidValue
from ..files import written_atomically
from ..paths import cache_dir_in_use, default_cache_dir
from . import DEFAULT_BACKBONE
from .backbones import IMAGE_BACKBONES, BackboneSpec, find_weights, load_weights, variants_of
from .device import ONNX_PROVIDERS, choose_device, cuda_available
from .onnx import cached_session, load_cached, new_session
from .quantize import (
    CALIBRATION_IMAGES,
    SCHEME,
    ImageSource,
    calibration_batches,
    calibration_tag,
    check_agreement,
    check_precision,
    cpu_supports_bf16,
    quantize_int8,
    split_check_images,
)
from .store import CacheError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "torch")
#: The default precision; another one (int8, bf16) is part of the cache key.
DEFAULT_PRECISION = "fp32"


def preprocess(image: Image.Image, spec: BackboneSpec) -> torch.Tensor:
    """Resize the shorter side, centre crop, scale to [0, 1] and normalise: (3, H, W) float32."""
    p = spec.preprocessing
    w, h = image.size
    scale = p.resize_size / min(w, h)
    resample = Image.Resampling[p.interpolation.upper()]
    resized = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample,
                           reducing_gap=None)
    left = (resized.width - p.input_size) // 2
    top = (resized.height - p.input_size) // 2
    crop = resized.crop((left, top, left + p.input_size, top + p.input_size))
    array = np.asarray(crop, dtype=np.float32) / 255.0
    array = (array - np.array(p.mean, np.float32)) / np.array(p.std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class _EmbedOnly(nn.Module):
    """Wraps a backbone so that its `embed` is the traced forward (what ONNX export sees)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(x)


def export_onnx(model: nn.Module, input_size: int, path: Path) -> Path:
    """Write the embedding graph of `model` as ONNX (dynamic batch), atomically: it goes to a
    temporary file renamed into place, so a kill or a full disk never leaves a truncated graph
    (and the temporary file is removed on any failure)."""
    example = torch.zeros(1, 3, input_size, input_size)
    with written_atomically(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _EmbedOnly(model).eval(), (example,), str(tmp), input_names=["image"],
            output_names=["embedding"], dynamic_axes={"image": {0: "n"}, "embedding": {0: "n"}},
            opset_version=17, dynamo=False,
        )
    return path


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(runtime: str, precision: str) -> str:
    """The runtime that serves ``precision``: int8 is an ONNX Runtime graph; bf16 runs in torch
    (ONNX Runtime has no bf16 convolution kernels on x86 CPUs); fp32 runs on either."""
    if runtime not in RUNTIMES:
        raise InvalidValue(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    check_precision(precision)
    if precision == "int8":
        if runtime == "torch":
            raise InvalidValue("precision int8 runs on ONNX Runtime (a quantised ONNX graph), not "
                             "on runtime torch; use --runtime onnx or auto, or --precision fp32")
        if not _onnx_available():
            raise InvalidValue("precision int8 needs onnx and onnxruntime installed "
                             "(pip install onnx onnxruntime), or use --precision fp32")
        return "onnx"
    if precision == "bf16":
        if runtime == "onnx":
            raise InvalidValue("precision bf16 runs on runtime torch (ONNX Runtime has no bf16 "
                             "CPU kernels for convolutions); use --runtime torch or auto")
        return "torch"
    if runtime == "auto":
        return "onnx" if _onnx_available() else "torch"
    return runtime


class ImageExtractor:
    """A loaded backbone: preprocess PIL images, embed batches.

    ``runtime="onnx"`` (the default where onnxruntime is installed) exports the backbone's
    embedding graph once into the cache folder and runs it with ONNX Runtime, which on a plain
    CPU is several times faster than eager torch; ``runtime="torch"`` runs the torch module
    under ``torch.inference_mode``. Both give the same embeddings to float tolerance (tested).
    ``threads`` caps the threads used while embedding (default:
    :func:`scenefusion.cpu.thread_budget`, the run's thread cap or else the cores this process
    may use), so that several workers on one machine do not oversubscribe it.

    ``precision="int8"`` quantises the fp32 export once (ONNX Runtime static quantisation) and
    caches it beside it; its activation ranges are calibrated on ``calibration_images`` (PIL
    images or paths; the first 200 are used, so pass an even spread of the data being
    processed, e.g. :func:`.quantize.evenly_spaced`), else on a deterministic generated set,
    which is weaker calibration. ``precision="bf16"`` runs torch under bf16 autocast (fast
    only on CPUs with AVX-512-BF16 or AMX). fp32 stays the default: see benchmarks/README.md
    for the measured fidelity of each.
    """

    def __init__(
        self,
        backbone_id: str = DEFAULT_BACKBONE,
        weights: Path | None = None,
        runtime: str = "auto",
        cache_dir: Path | None = None,
        threads: int | None = None,
        *,
        precision: str = DEFAULT_PRECISION,
        calibration_images: Iterable[ImageSource] | None = None,
        engine: str | None = None,
        device: str = "auto",
    ) -> None:
        if engine is not None:
            warnings.warn("ImageExtractor(engine=...) is deprecated: use runtime=...",
                          DeprecationWarning, stacklevel=2)
            runtime = engine
        self.spec = IMAGE_BACKBONES.get(backbone_id)
        self.id = backbone_id
        self.precision = precision
        self.runtime = resolve_runtime(runtime, precision)
        self.device = choose_device(device, cuda_available(self.runtime))
        # the torch module runs on the device only for runtime torch; for ONNX Runtime it is
        # only exported, which happens on the CPU
        self._torch_device = self.device if self.runtime == "torch" else "cpu"
        self.weights = Path(weights) if weights is not None else None
        self.calibration_images = (
            list(itertools.islice(calibration_images, CALIBRATION_IMAGES))
            if calibration_images is not None and precision == "int8" else None)
        if precision == "bf16" and not cpu_supports_bf16():
            log.warning("this CPU has no native bf16 (AVX-512-BF16 / AMX): bf16 is emulated "
                        "and slower than fp32")
        self.threads = threads if threads is not None else thread_budget()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._model: nn.Module | None = None
        self._session: Any = None

    @property
    def dim(self) -> int:
        return self.spec.embedding_dim

    @functools.cached_property
    def _weights_tag(self) -> str:
        """The weights' identity: the spec's file, or a user file's name and content hash."""
        if self.weights is None:
            return self.spec.weights.file_name
        find_weights(self.spec, self.weights)  # a missing file: the clear error, here
        with open(self.weights, "rb") as fh:
            digest = hashlib.file_digest(fh, "blake2b").hexdigest()[:12]
        return f"{self.weights.name}-{digest}"

    def params_key(self) -> str:
        """Identifies the numbers this extractor produces: the spec's content (architecture,
        weights, preprocessing, embedding layer), a user weight file's content, the runtime,
        the precision and, for int8, the calibration set. Derived, never hand-versioned."""
        return self._key(self.precision)

    def _key(self, precision: str) -> str:
        parts = [self.spec.content_key(), self._weights_tag, self.runtime, precision]
        if precision == "int8":
            parts += [self._calibration_tag, SCHEME]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    @functools.cached_property
    def _calibration_tag(self) -> str:
        return calibration_tag(self.calibration_images)

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            # weights the cache derives (the merged Lite0+Lite2 file) live in this extractor's
            # cache, like everything else it writes
            with cache_dir_in_use(self.cache_dir):
                model = load_weights(self.spec, self.weights,
                                     variants=variants_of(self.spec)).eval()
            if self.precision == "bf16":  # oneDNN's bf16 convolutions want NHWC
                model = model.to(memory_format=torch.channels_last)
            self._model = model.to(self._torch_device)
        return self._model

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return preprocess(image, self.spec)

    def preprocessor(self) -> Callable[[Image.Image], torch.Tensor]:
        """A picklable preprocessing function for DataLoader workers (no model, no session)."""
        return functools.partial(preprocess, spec=self.spec)

    def onnx_path(self) -> Path:
        """Where this backbone's fp32 exported graph is cached (one per spec content and
        weights, whatever the precision asked for: int8 is built from it)."""
        return self.cache_dir / "onnx" / f"{self.id}-{self._key('fp32')}.onnx"

    def int8_path(self) -> Path:
        """Where the int8 graph is cached, beside the fp32 export (one per calibration set)."""
        return self.cache_dir / "onnx" / f"{self.id}-{self._key('int8')}.int8.onnx"

    def int8_check_path(self) -> Path:
        """Where the int8 model's check is cached: held-back calibration images (preprocessed)
        and their fp32 embeddings (:mod:`.quantize`)."""
        return self.int8_path().with_name(self.int8_path().name.replace(".onnx", ".check.npz"))

    def _onnx_session(self) -> Any:
        """The ONNX Runtime session over the cached graph (fp32 export or int8 model); a cached
        graph that does not load (truncated by an old kill, damaged on disk) is logged, deleted
        and built again, once (:func:`.onnx.cached_session`). An int8 model is checked against
        fp32 each time it is loaded, so that no CPU can embed with one that disagrees."""
        if self._session is None:
            if self.precision == "int8":
                session = cached_session(
                    self.int8_path(), self._quantize, self.threads, name=f"int8 model of {self.id}",
                    hint="try --precision fp32", what="int8 model", verb="quantising",
                    providers=ONNX_PROVIDERS[self.device])
                self._check_int8(session)
                self._session = session
            else:
                self._session = cached_session(
                    self.onnx_path(), self._export, self.threads, name=f"export of {self.id}",
                    hint="try --runtime torch", providers=ONNX_PROVIDERS[self.device])
        return self._session

    def _fp32_graph(self):
        """The fp32 export as an ONNX ModelProto, exported (again, once) when it is missing or
        does not parse, so that a damaged export cannot poison the int8 model."""
        import onnx

        return load_cached(self.onnx_path(), self._export, onnx.load)

    def _quantize(self, path: Path) -> None:
        graph = self._fp32_graph()
        source = "the given images" if self.calibration_images is not None else "generated images"
        log.info("quantising %s to int8 at %s, calibrated on %s (once per cache)",
                 self.id, path, source)
        calibration, _ = split_check_images(self.calibration_images)
        try:
            quantize_int8(graph, path, calibration_batches(calibration, self.preprocess))
        except OSError as exc:
            raise self._unwritable(path, "int8 model", exc) from exc

    def _unwritable(self, path: Path, what: str, exc: OSError) -> CacheError:
        """The one-sentence error for a derived file the cache folder cannot take."""
        return CacheError(path.parent, f"cannot write the {what} of {self.id} ({exc}); free "
                                       "space or choose another cache folder (--cache)")

    def _write_int8_check(self, path: Path) -> None:
        """Store the held-back calibration images (as the model sees them, in float16) and
        their fp32 embeddings, computed by the fp32 export."""
        _, held_back = split_check_images(self.calibration_images)
        inputs = np.concatenate(list(calibration_batches(held_back, self.preprocess)))
        inputs = inputs.astype(np.float16)
        fp32 = new_session(self._fp32_graph().SerializeToString(), self.threads)
        reference = fp32.run(None, {"image": inputs.astype(np.float32)})[0]
        try:
            with written_atomically(path) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, inputs=inputs, fp32=reference)
        except OSError as exc:
            raise self._unwritable(path, "int8 check", exc) from exc

    def _check_int8(self, session: Any) -> float:
        """Embed the held-back images with the int8 ``session`` and compare with fp32
        (:func:`.quantize.check_agreement`: :class:`.quantize.Int8Diverges` when they disagree)."""
        def load(path: Path) -> dict[str, np.ndarray]:
            with np.load(path, allow_pickle=False) as stored:
                return {"inputs": stored["inputs"], "fp32": stored["fp32"]}

        check = load_or_build(self.int8_check_path(), self._write_int8_check, load,
                              what="int8 check", verb="computing")
        int8 = session.run(None, {"image": check["inputs"].astype(np.float32)})[0]
        score = check_agreement(self.id, int8, check["fp32"])
        log.info("int8 model of %s agrees with fp32 on %d held-back images (cosine %.3f)",
                 self.id, len(int8), score)
        return score

    def _export(self, path: Path) -> None:
        model = self.model  # a missing weight file is its own clear error, not the cache's
        log.info("exporting %s to ONNX at %s (once per cache)", self.id, path)
        try:
            export_onnx(model, self.spec.input_size, path)
        except OSError as exc:
            raise self._unwritable(path, "ONNX export", exc) from exc

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        """(N, dim) float32 embeddings of a preprocessed (N, 3, H, W) batch."""
        if self.runtime == "onnx":
            return self._onnx_session().run(None, {"image": batch.numpy()})[0]
        with torch.inference_mode(), torch_threads(self.threads), self._autocast():
            return self.model.embed(self._layout(batch)).float().cpu().numpy()

    def logits(self, batch: torch.Tensor) -> np.ndarray:
        """ImageNet logits from the torch model (fp32, or bf16 under that precision)."""
        with torch.inference_mode(), torch_threads(self.threads), self._autocast():
            return self.model(self._layout(batch)).float().cpu().numpy()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self._torch_device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _layout(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self._torch_device)
        if self.precision == "bf16":
            return batch.contiguous(memory_format=torch.channels_last)
        return batch

